"""Human-facing numbers (customer, account, later invoice numbers) per tenant, mode and
series. The counter row is locked by the ``UPDATE`` itself, so concurrent callers queue and
numbers are gap-free as long as the surrounding transaction commits."""

from __future__ import annotations

from typing import cast

from sqlalchemy import String, Table, bindparam, insert, select, update
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


def next_values(session: Session, scope: Scope, series: str, count: int = 1) -> range:
    """Reserve ``count`` consecutive values of ``series`` and return them."""
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


def peek(session: Session, scope: Scope, series: str) -> int:
    value = session.scalar(
        select(NumberSequence.next_value).where(
            NumberSequence.tenant_id == scope.tenant_id,
            NumberSequence.mode == scope.mode,
            NumberSequence.series == series,
        )
    )
    return value or 1
