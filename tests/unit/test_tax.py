"""Tax resolution and line arithmetic (catalog/tax.py): pure, no database."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.catalog.tax import (
    NO_TAX,
    ExemptionRule,
    RateRule,
    TaxDecision,
    TaxRules,
    is_tax_category,
    line_tax,
    region_code,
    resolve,
    tax_address,
)

JUNE = date(2026, 6, 15)


def rate(rate_id: str, percent: str, *, country: str = "US", region: str | None = None,
         category: str = "standard", valid_from: date = date(2026, 1, 1),
         valid_to: date | None = None, name: str | None = None) -> RateRule:
    return RateRule(id=rate_id, country=country, region=region, tax_category=category,
                    percent=percent, name=name or f"rate {rate_id}", valid_from=valid_from,
                    valid_to=valid_to)


def exemption(certificate: str, *, country: str = "US", region: str | None = None,
              valid_from: date = date(2026, 1, 1), valid_to: date | None = None) -> ExemptionRule:
    return ExemptionRule(id=f"txe_{certificate}", certificate_number=certificate,
                         country=country, region=region, valid_from=valid_from,
                         valid_to=valid_to)


RULES = TaxRules([
    rate("txr_us", "2", name="Federal-ish"),
    rate("txr_tx", "8.25", region="US-TX", name="Texas sales tax"),
    rate("txr_tx_food", "0", region="US-TX", category="food"),
    rate("txr_ca_old", "7", region="US-CA", valid_to=date(2026, 6, 30)),
    rate("txr_ca_new", "7.25", region="US-CA", valid_from=date(2026, 7, 1)),
    rate("txr_de", "19", country="DE"),
    rate("txr_de_reduced", "7", country="DE", category="reduced"),
])


def decide(*, taxable: bool = True, country: str | None = "US", region: str | None = "US-TX",
           category: str | None = "standard", on: date = JUNE,
           exemptions: tuple[ExemptionRule, ...] = ()) -> TaxDecision:
    return resolve(RULES, taxable=taxable, country=country, region=region,
                   tax_category=category, on_date=on, exemptions=exemptions)


class TestResolve:
    def test_the_regional_rate_of_the_category_applies(self):
        assert decide() == TaxDecision("8.25", rate_id="txr_tx", rate_name="Texas sales tax")

    def test_the_category_chooses_among_the_regions_rates(self):
        assert decide(category="food") == TaxDecision("0", rate_id="txr_tx_food",
                                                      rate_name="rate txr_tx_food")

    def test_a_region_without_a_rate_falls_back_to_the_country_wide_rate(self):
        assert decide(region="US-NY").rate_id == "txr_us"

    def test_no_region_uses_the_country_wide_rate(self):
        assert decide(region=None).rate_id == "txr_us"

    def test_a_category_the_region_lacks_falls_back_to_the_country_wide_rate_of_it(self):
        rules = TaxRules([rate("txr_tx", "8.25", region="US-TX"),
                          rate("txr_us_digital", "3", category="digital")])
        decision = resolve(rules, taxable=True, country="US", region="US-TX",
                           tax_category="digital", on_date=JUNE, exemptions=())
        assert decision.rate_id == "txr_us_digital"

    def test_no_rate_for_the_country_and_category_is_zero(self):
        assert decide(category="luxury") == NO_TAX
        assert decide(country="FR", region=None) == NO_TAX

    def test_a_rate_of_another_country_never_applies(self):
        assert decide(country="AT", region=None).rate_id is None
        assert decide(country="DE", region=None).rate_id == "txr_de"

    def test_a_line_without_a_category_is_not_taxed(self):
        assert decide(category=None) == NO_TAX

    def test_an_address_without_a_country_is_not_taxed(self):
        assert decide(country=None, region=None) == NO_TAX

    def test_a_non_taxable_account_pays_nothing_even_where_a_rate_applies(self):
        assert decide(taxable=False) == NO_TAX

    @pytest.mark.parametrize(("on", "rate_id"), [
        (date(2026, 6, 30), "txr_ca_old"),  # valid_to is the last day, inclusive
        (date(2026, 7, 1), "txr_ca_new"),
        (date(2030, 1, 1), "txr_ca_new"),
    ])
    def test_the_rate_valid_on_the_date_applies(self, on, rate_id):
        assert decide(region="US-CA", on=on).rate_id == rate_id

    def test_before_any_regional_rate_starts_the_country_wide_rate_applies(self):
        rules = TaxRules([rate("txr_us", "2", valid_from=date(2025, 1, 1)),
                          rate("txr_tx", "8.25", region="US-TX", valid_from=date(2026, 7, 1))])
        decision = resolve(rules, taxable=True, country="US", region="US-TX",
                           tax_category="standard", on_date=JUNE, exemptions=())
        assert decision.rate_id == "txr_us"

    def test_before_every_rate_starts_nothing_is_due(self):
        assert decide(on=date(2025, 12, 31)) == NO_TAX

    @pytest.mark.parametrize("region", ["US-TX", "us-tx", "TX", "tx", "Texas", " texas "])
    def test_the_region_may_be_a_code_or_the_text_of_an_address(self, region):
        assert decide(region=region).rate_id == "txr_tx"

    def test_the_country_may_be_lower_case(self):
        assert decide(country="us", region="TX").rate_id == "txr_tx"

    def test_an_unknown_region_falls_back_to_the_country_wide_rate(self):
        assert decide(region="Atlantis").rate_id == "txr_us"

    def test_overlapping_rates_resolve_to_the_newest_on_every_call(self):
        rules = TaxRules([rate("txr_b", "6", valid_from=date(2026, 3, 1)),
                          rate("txr_a", "5", valid_from=date(2026, 1, 1))])
        decision = resolve(rules, taxable=True, country="US", region=None,
                           tax_category="standard", on_date=JUNE, exemptions=())
        assert decision.rate_id == "txr_b"


class TestExemptions:
    def test_a_country_wide_exemption_zeroes_the_tax_and_names_its_certificate(self):
        decision = decide(exemptions=(exemption("CERT-1"),))
        assert decision == TaxDecision("0", exemption_certificate="CERT-1")

    def test_an_exemption_for_the_region_applies_there(self):
        assert decide(exemptions=(exemption("TX-1", region="US-TX"),)) \
            .exemption_certificate == "TX-1"

    def test_an_exemption_for_another_region_does_not_apply(self):
        decision = decide(exemptions=(exemption("OK-1", region="US-OK"),))
        assert decision.rate_id == "txr_tx"
        assert decision.exemption_certificate is None

    def test_a_regional_exemption_does_not_cover_an_address_without_a_region(self):
        assert decide(region=None, exemptions=(exemption("TX-1", region="US-TX"),)) \
            .rate_id == "txr_us"

    def test_an_exemption_of_another_country_does_not_apply(self):
        decision = decide(exemptions=(exemption("DE-1", country="DE"),))
        assert decision.percent == "8.25"

    @pytest.mark.parametrize("on", [date(2025, 12, 31), date(2026, 4, 1)])
    def test_an_exemption_outside_its_period_does_not_apply(self, on):
        certificate = exemption("CERT-1", valid_from=date(2026, 1, 1),
                                valid_to=date(2026, 3, 31))
        assert decide(on=on, exemptions=(certificate,)).exemption_certificate is None

    def test_an_exemption_applies_on_its_last_day(self):
        certificate = exemption("CERT-1", valid_to=JUNE)
        assert decide(exemptions=(certificate,)).exemption_certificate == "CERT-1"

    def test_an_exemption_applies_even_where_no_rate_exists(self):
        decision = decide(category="luxury", exemptions=(exemption("CERT-1"),))
        assert decision.exemption_certificate == "CERT-1"

    def test_a_non_taxable_account_shows_no_certificate(self):
        assert decide(taxable=False, exemptions=(exemption("CERT-1"),)) == NO_TAX

    def test_the_regional_certificate_is_shown_before_the_country_wide_one(self):
        certificates = (exemption("US-ALL"), exemption("TX-ONLY", region="US-TX"))
        assert decide(exemptions=certificates).exemption_certificate == "TX-ONLY"
        assert decide(exemptions=certificates[::-1]).exemption_certificate == "TX-ONLY"


class TestLineTax:
    def test_exclusive_adds_the_tax_to_the_net(self):
        assert line_tax(1000, TaxDecision("8.25", "txr_tx"), inclusive=False) == (1000, 83)

    def test_inclusive_splits_the_gross(self):
        assert line_tax(10825, TaxDecision("8.25", "txr_tx"), inclusive=True) == (10000, 825)

    def test_a_credit_line_mirrors_the_debit(self):
        decision = TaxDecision("8.25", "txr_tx")
        assert line_tax(-1000, decision, inclusive=False) == (-1000, -83)
        assert line_tax(-10825, decision, inclusive=True) == (-10000, -825)

    @pytest.mark.parametrize("inclusive", [True, False])
    def test_an_exempt_line_has_no_tax(self, inclusive):
        assert line_tax(1234, TaxDecision("0", exemption_certificate="C"),
                        inclusive=inclusive) == (1234, 0)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=-(10**12), max_value=10**12),
           st.sampled_from(["0", "5", "7.125", "8.25", "19", "20", "100"]))
    def test_inclusive_parts_always_sum_to_the_amount(self, amount, percent):
        net, tax = line_tax(amount, TaxDecision(percent), inclusive=True)
        assert net + tax == amount


class TestRegionCode:
    @pytest.mark.parametrize(("country", "region", "code"), [
        ("US", "US-TX", "US-TX"), ("US", "us-tx", "US-TX"), ("us", "TX", "US-TX"),
        ("US", "Texas", "US-TX"), ("CA", "Quebec", "CA-QC"), ("DE", "Baden-Württemberg", "DE-BW"),
        ("DE", "BW", "DE-BW"),
    ])
    def test_reads_a_code_or_a_name(self, country, region, code):
        assert region_code(country, region) == code

    @pytest.mark.parametrize(("country", "region"), [
        ("US", "CA-QC"), ("US", "Atlantis"), ("US", ""), ("US", None), (None, "TX"),
        ("ZZ", "TX"), ("US", "US-"),
    ])
    def test_is_none_for_anything_that_names_no_subdivision_of_the_country(self, country,
                                                                            region):
        assert region_code(country, region) is None


class TestTaxAddress:
    BILLING = {"line1": "1 Main St", "region": "TX", "country": "US"}
    SERVICE = {"line1": "9 Rue X", "region": "Quebec", "country": "CA"}

    def test_the_service_address_decides_when_the_customer_has_one(self):
        assert tax_address(self.BILLING, self.SERVICE) == ("CA", "CA-QC")

    def test_the_billing_address_decides_without_a_service_address(self):
        assert tax_address(self.BILLING, None) == ("US", "US-TX")

    def test_a_service_address_same_as_billing_means_the_billing_address(self):
        assert tax_address(self.BILLING, {"same_as_billing": True}) == ("US", "US-TX")

    def test_no_address_decides_nothing(self):
        assert tax_address(None, None) == (None, None)

    def test_an_address_without_a_region_gives_the_country_alone(self):
        assert tax_address({"line1": "1 Hauptstr.", "country": "de"}, None) == ("DE", None)


class TestTaxCategory:
    @pytest.mark.parametrize("code", ["standard", "reduced", "food_2", "a", "x" * 40])
    def test_accepts_lowercase_codes(self, code):
        assert is_tax_category(code)

    @pytest.mark.parametrize("code", ["", "Standard", "_x", "2x", "digital.services",
                                      "e-books", "with space", "x" * 41, None, 5])
    def test_refuses_anything_else(self, code):
        assert not is_tax_category(code)
