"""Idempotency keys (DESIGN.md decision 7): a replay returns the stored response, the same
key with another request is refused, and a key whose first request is still running is a
conflict. The claim is its own short transaction, so a second request sees it at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Integer, LargeBinary, String, Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from billfold.core import clock, db
from billfold.core.db import Base
from billfold.core.scope import Scope


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Literal["claimed", "replay", "mismatch", "in_flight"]
    record: IdempotencyRecord | None = None


def claim(
    session: Session, scope: Scope, key: str, fingerprint: str, *, lock_seconds: int,
    retention_hours: int,
) -> Claim:
    """Try to own ``key`` for this request. Each step commits on its own (the caller may
    run the session in ``db.autocommit``): the claim is seen by a second request at once."""
    now = clock.utcnow()
    won = _CLAIM.run(session, {
        "tenant_id": scope.tenant_id, "mode": scope.mode, "key": key,
        "request_hash": fingerprint, "status_code": None, "content_type": None, "body": None,
        "created_at": now, "completed_at": None})
    if won:
        session.commit()
        return Claim("claimed")
    this_key = _this_key(scope, key)
    record = session.scalars(select(IdempotencyRecord).where(_THIS_KEY), this_key).one_or_none()
    if record is None:  # released between our insert and read: try once more
        return claim(session, scope, key, fingerprint, lock_seconds=lock_seconds,
                     retention_hours=retention_hours)
    expired = record.created_at < now - timedelta(hours=retention_hours)
    abandoned = record.completed_at is None and record.created_at < now - timedelta(
        seconds=lock_seconds)
    if expired or abandoned:
        # Take the key over with a conditional UPDATE so only one request wins it.
        won = session.execute(  # type: ignore[attr-defined]
            update(IdempotencyRecord).where(_THIS_KEY, IdempotencyRecord.created_at == record.created_at)
            .values(request_hash=fingerprint, created_at=now, status_code=None, body=None,
                    content_type=None, completed_at=None), this_key
        ).rowcount
        session.commit()
        return Claim("claimed") if won else Claim("in_flight")
    session.commit()
    if record.request_hash != fingerprint:
        return Claim("mismatch", record)
    if record.completed_at is None:
        return Claim("in_flight", record)
    return Claim("replay", record)


def complete(session: Session, scope: Scope, key: str, *, status_code: int, content_type: str,
             body: bytes) -> None:
    _COMPLETE.run(session, _this_key(scope, key) | {
        "new_status_code": status_code, "new_content_type": content_type, "new_body": body,
        "new_completed_at": clock.utcnow()})
    session.commit()


def release(session: Session, scope: Scope, key: str) -> None:
    """Forget a claim whose request failed on our side, so the client may retry."""
    _RELEASE.run(session, _this_key(scope, key))
    session.commit()


# Every request with a key claims it and completes it (or releases it): prebuilt statements
# run on the driver's cursor (db.Direct). Through the ORM (an added object flushed, its
# IntegrityError caught; an ORM-enabled UPDATE) a claim cost 737-800 µs of CPU and a
# completion 956-958 on PostgreSQL, each in a session of its own; so, 321-330 and 307-310.
_RECORDS = cast(Table, IdempotencyRecord.__table__)
_THIS_KEY = ((_RECORDS.c.tenant_id == bindparam("of_tenant"))
             & (_RECORDS.c.mode == bindparam("of_mode")) & (_RECORDS.c.key == bindparam("of_key")))


def _this_key(scope: Scope, key: str) -> dict[str, str]:
    return {"of_tenant": scope.tenant_id, "of_mode": scope.mode, "of_key": key}


def _claim_statement(dialect: str) -> Any:
    """Insert the claim unless the key is taken: its key comes back only when inserted."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(_RECORDS).on_conflict_do_nothing().returning(_RECORDS.c.key)


_CLAIM = db.Direct(_claim_statement)
_COMPLETE = db.Direct(update(_RECORDS).where(_THIS_KEY).values(
    status_code=bindparam("new_status_code"), content_type=bindparam("new_content_type"),
    body=bindparam("new_body"), completed_at=bindparam("new_completed_at")))
_RELEASE = db.Direct(delete(_RECORDS).where(_THIS_KEY))


def purge_expired(session: Session, *, retention_hours: int) -> int:
    cutoff = clock.utcnow() - timedelta(hours=retention_hours)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
