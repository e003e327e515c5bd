"""What a service costs for part of a bill period: pure functions of dates and amounts.

Every period is split the same way. The first ``k`` days of an ``n``-day period are worth
F(k) = Money.allocate([k, n - k])[0] of the full amount, and days ``a..b`` of the period
are worth F(b) - F(a - 1). However a period is cut into pieces (a late start, a
cancellation, quantity changes), the pieces' charges telescope back to F(n): they add up
to the full amount exactly, never a minor unit more or less. Dates are inclusive.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from billfold.money import Money
from billfold.tenants.cycles import MONTHS_PER_PERIOD

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BillPeriod:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True, slots=True)
class QuantitySegment:
    """The quantity in force from ``effective_date`` until the next segment's date."""

    effective_date: date
    quantity: int


@dataclass(frozen=True, slots=True)
class SegmentCharge:
    """What one quantity segment costs inside one bill period."""

    start_date: date  # first day charged
    end_date: date  # last day charged, inclusive
    quantity: int
    days: int
    period_days: int
    full_amount_minor: int  # unit amount * quantity for the whole period
    amount_minor: int  # the share for ``days`` of ``period_days``
    currency: str


def _share_of_first_days(amount: Money, days: int, period_days: int) -> int:
    return amount.allocate([days, period_days - days])[0].minor


def prorate(amount_minor: int, currency: str, *, period_start: date, period_end: date,
            active_from: date | None, active_to: date | None) -> int:
    """The share of ``amount_minor`` (one whole period's amount) for the days of
    ``period_start..period_end`` on which something was active (``active_from..active_to``,
    None for an open end). A whole period gives the whole amount; no day gives 0."""
    if period_end < period_start:
        raise ValueError(f"period ends ({period_end}) before it starts ({period_start})")
    amount = Money(amount_minor, currency)
    first = period_start if active_from is None else max(period_start, active_from)
    last = period_end if active_to is None else min(period_end, active_to)
    if last < first:
        return 0
    period_days = (period_end - period_start).days + 1
    before = (first - period_start).days
    through = (last - period_start).days + 1
    if before == 0 and through == period_days:
        return amount_minor
    return (_share_of_first_days(amount, through, period_days)
            - _share_of_first_days(amount, before, period_days))


def service_charges(
    segments: Sequence[QuantitySegment], *, unit_amount_minor: int, currency: str,
    period_start: date, period_end: date, service_start: date, service_end: date | None,
) -> list[SegmentCharge]:
    """One charge per quantity segment that overlaps both the period and the service's
    life (``service_start..service_end``, None while it has no end), in date order.
    A segment's full-period amount is ``unit_amount_minor * quantity``, prorated."""
    ordered = sorted(segments, key=lambda s: s.effective_date)
    if len({s.effective_date for s in ordered}) != len(ordered):
        raise ValueError("two quantity segments start on the same date")
    if period_end < period_start:
        raise ValueError(f"period ends ({period_end}) before it starts ({period_start})")
    period_days = (period_end - period_start).days + 1
    charges: list[SegmentCharge] = []
    for i, segment in enumerate(ordered):
        until = ordered[i + 1].effective_date - ONE_DAY if i + 1 < len(ordered) else service_end
        if until is not None and service_end is not None:
            until = min(until, service_end)
        first = max(segment.effective_date, service_start, period_start)
        last = period_end if until is None else min(until, period_end)
        if last < first:
            continue
        full = unit_amount_minor * segment.quantity
        charges.append(SegmentCharge(
            start_date=first, end_date=last, quantity=segment.quantity,
            days=(last - first).days + 1, period_days=period_days, full_amount_minor=full,
            amount_minor=prorate(full, currency, period_start=period_start,
                                 period_end=period_end, active_from=first, active_to=last),
            currency=currency,
        ))
    return charges


# -- bill periods ----------------------------------------------------------------------


def _on_grid(cycle_start: date, bill_day: int, months: int) -> date:
    """The bill date ``months`` months after the cycle start's month (negative: before)."""
    year, month0 = divmod(cycle_start.year * 12 + cycle_start.month - 1 + months, 12)
    month = month0 + 1
    return date(year, month, min(bill_day, calendar.monthrange(year, month)[1]))


@functools.lru_cache(maxsize=4096)  # pure; a bill run asks the same few questions
def period_containing(*, frequency: str, bill_day: int, cycle_start: date, day: date
                      ) -> BillPeriod:
    """The bill period of a cycle that contains ``day``: from a bill date to the day before
    the next, on the same dates as tenants.cycles.next_bill_date. A bill run on bill date
    B charges in-advance services for period_containing(B) and in-arrears services for
    period_containing(B - 1 day)."""
    if frequency == "weekly":
        start = day - timedelta(days=(day.isoweekday() - bill_day) % 7)
        return BillPeriod(start, start + timedelta(days=6))
    step = MONTHS_PER_PERIOD[frequency]
    index = (day.year - cycle_start.year) * 12 + day.month - cycle_start.month
    index -= index % step
    if _on_grid(cycle_start, bill_day, index) > day:
        index -= step
    return BillPeriod(_on_grid(cycle_start, bill_day, index),
                      _on_grid(cycle_start, bill_day, index + step) - ONE_DAY)
