"""Human-facing numbers (customer, account, later invoice numbers) per tenant, mode and
series. The counter row is locked by the upsert itself, so concurrent callers queue and
numbers are gap-free as long as the surrounding transaction commits.

Gap-free costs concurrency: the counter stays locked until the caller's transaction ends,
so every transaction numbering in the series waits for the one before it. Series that may
have gaps (customer and account numbers, unlike invoice numbers) pass ``gap_free=False``;
on PostgreSQL their values are then taken on a connection of their own that commits each
reservation at once, and a value whose caller rolls back is simply never used.

That connection commits without waiting for its WAL record to reach disk
(``synchronous_commit`` off), which saves a disk flush per number. It cannot hand out a
number twice: a caller that uses the value commits later, and PostgreSQL writes the WAL in
order, so the caller's own flush carries the reservation with it. Only a reservation whose
caller never commits can be lost in a crash, and its number was never used.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, cast

from sqlalchemy import Engine, String, Table, create_engine
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

from billfold.core.db import Base, Direct
from billfold.core.scope import Scope


class NumberSequence(Base):
    __tablename__ = "number_sequence"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_value: Mapped[int]


_table = cast(Table, NumberSequence.__table__)


def _upsert(stmt: postgresql.Insert | sqlite.Insert) -> ReturningInsert[Any]:
    """Create the counter at 1 + count or add count to it, returning the new next value:
    one statement, whether or not the series exists yet."""
    excluded_count = stmt.excluded.next_value - 1
    return stmt.on_conflict_do_update(
        index_elements=[_table.c.tenant_id, _table.c.mode, _table.c.series],
        set_={"next_value": _table.c.next_value + excluded_count},
    ).returning(_table.c.next_value)


# Built once: on SQLite, building and caching a new statement costs more than running it.
_RESERVE = {
    "postgresql": _upsert(postgresql.insert(_table)),
    "sqlite": _upsert(sqlite.insert(_table)),
}


_RESERVE_APART = Direct(_RESERVE["postgresql"])


def next_values(session: Session, scope: Scope, series: str, count: int = 1, *,
                gap_free: bool = True) -> range:
    """Reserve ``count`` consecutive values of ``series`` and return them."""
    bind = session.get_bind()
    if not gap_free and bind.dialect.name == "postgresql":
        # SQLite runs one writer at a time whatever we do, and a second connection would
        # wait on the caller's own write lock; so only PostgreSQL takes this path.
        next_value = _reserve_apart(bind.engine, _params(scope, series, count))
    else:
        next_value = session.execute(_RESERVE[bind.dialect.name], _params(scope, series, count)
                                     ).scalar_one()
    return range(next_value - count, next_value)


def _params(scope: Scope, series: str, count: int) -> dict[str, object]:
    return {"tenant_id": scope.tenant_id, "mode": scope.mode, "series": series,
            "next_value": 1 + count}


def _reserve_apart(engine: Engine, params: dict[str, object]) -> int:
    """The upsert on the counters' own connection. That pool does not ping a connection
    before lending it (a round trip per number); a connection that turns out dead is
    dropped and the reservation tried once more on a new one. At worst the lost attempt
    had taken a value: a gap, which these series allow."""
    counters = _counters(engine)
    for attempt in (1, 2):
        try:
            with counters.connect() as own:
                value: int = _RESERVE_APART.run_on(own, params)[0].next_value
                return value
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


COUNTER_POOL_OVERFLOW = 20


def _pool_size(engine: Engine) -> int:
    size = getattr(engine.pool, "size", None)
    return int(size()) if callable(size) else 10


_counter_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_counter_engines_lock = threading.Lock()


def _counters(engine: Engine) -> Engine:
    """An autocommit pool beside ``engine`` whose connections skip the commit's disk
    flush (see the module's docstring); disposed with ``engine``.

    It keeps as many connections as ``engine`` does: every request thread that numbers
    something borrows one at the same time. With two kept, eight concurrent customer
    creations opened and closed a PostgreSQL connection for most numbers (774 new
    backends in 2,080 requests), and starting a backend costs PostgreSQL milliseconds."""
    with _counter_engines_lock:
        counters = _counter_engines.get(engine)
        if counters is None:
            counters = create_engine(
                engine.url, isolation_level="AUTOCOMMIT", pool_size=_pool_size(engine),
                max_overflow=COUNTER_POOL_OVERFLOW,
                connect_args={"options": "-c synchronous_commit=off"})
            _counter_engines[engine] = counters
            sa_event.listen(engine, "engine_disposed", lambda _: counters.dispose())
    return counters
