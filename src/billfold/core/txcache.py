"""Reference data read once per transaction.

A job that creates thousands of billing accounts in one transaction would otherwise read
the same tenant settings, custom field definitions and bill cycle again for every row. A
cached value lives until the transaction or savepoint ends (committed or rolled back);
code that writes cached data calls ``forget``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

T = TypeVar("T")
_INFO_KEY = "billfold.txcache"


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """``load()``'s value, computed at most once per transaction of ``session``."""
    values: dict[Hashable, Any] = session.info.setdefault(_INFO_KEY, {})
    if key not in values:
        values[key] = load()
    return values[key]  # type: ignore[no-any-return]


def forget(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # Every flush runs in a subtransaction of its own; only the end of the real
    # transaction or of a savepoint can change what the database holds for us.
    if transaction.parent is None or transaction.nested:
        forget(session)
