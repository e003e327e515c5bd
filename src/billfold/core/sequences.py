"""Human-facing numbers (customer, account, later invoice numbers) per tenant, mode and
series. The counter row is locked by the ``UPDATE`` itself, so concurrent callers queue and
numbers are gap-free as long as the surrounding transaction commits.

Gap-free costs concurrency: the counter stays locked until the caller's transaction ends,
so every transaction numbering in the series waits for the one before it. Series that may
have gaps (customer and account numbers, unlike invoice numbers) pass ``gap_free=False``;
on PostgreSQL their values are then taken in a short transaction of their own, and a value
whose caller rolls back is simply never used."""

from __future__ import annotations

from typing import cast

from sqlalchemy import String, Table, bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from billfold.core.db import Base
from billfold.core.scope import Scope


class NumberSequence(Base):
    __tablename__ = "number_sequence"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_value: Mapped[int]


_table = cast(Table, NumberSequence.__table__)
# Built once: on SQLite, building and caching a new statement costs more than running it.
_RESERVE = (
    update(_table)
    .where(_table.c.tenant_id == bindparam("in_tenant"), _table.c.mode == bindparam("in_mode"),
           _table.c.series == bindparam("in_series"))
    .values(next_value=_table.c.next_value + bindparam("count"))
    .returning(_table.c.next_value)
)


def next_values(session: Session, scope: Scope, series: str, count: int = 1, *,
                gap_free: bool = True) -> range:
    """Reserve ``count`` consecutive values of ``series`` and return them."""
    bind = session.get_bind()
    if not gap_free and bind.dialect.name == "postgresql":
        # SQLite runs one writer at a time whatever we do, and a second connection would
        # wait on the caller's own write lock; so only PostgreSQL takes this path.
        with Session(bind.engine) as own:
            values = _reserve(own, scope, series, count)
            own.commit()
        return values
    return _reserve(session, scope, series, count)


def _reserve(session: Session, scope: Scope, series: str, count: int) -> range:
    params = {"in_tenant": scope.tenant_id, "in_mode": scope.mode, "in_series": series,
              "count": count}
    for _ in range(2):
        result = session.execute(_RESERVE, params).scalar_one_or_none()
        if result is not None:
            return range(result - count, result)
        try:
            with session.begin_nested():
                session.execute(
                    insert(_table).values(
                        tenant_id=scope.tenant_id, mode=scope.mode, series=series,
                        next_value=1 + count,
                    )
                )
            return range(1, 1 + count)
        except IntegrityError:
            continue  # another transaction created the row first; take the UPDATE path
    raise RuntimeError(f"could not reserve a number in series {series!r}")
