"""invoicing.generate without a database: what one bill date bills for one account (and the
accounts it is responsible for)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from billfold.catalog import tax
from billfold.invoicing import generate as gen
from billfold.orders.proration import QuantitySegment

MONTHLY = gen.Cycle("monthly", 1, date(2026, 1, 1))
RULES = tax.TaxRules([
    tax.RateRule("txr_tx", "US", "US-TX", "standard", "8.25", "Texas sales tax",
                 date(2026, 1, 1), None),
    tax.RateRule("txr_us", "US", None, "standard", "5", "US tax", date(2026, 1, 1), None),
    tax.RateRule("txr_se", "SE", None, "standard", "25", "Moms", date(2026, 1, 1), None),
])
NO_RULES = tax.TaxRules()


def service(id: str = "svc_1", *, amount: int = 3000, timing: str = "in_advance",
            start: date = date(2026, 1, 1), end: date | None = None,
            billed_through: date | None = None, quantity: int = 1,
            segments: tuple[QuantitySegment, ...] | None = None,
            inclusive: bool = False) -> gen.ServiceIn:
    return gen.ServiceIn(
        id=id, description="Hosting", unit_amount_minor=amount, billing_timing=timing,
        tax_category="standard", tax_inclusive=inclusive, start_date=start, end_date=end,
        billed_through=billed_through,
        segments=segments or (QuantitySegment(start, quantity),))


def account(id: str = "ba_1", *, taxable: bool = False, country: str | None = "US",
            region: str | None = None, **extra: object) -> gen.AccountIn:
    return gen.AccountIn(id=id, number=id.upper(), label=id, taxable=taxable,
                         tax_country=country, tax_region=region, **extra)  # type: ignore[arg-type]


def unit(main: gen.AccountIn, *, minimum: int = 0, rendering: str | None = None,
         managed: tuple[gen.AccountIn, ...] = ()) -> gen.BillingUnit:
    return gen.BillingUnit(account=main, currency="USD", cycle=MONTHLY,
                           minimum_invoice_amount_minor=minimum, rendering_type=rendering,
                           managed=managed)


def bill(u: gen.BillingUnit, on: date = date(2026, 3, 1), rules: tax.TaxRules = NO_RULES
         ) -> gen.Generated:
    return gen.generate(u, on, rules)


class TestRecurring:
    def test_in_advance_bills_the_period_the_bill_date_opens(self):
        result = bill(unit(account(services=(service(billed_through=date(2026, 2, 28)),))))

        (invoice,) = result.invoices
        (line,) = invoice.lines
        assert (line.period_start, line.period_end) == (date(2026, 3, 1), date(2026, 3, 31))
        assert line.amount_minor == 3000
        assert (invoice.period_start, invoice.period_end) == (date(2026, 3, 1), date(2026, 3, 31))
        assert result.billed_through == {"svc_1": date(2026, 3, 31)}

    def test_in_arrears_bills_the_period_that_just_ended(self):
        result = bill(unit(account(services=(
            service(timing="in_arrears", billed_through=date(2026, 1, 31)),))))

        (line,) = result.invoices[0].lines
        assert (line.period_start, line.period_end) == (date(2026, 2, 1), date(2026, 2, 28))
        assert result.billed_through == {"svc_1": date(2026, 2, 28)}

    def test_a_mid_period_start_is_prorated_and_the_next_period_billed_whole(self):
        # Started 15 February: 14 of 28 days of February, then all of March.
        result = bill(unit(account(services=(service(start=date(2026, 2, 15)),))))

        lines = result.invoices[0].lines
        assert [(line.period_start, line.period_end, line.amount_minor) for line in lines] == [
            (date(2026, 2, 15), date(2026, 2, 28), 1500),
            (date(2026, 3, 1), date(2026, 3, 31), 3000),
        ]

    def test_a_quantity_change_splits_the_period_and_the_parts_add_up(self):
        segments = (QuantitySegment(date(2026, 1, 1), 1), QuantitySegment(date(2026, 3, 16), 3))
        result = bill(unit(account(services=(
            service(billed_through=date(2026, 2, 28), segments=segments),))))

        lines = result.invoices[0].lines
        assert [(line.quantity, line.period_start, line.period_end) for line in lines] == [
            (1, date(2026, 3, 1), date(2026, 3, 15)), (3, date(2026, 3, 16), date(2026, 3, 31))]
        # 15/31 of 3000 and 16/31 of 9000, each its own exact share.
        assert sum(line.amount_minor for line in lines) == 1452 + 4645

    def test_a_cancelled_service_bills_through_its_end_date_and_no_further(self):
        result = bill(unit(account(services=(
            service(billed_through=date(2026, 2, 28), end=date(2026, 3, 10)),))))

        (line,) = result.invoices[0].lines
        assert (line.period_start, line.period_end) == (date(2026, 3, 1), date(2026, 3, 10))
        assert line.amount_minor == 968  # 10 of 31 days
        assert result.billed_through == {"svc_1": date(2026, 3, 10)}

    def test_a_service_billed_already_adds_nothing(self):
        result = bill(unit(account(services=(service(billed_through=date(2026, 3, 31)),))))

        assert result.invoices == ()
        assert result.billed_through == {}


class TestCharges:
    def test_one_time_charges_dated_by_the_bill_date_land_and_later_ones_wait(self):
        charges = (
            gen.ChargeIn("chg_1", "Setup", 2, 500, 1000, "standard", False, date(2026, 2, 10)),
            gen.ChargeIn("chg_2", "Later", 1, 700, 700, "standard", False, date(2026, 3, 2)),
        )
        result = bill(unit(account(charges=charges)))

        assert [line.pending_charge_id for line in result.invoices[0].lines] == ["chg_1"]
        assert result.charge_ids == ("chg_1",)


class TestTax:
    def test_exclusive_tax_is_added_per_line_at_the_regions_rate(self):
        result = bill(unit(account(taxable=True, region="US-TX", services=(
            service(billed_through=date(2026, 2, 28), amount=1999),))), rules=RULES)

        (line,) = result.invoices[0].lines
        assert (line.amount_minor, line.tax_minor, line.tax_percent) == (1999, 165, "8.25")
        assert result.invoices[0].total_minor == 2164

    def test_inclusive_prices_are_split_into_net_and_tax(self):
        result = bill(unit(account(taxable=True, country="SE", region=None, services=(
            service(billed_through=date(2026, 2, 28), amount=12500, inclusive=True),))),
            rules=RULES)

        (line,) = result.invoices[0].lines
        assert (line.amount_minor, line.tax_minor) == (10000, 2500)
        assert result.invoices[0].total_minor == 12500

    def test_an_account_not_taxable_pays_no_tax(self):
        result = bill(unit(account(taxable=False, region="US-TX", services=(
            service(billed_through=date(2026, 2, 28)),))), rules=RULES)

        assert result.invoices[0].tax_minor == 0

    def test_an_exemption_valid_on_the_bill_date_exempts_and_names_its_certificate(self):
        exemption = tax.ExemptionRule("txe_1", "CERT-9", "US", "US-TX", date(2026, 1, 1), None)
        result = bill(unit(account(taxable=True, region="US-TX", exemptions=(exemption,),
                                   services=(service(billed_through=date(2026, 2, 28)),))),
                      rules=RULES)

        (line,) = result.invoices[0].lines
        assert (line.tax_minor, line.tax_exemption_certificate) == (0, "CERT-9")


class TestHierarchy:
    def managed(self, id: str, amount: int) -> gen.AccountIn:
        return account(id, services=(service(f"svc_{id}", amount=amount,
                                             billed_through=date(2026, 2, 28)),))

    def test_aggregated_puts_every_managed_accounts_lines_on_one_invoice(self):
        main = account("ba_r", services=(service("svc_r", billed_through=date(2026, 2, 28)),))
        result = bill(unit(main, rendering="aggregated",
                           managed=(self.managed("ba_m1", 1000), self.managed("ba_m2", 2000))))

        (invoice,) = result.invoices
        assert invoice.billing_account_id == "ba_r"
        assert [line.billing_account_id for line in invoice.lines] == ["ba_r", "ba_m1", "ba_m2"]
        assert invoice.total_minor == 6000

    def test_per_account_gives_each_managed_account_an_invoice_owed_by_the_responsible(self):
        main = account("ba_r")  # nothing of its own to bill
        result = bill(unit(main, rendering="per_account",
                           managed=(self.managed("ba_m1", 1000), self.managed("ba_m2", 2000))))

        assert [(i.billing_account_id, i.invoiced_account_id, i.total_minor)
                for i in result.invoices] == [("ba_r", "ba_m1", 1000), ("ba_r", "ba_m2", 2000)]


class TestMinimumAmount:
    def test_below_the_minimum_the_invoice_is_suppressed(self):
        result = bill(unit(account(services=(service(billed_through=date(2026, 2, 28)),)),
                           minimum=5000))

        (invoice,) = result.invoices
        assert invoice.suppressed
        assert invoice.total_minor == 3000

    def test_at_the_minimum_it_goes_out(self):
        result = bill(unit(account(services=(service(billed_through=date(2026, 2, 28)),)),
                           minimum=3000))

        assert not result.invoices[0].suppressed

    def test_carried_lines_join_the_next_invoice_and_count_toward_the_minimum(self):
        carried_line = gen.Line("ba_1", "recurring", "Hosting", 1, 3000,
                                period_start=date(2026, 2, 1), period_end=date(2026, 2, 28),
                                carried_from_invoice_id="inv_old")
        result = bill(unit(account(services=(service(billed_through=date(2026, 2, 28)),),
                                   carried=(gen.CarriedInvoice("inv_old", (carried_line,)),)),
                           minimum=5000))

        (invoice,) = result.invoices
        assert not invoice.suppressed
        assert invoice.total_minor == 6000
        assert invoice.carried_invoice_ids == ("inv_old",)


class TestAdjustments:
    def test_account_credits_land_while_the_invoice_stays_at_or_above_zero(self):
        adjustments = (gen.AdjustmentIn("adj_1", "credit", 1000, "Goodwill"),
                       gen.AdjustmentIn("adj_2", "credit", 5000, "Too big for now"),
                       gen.AdjustmentIn("adj_3", "debit", 200, "Late fee"))
        result = bill(unit(account(adjustments=adjustments, services=(
            service(billed_through=date(2026, 2, 28)),))))

        (invoice,) = result.invoices
        assert invoice.adjustment_ids == ("adj_1", "adj_3")
        assert invoice.total_minor == 3000 - 1000 + 200

    def test_a_suppressed_invoice_leaves_adjustments_waiting(self):
        result = bill(unit(account(adjustments=(gen.AdjustmentIn("adj_1", "debit", 100, "Fee"),),
                                   services=(service(billed_through=date(2026, 2, 28)),)),
                           minimum=10_000))

        assert result.invoices[0].suppressed
        assert result.invoices[0].adjustment_ids == ()


def test_generation_is_deterministic():
    u = unit(account(taxable=True, region="US-TX", services=(
        service(start=date(2026, 2, 11)), replace(service("svc_2"), billing_timing="in_arrears"))))

    assert bill(u, rules=RULES) == bill(u, rules=RULES)
