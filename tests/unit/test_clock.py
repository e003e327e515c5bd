from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from billfold.core import clock
from billfold.core.clock import FrozenClock, SystemClock

NEW_YEAR_0300_UTC = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    """A FrozenClock installed process-wide for one test, then the previous clock put back."""
    frozen_clock = FrozenClock(NEW_YEAR_0300_UTC)
    previous = clock.set_clock(frozen_clock)
    try:
        yield frozen_clock
    finally:
        clock.set_clock(previous)


class TestFrozenClock:
    def test_stands_still_at_the_given_instant(self):
        frozen_clock = FrozenClock(NEW_YEAR_0300_UTC)
        assert frozen_clock.now() == NEW_YEAR_0300_UTC
        assert frozen_clock.now() == NEW_YEAR_0300_UTC

    def test_refuses_a_naive_datetime(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            FrozenClock(datetime(2026, 1, 1, 3, 0))

    def test_reports_the_instant_in_utc_whatever_zone_it_was_given(self):
        new_york_evening = datetime(2025, 12, 31, 22, 0, tzinfo=ZoneInfo("America/New_York"))
        now = FrozenClock(new_york_evening).now()
        assert now == NEW_YEAR_0300_UTC
        assert now.utcoffset() == timedelta(0)
        assert now.tzinfo is UTC

    def test_advance_moves_it_forward(self):
        frozen_clock = FrozenClock(NEW_YEAR_0300_UTC)
        frozen_clock.advance(timedelta(days=1, minutes=30))
        assert frozen_clock.now() == datetime(2026, 1, 2, 3, 30, tzinfo=UTC)

    def test_advances_add_up(self):
        frozen_clock = FrozenClock(NEW_YEAR_0300_UTC)
        frozen_clock.advance(timedelta(hours=1))
        frozen_clock.advance(timedelta(hours=2))
        assert frozen_clock.now() == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)

    def test_a_negative_advance_moves_it_back(self):
        frozen_clock = FrozenClock(NEW_YEAR_0300_UTC)
        frozen_clock.advance(timedelta(hours=-4))
        assert frozen_clock.now() == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


class TestSystemClock:
    def test_reads_the_current_utc_time(self):
        before = datetime.now(UTC)
        now = SystemClock().now()
        after = datetime.now(UTC)
        assert before <= now <= after
        assert now.utcoffset() == timedelta(0)


class TestSetClock:
    def test_returns_the_clock_it_replaces(self):
        original = clock.get_clock()
        first, second = FrozenClock(NEW_YEAR_0300_UTC), FrozenClock(NEW_YEAR_0300_UTC)
        try:
            assert clock.set_clock(first) is original
            assert clock.get_clock() is first
            assert clock.set_clock(second) is first
            assert clock.get_clock() is second
        finally:
            clock.set_clock(original)
        assert clock.get_clock() is original

    def test_utcnow_reads_the_installed_clock(self, frozen):
        assert clock.utcnow() == NEW_YEAR_0300_UTC
        frozen.advance(timedelta(seconds=90))
        assert clock.utcnow() == datetime(2026, 1, 1, 3, 1, 30, tzinfo=UTC)


class TestToday:
    def test_is_the_utc_date_by_default(self, frozen):
        assert clock.today() == date(2026, 1, 1)

    def test_honours_a_time_zone_behind_utc(self, frozen):
        assert clock.today("America/New_York") == date(2025, 12, 31)

    def test_honours_a_time_zone_ahead_of_utc(self, frozen):
        frozen.advance(timedelta(hours=-4))  # 2025-12-31T23:00Z
        assert clock.today("UTC") == date(2025, 12, 31)
        assert clock.today("Asia/Tokyo") == date(2026, 1, 1)

    def test_follows_the_clock_as_it_advances(self, frozen):
        frozen.advance(timedelta(hours=2))  # 05:00Z, midnight in New York
        assert clock.today("America/New_York") == date(2026, 1, 1)

    def test_refuses_an_unknown_time_zone(self, frozen):
        with pytest.raises(ZoneInfoNotFoundError):
            clock.today("Mars/Olympus_Mons")
