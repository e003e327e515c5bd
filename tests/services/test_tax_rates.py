"""Tax rates and tax exemptions through the services, on a real database."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from billfold.catalog import tax, tax_service
from billfold.catalog.tax_models import TaxExemption, TaxRate
from billfold.core.db import transaction
from billfold.core.errors import Conflict, NotFound, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import history
from tests.services.conftest import ACTOR, Desk, fields_of, frozen_at

JAN = date(2026, 1, 1)
JUN_30 = date(2026, 6, 30)
JUL = date(2026, 7, 1)


class TaxDesk:
    """What a billing admin does with tax, each step in its own committed transaction."""

    def __init__(self, desk: Desk) -> None:
        self.desk, self.session, self.scope = desk, desk.session, desk.scope

    def rate(self, **given: Any) -> TaxRate:
        data = {"country": "US", "region": "US-TX", "tax_category": "standard",
                "percent": "8.25", "name": "Texas sales tax", "valid_from": JAN,
                "valid_to": None, **given}
        with transaction(self.session):
            return tax_service.create_tax_rate(self.session, self.scope, **data)

    def end_rate(self, rate: TaxRate, valid_to: date | None) -> TaxRate:
        with transaction(self.session):
            return tax_service.end_tax_rate(self.session, self.scope, tax_rate_id=rate.id,
                                            valid_to=valid_to)

    def exempt(self, account_id: str, **given: Any) -> TaxExemption:
        data = {"certificate_number": "TX-EX-1001", "country": "US", "region": "US-TX",
                "valid_from": JAN, "valid_to": None, **given}
        with transaction(self.session):
            return tax_service.create_tax_exemption(
                self.session, self.scope, billing_account_id=account_id, actor=ACTOR, **data)

    def end_exemption(self, exemption: TaxExemption, valid_to: date | None) -> TaxExemption:
        with transaction(self.session):
            return tax_service.end_tax_exemption(
                self.session, self.scope, billing_account_id=exemption.billing_account_id,
                tax_exemption_id=exemption.id, valid_to=valid_to, actor=ACTOR)

    def count(self, model: Any) -> int:
        return self.desk.count(model)


@pytest.fixture
def clerk(desk: Desk) -> TaxDesk:
    return TaxDesk(desk)


@pytest.fixture
def other_clerk(make_desk: Any) -> TaxDesk:
    return TaxDesk(make_desk())


class TestCreateTaxRate:
    def test_records_the_rate_with_canonical_codes_and_percent(self, clerk):
        with frozen_at(datetime(2026, 1, 5, 9, 0, tzinfo=UTC)):
            rate = clerk.rate(country="us", region="us-tx", percent="08.250",
                              name="  Texas sales tax ")

        stored = clerk.desk.reload(rate)
        assert stored.id.startswith("txr_")
        assert (stored.tenant_id, stored.mode) == (clerk.scope.tenant_id, clerk.scope.mode)
        assert (stored.country, stored.region, stored.tax_category) == ("US", "US-TX", "standard")
        assert (stored.percent, stored.name) == ("8.25", "Texas sales tax")
        assert (stored.valid_from, stored.valid_to) == (JAN, None)
        assert stored.created_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def test_a_country_wide_rate_has_no_region(self, clerk):
        rate = clerk.rate(country="DE", region=None, percent="19", name="Umsatzsteuer")
        assert clerk.desk.reload(rate).region is None

    @pytest.mark.parametrize(("field", "value"), [
        ("country", "XX"), ("country", "USA"), ("country", ""), ("country", "1A"),
        ("region", "US-ZZ"), ("region", "CA-QC"), ("region", "Texas"),
        ("tax_category", "Standard"), ("tax_category", ""), ("tax_category", "has space"),
        ("percent", "8.25%"), ("percent", "-1"), ("percent", "1e2"), ("percent", "abc"),
        ("percent", "100.5"), ("percent", "8.12345"),
        ("name", ""), ("name", "   "), ("name", "x" * 101), ("name", "tab\there"),
        ("valid_to", date(2025, 12, 31)),
    ])
    def test_refuses_a_bad_field_naming_it_and_writes_nothing(self, clerk, field, value):
        with pytest.raises(ValidationFailed) as refused:
            clerk.rate(**{field: value})
        assert fields_of(refused.value) == [field]
        assert clerk.count(TaxRate) == 0

    def test_names_every_bad_field_at_once(self, clerk):
        with pytest.raises(ValidationFailed) as refused:
            clerk.rate(country="XX", tax_category="BAD", percent="abc", name="",
                       valid_to=date(2025, 1, 1))
        assert fields_of(refused.value) == ["country", "tax_category", "percent", "name",
                                            "valid_to"]

    def test_suggests_the_code_of_a_region_given_by_name(self, clerk):
        with pytest.raises(ValidationFailed, match="did you mean 'US-TX'"):
            clerk.rate(region="Texas")

    def test_a_rate_may_last_a_single_day(self, clerk):
        rate = clerk.rate(valid_from=JAN, valid_to=JAN)
        assert (rate.valid_from, rate.valid_to) == (JAN, JAN)


class TestOverlappingRates:
    def test_refuses_a_second_rate_while_an_open_ended_one_applies(self, clerk):
        first = clerk.rate(valid_from=JAN)
        with pytest.raises(Conflict) as refused:
            clerk.rate(percent="8.5", valid_from=JUL)
        assert refused.value.code == "tax_rate_overlap"
        assert refused.value.status == 409
        assert fields_of(refused.value) == ["valid_from"]
        assert first.id in refused.value.detail
        assert clerk.count(TaxRate) == 1

    def test_refuses_periods_that_share_a_single_day(self, clerk):
        clerk.rate(valid_from=JAN, valid_to=JUN_30)
        with pytest.raises(Conflict, match="overlaps"):
            clerk.rate(valid_from=JUN_30)

    def test_refuses_an_open_ended_rate_starting_before_a_later_one(self, clerk):
        clerk.rate(valid_from=JUL)
        with pytest.raises(Conflict):
            clerk.rate(valid_from=JAN, valid_to=None)

    def test_refuses_a_period_inside_another(self, clerk):
        clerk.rate(valid_from=JAN, valid_to=date(2026, 12, 31))
        with pytest.raises(Conflict):
            clerk.rate(valid_from=date(2026, 3, 1), valid_to=date(2026, 3, 31))

    def test_refuses_the_same_country_wide_rule_twice(self, clerk):
        clerk.rate(region=None)
        with pytest.raises(Conflict, match="country-wide"):
            clerk.rate(region=None, valid_from=JUL)

    def test_accepts_a_rate_starting_the_day_after_the_previous_one_ends(self, clerk):
        clerk.rate(valid_from=JAN, valid_to=JUN_30)
        clerk.rate(percent="8.5", valid_from=JUL)
        assert clerk.count(TaxRate) == 2

    @pytest.mark.parametrize("other", [
        {"region": "US-OK"}, {"region": None}, {"tax_category": "food"},
        {"country": "CA", "region": "CA-QC"},
    ])
    def test_the_same_period_for_another_place_or_category_is_no_overlap(self, clerk, other):
        clerk.rate()
        clerk.rate(**other)
        assert clerk.count(TaxRate) == 2

    def test_another_tenant_and_the_other_mode_keep_their_own_rates(self, clerk, other_clerk):
        clerk.rate()
        other_clerk.rate()
        live = TaxDesk(Desk(clerk.session, Scope(clerk.scope.tenant_id, "live"), clerk.desk.ref))
        live.rate()
        assert (clerk.count(TaxRate), other_clerk.count(TaxRate), live.count(TaxRate)) == (1, 1, 1)


class TestEndTaxRate:
    def test_ending_a_rate_lets_the_next_percentage_take_over(self, clerk):
        old = clerk.rate(valid_from=JAN)
        clerk.end_rate(old, JUN_30)
        new = clerk.rate(percent="8.5", valid_from=JUL)
        rules = tax_service.load_tax_rules(clerk.session, clerk.scope)
        on = {day: tax.resolve(rules, taxable=True, country="US", region="US-TX",
                               tax_category="standard", on_date=day, exemptions=()).rate_id
              for day in (JUN_30, JUL)}
        assert on == {JUN_30: old.id, JUL: new.id}

    def test_the_percentage_never_changes(self, clerk):
        rate = clerk.end_rate(clerk.rate(), JUN_30)
        assert (clerk.desk.reload(rate).percent, rate.valid_to) == ("8.25", JUN_30)

    def test_refuses_an_end_before_the_start(self, clerk):
        rate = clerk.rate(valid_from=JUL)
        with pytest.raises(ValidationFailed) as refused:
            clerk.end_rate(rate, JUN_30)
        assert fields_of(refused.value) == ["valid_to"]
        assert clerk.desk.reload(rate).valid_to is None

    def test_refuses_to_reopen_a_rate_over_its_successor(self, clerk):
        old = clerk.rate(valid_from=JAN, valid_to=JUN_30)
        clerk.rate(valid_from=JUL)
        with pytest.raises(Conflict) as refused:
            clerk.end_rate(old, None)
        assert fields_of(refused.value) == ["valid_to"]
        assert clerk.desk.reload(old).valid_to == JUN_30

    def test_another_tenants_rate_is_not_found(self, clerk, other_clerk):
        theirs = other_clerk.rate()
        with pytest.raises(NotFound):
            clerk.end_rate(theirs, JUN_30)
        assert other_clerk.desk.reload(theirs).valid_to is None


class TestReadTaxRates:
    def test_gets_a_rate_by_id(self, clerk):
        rate = clerk.rate()
        assert tax_service.get_tax_rate(clerk.session, clerk.scope, rate.id) is rate

    def test_another_tenants_rate_is_not_found(self, clerk, other_clerk):
        theirs = other_clerk.rate()
        with pytest.raises(NotFound):
            tax_service.get_tax_rate(clerk.session, clerk.scope, theirs.id)

    def test_lists_rates_in_pages_in_id_order(self, clerk, other_clerk):
        made = [clerk.rate(region=region) for region in ("US-TX", "US-OK", "US-NM")]
        other_clerk.rate()
        first = tax_service.list_tax_rates(clerk.session, clerk.scope, limit=2)
        rest = tax_service.list_tax_rates(clerk.session, clerk.scope, limit=2,
                                          starting_after=first[-1].id)
        assert [r.id for r in first + rest] == sorted(r.id for r in made)


class TestDatabaseConstraints:
    """The migration's constraints stand behind the services."""

    def _row(self, clerk: TaxDesk, **given: Any) -> TaxRate:
        return TaxRate(**{"id": f"txr_{'0' * 31}{given.pop('n', 1)}", "tenant_id": clerk.scope.tenant_id,
                          "mode": clerk.scope.mode, "country": "US", "region": "US-TX",
                          "tax_category": "standard", "percent": "8.25", "name": "Texas",
                          "valid_from": JAN, "valid_to": None,
                          "created_at": datetime(2026, 1, 1, tzinfo=UTC), **given})

    def test_a_period_ending_before_it_starts_is_refused(self, clerk):
        clerk.session.add(self._row(clerk, valid_to=date(2025, 12, 31)))
        with pytest.raises(IntegrityError):
            clerk.session.flush()
        clerk.session.rollback()

    def test_two_rates_of_one_rule_from_one_day_are_refused(self, clerk):
        clerk.session.add(self._row(clerk, n=1))
        clerk.session.flush()
        clerk.session.add(self._row(clerk, n=2))
        with pytest.raises(IntegrityError):
            clerk.session.flush()
        clerk.session.rollback()


@pytest.mark.postgres_only
class TestConcurrentRates:
    def test_two_overlapping_rates_created_at_once_cannot_both_succeed(self, clerk, sessions):
        """The first request holds its transaction open; the second waits for it and then
        sees its rate, instead of both passing the overlap check."""
        first_done, outcome = threading.Event(), {}

        def second() -> None:
            with sessions() as other:
                try:
                    with transaction(other):
                        tax_service.create_tax_rate(
                            other, clerk.scope, country="US", region="US-TX",
                            tax_category="standard", percent="9", name="Second",
                            valid_from=JUL)
                    outcome["second"] = "created"
                except Conflict:
                    outcome["second"] = "conflict"
                outcome["first_done_before"] = first_done.is_set()

        with sessions() as first, transaction(first):
            tax_service.create_tax_rate(first, clerk.scope, country="US", region="US-TX",
                                        tax_category="standard", percent="8.25",
                                        name="First", valid_from=JAN)
            racer = threading.Thread(target=second)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive(), "the second request should wait for the first"
            first_done.set()
        racer.join(timeout=10)
        assert outcome == {"second": "conflict", "first_done_before": True}
        assert clerk.count(TaxRate) == 1


# -- exemptions ------------------------------------------------------------------------


class TestCreateTaxExemption:
    def test_records_the_certificate_for_the_account(self, clerk):
        account = clerk.desk.new_account()
        exemption = clerk.exempt(account.id, certificate_number=" TX-EX-1001 ", country="us",
                                 region="us-tx", valid_to=date(2027, 12, 31))
        stored = clerk.desk.reload(exemption)
        assert stored.id.startswith("txe_")
        assert (stored.billing_account_id, stored.certificate_number) == (account.id,
                                                                          "TX-EX-1001")
        assert (stored.country, stored.region) == ("US", "US-TX")
        assert (stored.valid_from, stored.valid_to) == (JAN, date(2027, 12, 31))

    def test_records_the_exemption_in_the_accounts_history(self, clerk):
        account = clerk.desk.new_account()
        with frozen_at(datetime(2026, 2, 1, 12, 0, tzinfo=UTC)):
            exemption = clerk.exempt(account.id)
        entry = history.list_history(clerk.session, clerk.scope, object_type="billing_account",
                                     object_id=account.id, limit=10)[-1]
        assert (entry.action, entry.actor) == ("updated", ACTOR)
        assert entry.at == datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
        assert entry.changes == [{"field": "tax_exemption", "old_value": None, "new_value": {
            "id": exemption.id, "certificate_number": "TX-EX-1001", "country": "US",
            "region": "US-TX", "valid_from": "2026-01-01", "valid_to": None}}]

    def test_another_tenants_account_is_not_found_and_nothing_is_written(self, clerk,
                                                                         other_clerk):
        theirs = other_clerk.desk.new_account()
        before = other_clerk.desk.counts()
        with pytest.raises(NotFound):
            clerk.exempt(theirs.id)
        with pytest.raises(NotFound):
            clerk.exempt(theirs.id, country="XX")  # the 404 comes before any field check
        assert (clerk.count(TaxExemption), other_clerk.count(TaxExemption)) == (0, 0)
        assert other_clerk.desk.counts() == before

    @pytest.mark.parametrize(("field", "value"), [
        ("certificate_number", ""), ("certificate_number", "x" * 61),
        ("certificate_number", "line\nbreak"), ("country", "ZZ"), ("region", "US-ZZ"),
        ("region", "TX"), ("valid_to", date(2025, 6, 1)),
    ])
    def test_refuses_a_bad_field_naming_it_and_writes_nothing(self, clerk, field, value):
        account = clerk.desk.new_account()
        history_before = clerk.desk.counts()
        with pytest.raises(ValidationFailed) as refused:
            clerk.exempt(account.id, **{field: value})
        assert fields_of(refused.value) == [field]
        assert clerk.count(TaxExemption) == 0
        assert clerk.desk.counts() == history_before

    def test_refuses_the_same_certificate_twice_over_overlapping_periods(self, clerk):
        account = clerk.desk.new_account()
        first = clerk.exempt(account.id, valid_to=JUN_30)
        with pytest.raises(Conflict) as refused:
            clerk.exempt(account.id, valid_from=JUN_30)
        assert refused.value.code == "duplicate_tax_exemption"
        assert fields_of(refused.value) == ["certificate_number"]
        assert first.id in refused.value.detail
        assert clerk.count(TaxExemption) == 1

    @pytest.mark.parametrize("other", [
        {"valid_from": JUL},  # a renewal of the same certificate
        {"region": "US-OK"},  # a multi-state certificate
        {"region": None},
        {"certificate_number": "TX-EX-2002"},
    ])
    def test_accepts_the_same_certificate_elsewhere_or_later(self, clerk, other):
        account = clerk.desk.new_account()
        clerk.exempt(account.id, valid_to=JUN_30)
        clerk.exempt(account.id, **other)
        assert clerk.count(TaxExemption) == 2

    def test_the_same_certificate_may_serve_two_accounts(self, clerk):
        one, two = clerk.desk.new_account("One Co"), clerk.desk.new_account("Two Co")
        clerk.exempt(one.id)
        clerk.exempt(two.id)
        assert clerk.count(TaxExemption) == 2


class TestReadTaxExemptions:
    def test_gets_an_exemption_of_the_account(self, clerk):
        account = clerk.desk.new_account()
        exemption = clerk.exempt(account.id)
        assert tax_service.get_tax_exemption(clerk.session, clerk.scope,
                                             billing_account_id=account.id,
                                             tax_exemption_id=exemption.id) is exemption

    def test_an_exemption_of_another_account_is_not_found_under_this_one(self, clerk):
        one, two = clerk.desk.new_account("One Co"), clerk.desk.new_account("Two Co")
        exemption = clerk.exempt(one.id)
        with pytest.raises(NotFound):
            tax_service.get_tax_exemption(clerk.session, clerk.scope, billing_account_id=two.id,
                                          tax_exemption_id=exemption.id)

    def test_another_tenants_exemption_is_not_found(self, clerk, other_clerk):
        theirs = other_clerk.desk.new_account()
        exemption = other_clerk.exempt(theirs.id)
        with pytest.raises(NotFound):
            tax_service.get_tax_exemption(clerk.session, clerk.scope,
                                          billing_account_id=theirs.id,
                                          tax_exemption_id=exemption.id)
        with pytest.raises(NotFound):
            tax_service.list_tax_exemptions(clerk.session, clerk.scope,
                                            billing_account_id=theirs.id, limit=10)

    def test_lists_only_the_accounts_exemptions_in_pages(self, clerk):
        one, two = clerk.desk.new_account("One Co"), clerk.desk.new_account("Two Co")
        mine = [clerk.exempt(one.id, certificate_number=f"C-{i}") for i in range(3)]
        clerk.exempt(two.id)
        first = tax_service.list_tax_exemptions(clerk.session, clerk.scope,
                                                billing_account_id=one.id, limit=2)
        rest = tax_service.list_tax_exemptions(clerk.session, clerk.scope,
                                               billing_account_id=one.id, limit=2,
                                               starting_after=first[-1].id)
        assert [e.id for e in first + rest] == [e.id for e in mine]


class TestEndTaxExemption:
    def test_ends_the_exemption_and_records_it_in_history(self, clerk):
        account = clerk.desk.new_account()
        exemption = clerk.exempt(account.id)
        clerk.end_exemption(exemption, JUN_30)
        assert clerk.desk.reload(exemption).valid_to == JUN_30
        entry = history.list_history(clerk.session, clerk.scope, object_type="billing_account",
                                     object_id=account.id, limit=10)[-1]
        [change] = entry.changes
        assert change["field"] == "tax_exemption"
        assert (change["old_value"]["valid_to"], change["new_value"]["valid_to"]) == (
            None, "2026-06-30")

    def test_refuses_an_end_before_the_start(self, clerk):
        exemption = clerk.exempt(clerk.desk.new_account().id, valid_from=JUL)
        with pytest.raises(ValidationFailed) as refused:
            clerk.end_exemption(exemption, JUN_30)
        assert fields_of(refused.value) == ["valid_to"]
        assert clerk.desk.reload(exemption).valid_to is None

    def test_refuses_to_extend_over_a_renewal_of_the_same_certificate(self, clerk):
        account = clerk.desk.new_account()
        old = clerk.exempt(account.id, valid_to=JUN_30)
        clerk.exempt(account.id, valid_from=JUL)
        with pytest.raises(Conflict):
            clerk.end_exemption(old, date(2026, 7, 31))
        assert clerk.desk.reload(old).valid_to == JUN_30


# -- loaders for the bill run ----------------------------------------------------------


class TestLoaders:
    def test_load_tax_rules_holds_every_rate_of_the_tenant_and_mode_only(self, clerk,
                                                                        other_clerk):
        mine = {clerk.rate().id, clerk.rate(region=None, percent="2").id}
        other_clerk.rate()
        live = TaxDesk(Desk(clerk.session, Scope(clerk.scope.tenant_id, "live"), clerk.desk.ref))
        live.rate(tax_category="live_only")
        rules = tax_service.load_tax_rules(clerk.session, clerk.scope)
        assert {r.id for r in rules} == mine
        assert rules.get(next(iter(mine))) is not None

    def test_exemptions_for_maps_every_account_asked_about(self, clerk, other_clerk):
        one, two = clerk.desk.new_account("One Co"), clerk.desk.new_account("Two Co")
        theirs = other_clerk.desk.new_account()
        exemption = clerk.exempt(one.id)
        other_clerk.exempt(theirs.id)
        found = tax_service.exemptions_for(clerk.session, clerk.scope, [one.id, two.id, theirs.id])
        assert found == {one.id: [exemption.to_rule()], two.id: [], theirs.id: []}

    def test_exemptions_for_reads_many_accounts_in_batches(self, clerk):
        account = clerk.desk.new_account()
        clerk.exempt(account.id)
        asked = [f"ba_{i:032x}" for i in range(1, 1201)] + [account.id]
        found = tax_service.exemptions_for(clerk.session, clerk.scope, asked)
        assert len(found) == len(asked)
        assert [e.certificate_number for e in found[account.id]] == ["TX-EX-1001"]

    def test_a_bill_run_decides_an_exempt_and_a_taxed_account(self, clerk):
        """The calls the bill run makes, end to end."""
        clerk.rate()
        exempt, taxed = clerk.desk.new_account("Exempt Co"), clerk.desk.new_account("Taxed Co")
        clerk.exempt(exempt.id, valid_to=JUN_30)
        rules = tax_service.load_tax_rules(clerk.session, clerk.scope)
        exemptions = tax_service.exemptions_for(clerk.session, clerk.scope,
                                                [exempt.id, taxed.id])

        def tax_of(account_id: str, on: date) -> tuple[int, int]:
            decision = tax.resolve(rules, taxable=True, country="US", region="TX",
                                   tax_category="standard", on_date=on,
                                   exemptions=exemptions[account_id])
            return tax.line_tax(10_000, decision, inclusive=False)

        assert tax_of(exempt.id, JUN_30) == (10_000, 0)
        assert tax_of(exempt.id, JUL) == (10_000, 825)
        assert tax_of(taxed.id, JUN_30) == (10_000, 825)

