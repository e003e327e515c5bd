"""Bill cycle dates: a pure function of the cycle's frequency, bill day and start date."""

from __future__ import annotations

import calendar
import functools
from datetime import date, timedelta

MONTHS_PER_PERIOD = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


@functools.lru_cache(maxsize=4096)  # a bill run asks the same few questions many times
def next_bill_date(
    *, frequency: str, bill_day: int, cycle_start: date, on_or_after: date
) -> date:
    """The first bill date of the cycle that is on or after both ``on_or_after`` and the
    cycle's own start. Days past a month's end fall on its last day (31 → 28 February)."""
    target = max(on_or_after, cycle_start)
    if frequency == "weekly":
        return target + timedelta(days=(bill_day - target.isoweekday()) % 7)
    step = MONTHS_PER_PERIOD[frequency]
    # Months are counted from the cycle start's month, so a quarterly cycle that starts in
    # February bills in February, May, August and November.
    index = (target.year - cycle_start.year) * 12 + target.month - cycle_start.month
    index -= index % step
    while True:
        year, month0 = divmod(cycle_start.year * 12 + cycle_start.month - 1 + index, 12)
        candidate = _clamped(year, month0 + 1, bill_day)
        if candidate >= target:
            return candidate
        index += step
