"""RFC 9457 problem documents for every error the API returns."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from billfold.core.errors import BillfoldError, FieldError, Unauthorized
from billfold.web import workers

log = logging.getLogger("billfold.web")
PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str,
            errors: list[FieldError] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://billfold.dev/problems/{code}", "title": title, "status": status,
        "detail": detail, "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message, "code": e.code} for e in errors]
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(
                ("function-", "constrained-", "lax-", "strict-")):
            continue
        else:
            name += f".{part}" if name else str(part)
    return name or (str(loc[0]) if loc else "body")


def _line_col(body: bytes, position: int) -> tuple[int, int]:
    before = body[:position].decode("utf-8", "replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


async def _key_refused(request: Request) -> JSONResponse | None:
    """The 401 of a request refused before its route ran, whose API key was therefore not
    looked up yet (web.deps.Caller): a bad key is a 401 whatever else is wrong."""
    caller = getattr(request.state, "unverified_caller", None)
    if caller is None or caller.verified:
        return None

    def check() -> None:
        with request.app.state.sessions() as session:
            caller.verify(session)

    try:
        await workers.run_sync(check)
    except Unauthorized as exc:
        return problem(exc.status, exc.code, exc.title, exc.detail)
    return None


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    refused = await _key_refused(request)
    if refused is not None:
        return refused
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            body = await request.body()
            pos = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
            line, col = _line_col(body, pos)
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return problem(400, "malformed_json", "Malformed JSON",
                           f"The request body is not valid JSON: {reason} at line {line} "
                           f"column {col}", line=line, column=col)
    fields = []
    for error in errors:
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "extra_forbidden":
            message = "is not a known field"
        elif error.get("type") == "missing":
            message = "is required"
        loc = tuple(error.get("loc", ()))
        name = _field_name(loc)
        # A whole-model check (the NUL check) names the offending field in ctx["field"].
        inner = str((error.get("ctx") or {}).get("field") or "")
        if inner:
            name = inner if len(loc) <= 1 else name + ("" if inner[0] == "[" else ".") + inner
        fields.append(FieldError(name, message, str(error.get("type", "invalid"))))
    return problem(422, "validation_failed", "Validation failed",
                   "; ".join(f"{f.field}: {f.message}" for f in fields), fields)


async def _billfold_error(request: Request, exc: BillfoldError) -> JSONResponse:
    refused = None if isinstance(exc, Unauthorized) else await _key_refused(request)
    if refused is not None:
        return refused
    return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors)


async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
    log.warning("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem(409, "conflict", "Conflict",
                   "The request conflicts with data that already exists (a unique value is "
                   "taken or a referenced object changed); nothing was written.")


async def _operational_error(request: Request, exc: OperationalError) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem(503, "database_unavailable", "Service unavailable",
                   "The database is busy or unreachable; nothing was written. Retry shortly.")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
             413: "body_too_large", 415: "unsupported_media_type"}
    code = codes.get(exc.status_code, "http_error")
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        # Bodies FastAPI cannot even decode (not UTF-8, nested too deeply).
        code = "malformed_json"
    return problem(exc.status_code, code, str(exc.detail), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error",
                   "Something went wrong on our side; nothing was written.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(BillfoldError, _billfold_error)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _integrity_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _operational_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


def problem_bytes(status: int, code: str, title: str, detail: str) -> bytes:
    return json.dumps({"type": f"https://billfold.dev/problems/{code}", "title": title,
                       "status": status, "detail": detail, "code": code}).encode()
