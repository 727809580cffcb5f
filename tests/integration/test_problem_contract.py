"""Every error is application/problem+json, with `errors` an object of messages."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_body_that_is_not_json_gets_a_problem_naming_the_body(client):
    response = client.post("/api/receipts", data="{not json", content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.content_type == "application/problem+json"
    assert isinstance(response.json["errors"], dict)
    assert "json" in response.json["errors"]


def test_oversized_body_is_413_problem(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/receipts", data="x" * (limit + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"


def test_every_operation_documents_an_error_response(client):
    spec = client.get("/api/openapi.json").json
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = set(operation["responses"])
            assert "default" in codes or any(code.startswith("4") for code in codes), (method, path)
            assert any(code.startswith("2") or code == "304" for code in codes), (method, path)
