from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.tenants.cycles import next_bill_date

MONTHS_BETWEEN_BILLS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}


def last_day_of_month(day: date) -> int:
    first_of_next = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (first_of_next - timedelta(days=1)).day


def is_bill_date(day: date, *, frequency: str, bill_day: int, cycle_start: date) -> bool:
    """The test's own reading of a cycle: which days is an invoice due to be raised on."""
    if day < cycle_start:
        return False
    if frequency == "weekly":
        return day.isoweekday() == bill_day
    months_since_start = (day.year - cycle_start.year) * 12 + day.month - cycle_start.month
    return months_since_start % MONTHS_BETWEEN_BILLS[frequency] == 0 and day.day == min(
        bill_day, last_day_of_month(day)
    )


class TestWeekly:
    # 2026-03-02 is a Monday
    @pytest.mark.parametrize(
        ("bill_day", "expected"),
        [
            (1, date(2026, 3, 2)),
            (2, date(2026, 3, 3)),
            (5, date(2026, 3, 6)),
            (7, date(2026, 3, 8)),
        ],
    )
    def test_bills_on_the_iso_weekday(self, bill_day, expected):
        result = next_bill_date(
            frequency="weekly",
            bill_day=bill_day,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 2),
        )
        assert result == expected
        assert result.isoweekday() == bill_day

    def test_bills_on_the_day_itself_when_it_is_the_bill_weekday(self):
        result = next_bill_date(
            frequency="weekly",
            bill_day=3,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 4),  # a Wednesday
        )
        assert result == date(2026, 3, 4)

    def test_moves_to_next_week_when_the_bill_weekday_has_passed(self):
        result = next_bill_date(
            frequency="weekly",
            bill_day=1,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 3),  # a Tuesday
        )
        assert result == date(2026, 3, 9)


class TestMonthly:
    def test_bills_on_the_bill_day_of_the_same_month_when_it_is_still_ahead(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=15,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 10),
        )
        assert result == date(2026, 3, 15)

    def test_bills_on_the_day_itself_when_it_is_the_bill_day(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=15,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 15),
        )
        assert result == date(2026, 3, 15)

    def test_moves_to_next_month_when_the_bill_day_has_passed(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=15,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 16),
        )
        assert result == date(2026, 4, 15)

    def test_rolls_over_into_the_next_year(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=1,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 12, 2),
        )
        assert result == date(2027, 1, 1)

    def test_day_31_falls_on_28_february(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=31,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 2, 1),
        )
        assert result == date(2026, 2, 28)

    def test_day_31_falls_on_29_february_in_a_leap_year(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=31,
            cycle_start=date(2028, 1, 1),
            on_or_after=date(2028, 2, 1),
        )
        assert result == date(2028, 2, 29)

    def test_day_31_falls_on_30_april(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=31,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 4, 1),
        )
        assert result == date(2026, 4, 30)

    def test_day_31_comes_back_to_31_after_a_short_month(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=31,
            cycle_start=date(2026, 1, 1),
            on_or_after=date(2026, 3, 1),
        )
        assert result == date(2026, 3, 31)


class TestQuarterly:
    @pytest.mark.parametrize(
        ("on_or_after", "expected"),
        [
            (date(2026, 2, 15), date(2026, 2, 15)),
            (date(2026, 2, 16), date(2026, 5, 15)),
            (date(2026, 3, 1), date(2026, 5, 15)),
            (date(2026, 5, 16), date(2026, 8, 15)),
            (date(2026, 9, 30), date(2026, 11, 15)),
            (date(2026, 11, 16), date(2027, 2, 15)),
            (date(2027, 1, 1), date(2027, 2, 15)),
        ],
    )
    def test_is_anchored_at_the_cycle_start_month(self, on_or_after, expected):
        result = next_bill_date(
            frequency="quarterly",
            bill_day=15,
            cycle_start=date(2026, 2, 15),
            on_or_after=on_or_after,
        )
        assert result == expected

    def test_clamps_a_late_bill_day_in_a_short_quarter_month(self):
        # quarters starting in November bill in Feb; 30 February becomes the 28th
        result = next_bill_date(
            frequency="quarterly",
            bill_day=30,
            cycle_start=date(2025, 11, 1),
            on_or_after=date(2026, 1, 1),
        )
        assert result == date(2026, 2, 28)


class TestSemiannual:
    @pytest.mark.parametrize(
        ("on_or_after", "expected"),
        [
            (date(2026, 3, 1), date(2026, 3, 10)),
            (date(2026, 3, 11), date(2026, 9, 10)),
            (date(2026, 9, 11), date(2027, 3, 10)),
        ],
    )
    def test_bills_every_six_months_from_the_start_month(self, on_or_after, expected):
        result = next_bill_date(
            frequency="semiannual",
            bill_day=10,
            cycle_start=date(2026, 3, 1),
            on_or_after=on_or_after,
        )
        assert result == expected


class TestAnnual:
    @pytest.mark.parametrize(
        ("on_or_after", "expected"),
        [
            (date(2026, 1, 1), date(2026, 7, 4)),
            (date(2026, 7, 4), date(2026, 7, 4)),
            (date(2026, 7, 5), date(2027, 7, 4)),
            (date(2027, 6, 30), date(2027, 7, 4)),
        ],
    )
    def test_bills_once_a_year_in_the_start_month(self, on_or_after, expected):
        result = next_bill_date(
            frequency="annual",
            bill_day=4,
            cycle_start=date(2026, 7, 1),
            on_or_after=on_or_after,
        )
        assert result == expected

    def test_a_29_february_cycle_bills_on_28_february_in_common_years(self):
        result = next_bill_date(
            frequency="annual",
            bill_day=29,
            cycle_start=date(2028, 2, 1),
            on_or_after=date(2028, 3, 1),
        )
        assert result == date(2029, 2, 28)


class TestCycleStart:
    @pytest.mark.parametrize("frequency", ["weekly", *MONTHS_BETWEEN_BILLS])
    def test_never_bills_before_the_cycle_starts(self, frequency):
        cycle_start = date(2026, 6, 20)
        result = next_bill_date(
            frequency=frequency,
            bill_day=1,
            cycle_start=cycle_start,
            on_or_after=date(2026, 1, 1),
        )
        assert result >= cycle_start

    def test_skips_the_bill_day_earlier_in_the_start_month(self):
        result = next_bill_date(
            frequency="monthly",
            bill_day=1,
            cycle_start=date(2026, 6, 20),
            on_or_after=date(2026, 1, 1),
        )
        assert result == date(2026, 7, 1)

    def test_a_quarterly_cycle_skips_to_the_next_quarter_not_the_next_month(self):
        result = next_bill_date(
            frequency="quarterly",
            bill_day=1,
            cycle_start=date(2026, 6, 20),
            on_or_after=date(2026, 1, 1),
        )
        assert result == date(2026, 9, 1)

    def test_bills_on_the_start_day_when_it_is_a_bill_day(self):
        result = next_bill_date(
            frequency="annual",
            bill_day=20,
            cycle_start=date(2026, 6, 20),
            on_or_after=date(2020, 1, 1),
        )
        assert result == date(2026, 6, 20)


@st.composite
def cycles(draw: st.DrawFn) -> dict[str, object]:
    frequency = draw(st.sampled_from(["weekly", *MONTHS_BETWEEN_BILLS]))
    bill_day = draw(st.integers(min_value=1, max_value=7 if frequency == "weekly" else 31))
    cycle_start = draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)))
    offset = draw(st.integers(min_value=-800, max_value=3_000))
    return {
        "frequency": frequency,
        "bill_day": bill_day,
        "cycle_start": cycle_start,
        "on_or_after": cycle_start + timedelta(days=offset),
    }


class TestNextBillDateProperties:
    @settings(max_examples=600, deadline=None)
    @given(cycles())
    def test_is_the_first_bill_date_on_or_after_both_bounds(self, cycle):
        result = next_bill_date(**cycle)
        rule = {k: cycle[k] for k in ("frequency", "bill_day", "cycle_start")}
        earliest = max(cycle["on_or_after"], cycle["cycle_start"])
        assert result >= cycle["on_or_after"]
        assert result >= cycle["cycle_start"]
        assert is_bill_date(result, **rule)
        day = earliest
        while day < result:
            assert not is_bill_date(day, **rule), f"{day} is an earlier bill date than {result}"
            day += timedelta(days=1)
