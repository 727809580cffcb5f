"""Domain errors. Each carries what the HTTP layer needs to render application/problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the domain refused the request; nothing was stored."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    @property
    def type_uri(self) -> str:
        """The problem type, a stable identifier clients may switch on."""
        return f"https://coldchain.example/problems/{self.slug}"


class NotFound(DomainError):
    status, title, slug = 404, "Not found", "not-found"


class Invalid(DomainError):
    """Input that is well-formed but breaks a rule (e.g. an expired lot on receipt)."""

    status, title, slug = 422, "Invalid input", "invalid"


class Conflict(DomainError):
    status, title, slug = 409, "Conflict", "conflict"


class InsufficientStock(Conflict):
    title, slug = "Insufficient stock", "insufficient-stock"


class IdempotencyMismatch(Conflict):
    title, slug = "Idempotency key reused with a different request", "idempotency-key-reused"


class Unauthorized(DomainError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DomainError):
    status, title, slug = 403, "Forbidden", "forbidden"
