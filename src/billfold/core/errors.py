"""Errors that carry their stable code and HTTP status; the web edge turns them into
RFC 9457 problem documents."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str
    code: str = "invalid"


@dataclass
class BillfoldError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    code: str = "error"
    status: int = 400
    title: str = "Request failed"

    def __str__(self) -> str:
        if not self.errors:
            return self.detail
        parts = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        return f"{self.detail} ({parts})"


class ValidationFailed(BillfoldError):
    """One or more fields are wrong; each is named in ``errors``."""

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(
            detail=detail or "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
            code="validation_failed",
            status=422,
            title="Validation failed",
        )


def invalid(field_name: str, message: str, code: str = "invalid") -> ValidationFailed:
    return ValidationFailed([FieldError(field_name, message, code)])


class NotFound(BillfoldError):
    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(
            detail=f"No {kind.replace('_', ' ')} with id {object_id!r}",
            code="not_found",
            status=404,
            title="Not found",
        )


class Conflict(BillfoldError):
    def __init__(self, detail: str, code: str = "conflict", field_name: str | None = None) -> None:
        super().__init__(
            detail=detail,
            errors=[FieldError(field_name, detail, code)] if field_name else [],
            code=code,
            status=409,
            title="Conflict",
        )


class Unauthorized(BillfoldError):
    def __init__(self, detail: str = "A valid API key is required") -> None:
        super().__init__(detail=detail, code="unauthorized", status=401, title="Unauthorized")
