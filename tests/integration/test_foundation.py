"""The app's foundation on real PostgreSQL: error contract, OpenAPI document, schema."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

pytestmark = pytest.mark.integration


def test_unknown_route_is_problem_json(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 404


def test_openapi_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert "/api/health" in response.json["paths"]


def test_schema_has_the_catalog_tables(engine, runtime):
    tables = set(inspect(engine).get_table_names())
    assert {"stores", "storage_units", "products", "lots", "stock_balances"} <= tables
