"""Request-body limit and Idempotency-Key handling, as plain ASGI middleware so they see
the raw body and the final response."""

from __future__ import annotations

import base64
import binascii
from collections.abc import MutableMapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billfold.access import api_keys
from billfold.access import idempotency as idem
from billfold.core import db
from billfold.core.config import Settings
from billfold.core.errors import Unauthorized
from billfold.core.scope import Scope as TenantScope
from billfold.web import workers
from billfold.web.problems import PROBLEM, problem_bytes

MUTATING = {"POST", "PATCH", "PUT", "DELETE"}


async def _send_problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body = problem_bytes(status, code, title, detail)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def bearer_secret(headers: dict[bytes, bytes]) -> str | None:
    """The API key of an ``Authorization`` header: ``Bearer <key>``, or ``Basic`` with the
    base64 of the key (as Cloud Payments V2 clients send it; ``key:`` and ``:key`` too)."""
    return api_key_of(headers.get(b"authorization", b"").decode("latin-1"))


def api_key_of(value: str) -> str | None:
    scheme, _, secret = value.partition(" ")
    secret = secret.strip()
    if not secret:
        return None
    if scheme.lower() == "bearer":
        return secret
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(secret, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    parts = [p.strip() for p in decoded.split(":")]
    keys = [p for p in parts if p.startswith(("bf_test_", "bf_live_"))] or [p for p in parts if p]
    return keys[0] if len(keys) == 1 else None


# The request's database session lives in its ASGI scope: made by whichever dependency
# asks first (the route's ``db`` or its caller's; web.deps), closed by RequestGuard once
# the response is sent. Plain functions, not a generator dependency: FastAPI's clean-up of
# those (an exit stack entered and left per request) cost more than the session itself.
SESSION = "billfold.session"
# The key RequestGuard looked up to claim an Idempotency-Key, (secret, api_keys.Grant): the
# route's caller adopts it rather than looking the same key up again (deps.Caller).
GRANT = "billfold.grant"


def request_session(request: Request) -> Session:
    session: Session | None = request.scope.get(SESSION)
    if session is None:
        session = request.scope[SESSION] = request.app.state.sessions()
    return session


async def close_request_session(scope: MutableMapping[str, Any]) -> None:
    """Close the session a request used, if any; one that still holds a transaction (a
    read that never committed) rolls it back, in a worker thread."""
    session: Session | None = scope.pop(SESSION, None)
    if session is None:
        return
    if session.in_transaction():
        await workers.run_sync(session.close)
    else:
        session.close()


class RequestGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.app, self.settings, self.sessions = app, settings, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] in MUTATING:
                await self._guarded(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            await close_request_session(scope)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_problem(send, 413, "body_too_large", "Request body too large",
                                f"The request body is over the {limit}-byte limit.")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_problem(send, 413, "body_too_large", "Request body too large",
                                    f"The request body is over the {limit}-byte limit.")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        secret = bearer_secret(headers)
        if not key or secret is None or scope["method"] not in ("POST", "PATCH"):
            await self.app(scope, replay, send)
            return
        if len(key) > 255:
            await _send_problem(send, 422, "validation_failed", "Validation failed",
                                "Idempotency-Key: must be at most 255 characters")
            return
        fingerprint = idem.request_hash(scope["method"], scope["path"],
                                        scope.get("query_string", b"").decode("latin-1"), body)
        grant, claim = await workers.run_sync(self._claim, secret, key, fingerprint)
        if grant is None or claim is None:
            await self.app(scope, replay, send)  # the route answers 401
            return
        if claim.outcome == "mismatch":
            await _send_problem(send, 422, "idempotency_key_reused", "Idempotency key reused",
                                "This Idempotency-Key was used with a different request.")
            return
        if claim.outcome == "in_flight":
            await _send_problem(send, 409, "idempotency_key_in_flight", "Request in progress",
                                "A request with this Idempotency-Key is still being processed.")
            return
        if claim.outcome == "replay":
            record = claim.record
            assert record is not None
            assert record.status_code is not None
            stored = record.body or b""
            await send({"type": "http.response.start", "status": record.status_code,
                        "headers": [(b"content-type", (record.content_type or "").encode()),
                                    (b"content-length", str(len(stored)).encode()),
                                    (b"idempotent-replayed", b"true")]})
            await send({"type": "http.response.body", "body": stored})
            return
        scope[GRANT] = (secret, grant)
        await self._run_and_store(scope, replay, send, grant.scope, key)

    async def _run_and_store(self, scope: Scope, receive: Receive, send: Send,
                             tenant: TenantScope, key: str) -> None:
        status = 500
        content_type = ""
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if status >= 500 or status in (401, 409, 429):
                # Nothing was written (or we cannot tell): let the client retry the key.
                await workers.run_sync(self._release, tenant, key)
            else:
                await workers.run_sync(self._complete, tenant, key, status, content_type,
                                       b"".join(parts))

    # -- database work, run in a worker thread ----------------------------------------
    # Each is a statement or a few that commit one by one: on PostgreSQL their sessions
    # send no BEGIN and COMMIT (db.autocommit, db.one_write).
    def _claim(self, secret: str, key: str, fingerprint: str
               ) -> tuple[api_keys.Grant | None, idem.Claim | None]:
        """What the key grants and the claim of ``key`` for its tenant, in one trip to a
        thread; (None, None) for a key that grants nothing."""
        with self.sessions() as session:
            db.autocommit(session)
            try:
                grant = api_keys.look_up(session, secret)
            except Unauthorized:
                return None, None
            return grant, idem.claim(
                session, grant.scope, key, fingerprint,
                lock_seconds=self.settings.idempotency_lock_seconds,
                retention_hours=self.settings.idempotency_retention_hours)

    def _complete(self, tenant: TenantScope, key: str, status: int, content_type: str,
                  body: bytes) -> None:
        with self.sessions() as session:
            db.one_write(session)
            idem.complete(session, tenant, key, status_code=status, content_type=content_type,
                          body=body)

    def _release(self, tenant: TenantScope, key: str) -> None:
        with self.sessions() as session:
            db.one_write(session)
            idem.release(session, tenant, key)
