"""Change history of customers and billing accounts: who changed which field, when, from
what to what."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.scope import Scope
from billfold.customers.models import ChangeRecord


def _plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in fields}


def created_row(scope: Scope, object_type: str, row: Any, fields: tuple[str, ...], actor: str,
                at: datetime) -> dict[str, Any]:
    """The history row of a new object, for a Core insert: every field it was created
    with (those left empty are not changes)."""
    return {
        "id": ids.new_id("history"), "tenant_id": scope.tenant_id, "mode": scope.mode,
        "object_type": object_type, "object_id": row.id, "action": "created",
        "actor": actor[:100], "at": at,
        "changes": [{"field": name, "old_value": None, "new_value": value}
                    for name, value in snapshot(row, fields).items() if value is not None],
    }


def record(
    session: Session, scope: Scope, *, object_type: str, object_id: str, action: str,
    actor: str, before: dict[str, Any], after: dict[str, Any],
) -> ChangeRecord | None:
    """Write one history record with every field that differs; nothing if none does."""
    changes = [
        {"field": name, "old_value": before.get(name), "new_value": value}
        for name, value in after.items()
        if before.get(name) != value
    ]
    if not changes:
        return None
    entry = ChangeRecord(
        id=ids.new_id("history"), tenant_id=scope.tenant_id, mode=scope.mode,
        object_type=object_type, object_id=object_id, action=action, actor=actor[:100],
        changes=changes, at=clock.utcnow(),
    )
    session.add(entry)
    return entry


def list_history(
    session: Session, scope: Scope, *, object_type: str, object_id: str, limit: int,
    starting_after: str | None = None,
) -> list[ChangeRecord]:
    stmt = select(ChangeRecord).where(
        ChangeRecord.tenant_id == scope.tenant_id, ChangeRecord.mode == scope.mode,
        ChangeRecord.object_type == object_type, ChangeRecord.object_id == object_id,
    )
    if starting_after:
        stmt = stmt.where(ChangeRecord.id > starting_after)
    return list(session.scalars(stmt.order_by(ChangeRecord.id).limit(limit)))
