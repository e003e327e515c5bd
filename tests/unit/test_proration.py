from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billfold.money import Money
from billfold.orders.proration import (
    BillPeriod,
    QuantitySegment,
    period_containing,
    prorate,
    service_charges,
)
from billfold.tenants.cycles import next_bill_date

property_settings = settings(max_examples=300, deadline=None)
amounts = st.integers(min_value=-(10**15), max_value=10**15)
currencies = st.sampled_from(["USD", "JPY", "BHD", "EUR", "CLF"])
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
lengths = st.integers(min_value=1, max_value=400)


@st.composite
def periods(draw: st.DrawFn) -> BillPeriod:
    start = draw(days)
    return BillPeriod(start, start + timedelta(days=draw(lengths) - 1))


@st.composite
def cuts(draw: st.DrawFn, period: BillPeriod) -> list[BillPeriod]:
    """The period cut into consecutive pieces at random days."""
    inner = draw(st.sets(st.integers(min_value=1, max_value=period.days - 1), max_size=12)) \
        if period.days > 1 else set()
    edges = [0, *sorted(inner), period.days]
    return [BillPeriod(period.start + timedelta(days=a), period.start + timedelta(days=b - 1))
            for a, b in pairwise(edges)]


def share(amount: int, currency: str, period: BillPeriod, first: date | None,
          last: date | None) -> int:
    return prorate(amount, currency, period_start=period.start, period_end=period.end,
                   active_from=first, active_to=last)


class TestProrate:
    @property_settings
    @given(amounts, currencies, periods(), st.data())
    def test_the_pieces_of_a_period_add_up_to_the_whole_amount(self, amount, currency, period,
                                                               data):
        pieces = data.draw(cuts(period))
        assert sum(share(amount, currency, period, p.start, p.end) for p in pieces) == amount

    @property_settings
    @given(amounts, currencies, periods(), st.data())
    def test_active_days_and_the_other_days_add_up_to_the_whole_amount(
            self, amount, currency, period, data):
        offset = data.draw(st.integers(min_value=0, max_value=period.days - 1))
        cut = period.start + timedelta(days=offset)
        active = share(amount, currency, period, cut, None)
        before = share(amount, currency, period, None, cut - timedelta(days=1))
        assert active + before == amount

    @property_settings
    @given(amounts, currencies, periods(), st.integers(min_value=0, max_value=30),
           st.integers(min_value=0, max_value=30))
    def test_a_full_period_gives_the_full_amount(self, amount, currency, period, early, late):
        assert share(amount, currency, period, period.start - timedelta(days=early),
                     period.end + timedelta(days=late)) == amount
        assert share(amount, currency, period, None, None) == amount

    @property_settings
    @given(amounts, currencies, periods(), st.integers(min_value=1, max_value=60))
    def test_zero_days_gives_zero(self, amount, currency, period, gap):
        after = period.end + timedelta(days=gap)
        assert share(amount, currency, period, after, None) == 0
        assert share(amount, currency, period, None, period.start - timedelta(days=gap)) == 0
        inverted = (period.start + timedelta(days=1), period.start)
        assert share(amount, currency, period, *inverted) == 0

    @property_settings
    @given(st.integers(min_value=0, max_value=10**15), currencies, periods(), st.data())
    def test_a_share_from_the_period_start_is_money_allocate_of_active_and_other_days(
            self, amount, currency, period, data):
        active = data.draw(st.integers(min_value=1, max_value=period.days))
        last = period.start + timedelta(days=active - 1)
        expected = Money(amount, currency).allocate([active, period.days - active])[0].minor
        assert share(amount, currency, period, period.start, last) == expected
        assert 0 <= expected <= amount

    def test_ten_days_of_a_thirty_day_month(self):
        june = BillPeriod(date(2026, 6, 1), date(2026, 6, 30))
        assert share(3000, "USD", june, date(2026, 6, 21), None) == 1000
        assert share(3000, "USD", june, None, date(2026, 6, 10)) == 1000

    def test_an_uneven_split_loses_no_cent(self):
        week = BillPeriod(date(2026, 3, 2), date(2026, 3, 8))
        parts = [share(1000, "USD", week, day, day)
                 for day in (week.start + timedelta(days=i) for i in range(7))]
        assert sum(parts) == 1000
        assert sorted(set(parts)) == [142, 143]

    def test_a_period_that_ends_before_it_starts_is_refused(self):
        with pytest.raises(ValueError, match="before it starts"):
            prorate(100, "USD", period_start=date(2026, 2, 1), period_end=date(2026, 1, 31),
                    active_from=None, active_to=None)


class TestServiceCharges:
    MARCH = BillPeriod(date(2026, 3, 1), date(2026, 3, 31))

    def charges(self, segments, *, service_start, service_end=None, unit=3100):
        return service_charges(segments, unit_amount_minor=unit, currency="USD",
                               period_start=self.MARCH.start, period_end=self.MARCH.end,
                               service_start=service_start, service_end=service_end)

    def test_a_whole_period_at_one_quantity_is_one_full_charge(self):
        [charge] = self.charges([QuantitySegment(date(2026, 1, 15), 3)],
                                service_start=date(2026, 1, 15))
        assert (charge.start_date, charge.end_date) == (self.MARCH.start, self.MARCH.end)
        assert (charge.quantity, charge.days, charge.period_days) == (3, 31, 31)
        assert charge.amount_minor == charge.full_amount_minor == 9300

    def test_a_mid_period_quantity_change_charges_each_quantity_for_its_days(self):
        charges = self.charges([QuantitySegment(date(2026, 2, 1), 1),
                                QuantitySegment(date(2026, 3, 11), 2)],
                               service_start=date(2026, 2, 1))
        assert [(c.start_date, c.end_date, c.quantity, c.days) for c in charges] == [
            (date(2026, 3, 1), date(2026, 3, 10), 1, 10),
            (date(2026, 3, 11), date(2026, 3, 31), 2, 21),
        ]
        assert [c.amount_minor for c in charges] == [1000, 4200]

    def test_a_service_starting_mid_period_is_charged_from_its_start(self):
        [charge] = self.charges([QuantitySegment(date(2026, 3, 22), 1)],
                                service_start=date(2026, 3, 22))
        assert (charge.start_date, charge.days, charge.amount_minor) == (date(2026, 3, 22), 10,
                                                                         1000)

    def test_a_cancelled_service_is_charged_through_its_end_date_inclusive(self):
        [charge] = self.charges([QuantitySegment(date(2026, 1, 1), 1)],
                                service_start=date(2026, 1, 1), service_end=date(2026, 3, 1))
        assert (charge.end_date, charge.days, charge.amount_minor) == (date(2026, 3, 1), 1, 100)

    def test_segments_outside_the_period_or_the_service_give_no_charge(self):
        assert self.charges([QuantitySegment(date(2026, 4, 1), 1)],
                            service_start=date(2026, 4, 1)) == []
        assert self.charges([QuantitySegment(date(2026, 1, 1), 1)],
                            service_start=date(2026, 1, 1), service_end=date(2026, 2, 28)) == []
        charges = self.charges([QuantitySegment(date(2026, 1, 1), 1),
                                QuantitySegment(date(2026, 3, 20), 5)],
                               service_start=date(2026, 1, 1), service_end=date(2026, 3, 10))
        assert [(c.quantity, c.end_date) for c in charges] == [(1, date(2026, 3, 10))]

    def test_segments_are_taken_in_date_order_whatever_order_they_come_in(self):
        given_order = [QuantitySegment(date(2026, 3, 11), 2), QuantitySegment(date(2026, 2, 1), 1)]
        assert [c.quantity for c in self.charges(given_order, service_start=date(2026, 2, 1))] \
            == [1, 2]

    def test_two_segments_on_one_date_are_refused(self):
        with pytest.raises(ValueError, match="same date"):
            self.charges([QuantitySegment(date(2026, 3, 1), 1),
                          QuantitySegment(date(2026, 3, 1), 2)], service_start=date(2026, 3, 1))

    @property_settings
    @given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=1000),
           periods(), st.data())
    def test_at_one_quantity_the_segments_pieces_add_up_to_the_full_amount(
            self, unit, quantity, period, data):
        # A "change" to the same quantity on every cut day must not change the total.
        pieces = data.draw(cuts(period))
        segments = [QuantitySegment(p.start, quantity) for p in pieces]
        charges = service_charges(segments, unit_amount_minor=unit, currency="USD",
                                  period_start=period.start, period_end=period.end,
                                  service_start=period.start, service_end=None)
        assert sum(c.amount_minor for c in charges) == unit * quantity
        assert sum(c.days for c in charges) == period.days


cycles = st.one_of(
    st.tuples(st.just("weekly"), st.integers(min_value=1, max_value=7)),
    st.tuples(st.sampled_from(["monthly", "quarterly", "semiannual", "annual"]),
              st.integers(min_value=1, max_value=31)),
)


class TestPeriodContaining:
    @property_settings
    @given(cycles, days, days)
    def test_a_period_runs_from_a_bill_date_to_the_day_before_the_next(self, cycle, start, day):
        frequency, bill_day = cycle
        assume(day >= start)
        period = period_containing(frequency=frequency, bill_day=bill_day, cycle_start=start,
                                   day=day)
        assert period.start <= day <= period.end
        following = next_bill_date(frequency=frequency, bill_day=bill_day, cycle_start=start,
                                   on_or_after=day + timedelta(days=1))
        assert period.end == following - timedelta(days=1)
        if period.start >= start:
            assert next_bill_date(frequency=frequency, bill_day=bill_day, cycle_start=start,
                                  on_or_after=period.start) == period.start
        after = period_containing(frequency=frequency, bill_day=bill_day, cycle_start=start,
                                  day=period.end + timedelta(days=1))
        assert after.start == period.end + timedelta(days=1)

    @pytest.mark.parametrize(("frequency", "bill_day", "day", "expected"), [
        ("monthly", 1, date(2026, 3, 15), (date(2026, 3, 1), date(2026, 3, 31))),
        ("monthly", 31, date(2026, 3, 15), (date(2026, 2, 28), date(2026, 3, 30))),
        ("monthly", 31, date(2026, 3, 31), (date(2026, 3, 31), date(2026, 4, 29))),
        ("quarterly", 1, date(2026, 6, 30), (date(2026, 5, 1), date(2026, 7, 31))),
        ("weekly", 1, date(2026, 3, 15), (date(2026, 3, 9), date(2026, 3, 15))),
        ("annual", 15, date(2027, 2, 14), (date(2026, 2, 15), date(2027, 2, 14))),
    ])
    def test_known_periods(self, frequency, bill_day, day, expected):
        # The quarterly cycle starts in February, so it bills in February, May, August...
        period = period_containing(frequency=frequency, bill_day=bill_day,
                                   cycle_start=date(2026, 2, 1), day=day)
        assert (period.start, period.end) == expected
