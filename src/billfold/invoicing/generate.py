"""Invoice generation: a pure function of an account (with its managed accounts), their
services and charges, what earlier invoices left, the bill date and the tax rules.

No database, no clock: the bill run loads the inputs, calls ``generate`` and stores what
it returns. Given the same inputs it returns the same invoices, line for line.

On bill date B an account is billed, for each service, every day not billed yet up to the
end of the period B opens (``in_advance``) or up to B - 1 (``in_arrears``). Days are cut
along the bill cycle's periods and each piece is prorated by orders.proration, so a late
start, a quantity change or a cancellation inside a period costs exactly its share. Then
come the one-time charges dated on or before B, the lines of suppressed invoices carried
forward, and account-level adjustments (a credit only while the invoice stays at or above
zero; one that would take it below waits for a later invoice).

Billing hierarchy: a responsible account's managed accounts are billed with it. With
``aggregated`` rendering their lines join the responsible account's invoice (each line
names the account it was for); with ``per_account`` each managed account gets an invoice of
its own, owed by the responsible account. An invoice whose total is below the owing
account's minimum invoice amount is suppressed: it keeps its lines (for the record and to
carry forward) but gets no number, no posting and no delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from billfold.catalog import tax
from billfold.orders.proration import QuantitySegment, period_containing, service_charges

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Cycle:
    frequency: str
    bill_day: int
    start_date: date

    def period(self, day: date) -> tuple[date, date]:
        found = period_containing(frequency=self.frequency, bill_day=self.bill_day,
                                  cycle_start=self.start_date, day=day)
        return found.start, found.end


@dataclass(frozen=True, slots=True)
class ServiceIn:
    id: str
    description: str
    unit_amount_minor: int
    billing_timing: str  # in_advance | in_arrears
    tax_category: str
    tax_inclusive: bool
    start_date: date
    end_date: date | None
    billed_through: date | None
    segments: tuple[QuantitySegment, ...]


@dataclass(frozen=True, slots=True)
class ChargeIn:
    id: str
    description: str
    quantity: int
    unit_amount_minor: int
    amount_minor: int
    tax_category: str
    tax_inclusive: bool
    charge_date: date


@dataclass(frozen=True, slots=True)
class AdjustmentIn:
    id: str
    kind: str  # credit | debit
    amount_minor: int
    reason: str


@dataclass(frozen=True, slots=True)
class Line:
    billing_account_id: str
    kind: str  # recurring | one_time | adjustment | manual
    description: str
    quantity: int
    amount_minor: int  # net of tax
    tax_minor: int = 0
    unit_amount_minor: int | None = None
    tax_percent: str | None = None
    tax_rate_id: str | None = None
    tax_exemption_certificate: str | None = None
    tax_inclusive: bool = False
    tax_category: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    service_id: str | None = None
    pending_charge_id: str | None = None
    adjustment_id: str | None = None
    carried_from_invoice_id: str | None = None


@dataclass(frozen=True, slots=True)
class CarriedInvoice:
    """A suppressed invoice whose lines wait for this account's next invoice."""

    id: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class AccountIn:
    id: str
    number: str
    label: str  # how a group of lines is headed on an aggregated invoice
    taxable: bool
    tax_country: str | None
    tax_region: str | None
    exemptions: tuple[tax.ExemptionRule, ...] = ()
    services: tuple[ServiceIn, ...] = ()
    charges: tuple[ChargeIn, ...] = ()
    adjustments: tuple[AdjustmentIn, ...] = ()
    carried: tuple[CarriedInvoice, ...] = ()


@dataclass(frozen=True, slots=True)
class BillingUnit:
    """What one bill-run transaction bills: an account and the accounts it is responsible
    for (empty unless it has managed accounts)."""

    account: AccountIn
    currency: str
    cycle: Cycle
    minimum_invoice_amount_minor: int
    rendering_type: str | None  # aggregated | per_account, for a responsible account
    managed: tuple[AccountIn, ...] = ()


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    billing_account_id: str  # who owes it
    invoiced_account_id: str  # whose period it covers
    currency: str
    rendering_type: str | None
    bill_date: date
    period_start: date
    period_end: date
    lines: tuple[Line, ...]
    suppressed: bool
    carried_invoice_ids: tuple[str, ...]
    adjustment_ids: tuple[str, ...]

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def tax_minor(self) -> int:
        return sum(line.tax_minor for line in self.lines)

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor + self.tax_minor


@dataclass(frozen=True, slots=True)
class Generated:
    invoices: tuple[InvoiceDraft, ...]
    # The last day now billed, per service that was charged.
    billed_through: dict[str, date] = field(default_factory=dict)
    # One-time charges now on an invoice (suppressed ones included: they travel with it).
    charge_ids: tuple[str, ...] = ()


def generate(unit: BillingUnit, bill_date: date, rules: tax.TaxRules) -> Generated:
    period_start, period_end = unit.cycle.period(bill_date)
    billed_through: dict[str, date] = {}
    charge_ids: list[str] = []

    def lines_of(account: AccountIn) -> list[Line]:
        found = _recurring(account, unit.currency, unit.cycle, bill_date, rules, billed_through)
        found += _one_time(account, bill_date, rules, charge_ids)
        for carried in account.carried:
            found += list(carried.lines)
        return found

    groups: list[tuple[AccountIn, list[Line]]] = [(unit.account, lines_of(unit.account))]
    groups += [(managed, lines_of(managed)) for managed in unit.managed]

    def draft(invoiced: AccountIn, accounts: Sequence[tuple[AccountIn, list[Line]]],
              rendering_type: str | None) -> InvoiceDraft | None:
        lines = [line for _, group in accounts for line in group]
        carried = tuple(c.id for account, _ in accounts for c in account.carried)
        adjustment_lines = _adjustments([a for a, _ in accounts],
                                        sum(line.amount_minor + line.tax_minor for line in lines))
        if not lines and not adjustment_lines:
            return None
        total = sum(line.amount_minor + line.tax_minor for line in lines + adjustment_lines)
        minimum = unit.minimum_invoice_amount_minor
        suppressed = minimum > 0 and total < minimum
        if suppressed:
            # Adjustments are already in the ledger; they wait for an invoice that goes out.
            adjustment_lines = []
        return InvoiceDraft(
            billing_account_id=unit.account.id, invoiced_account_id=invoiced.id,
            currency=unit.currency, rendering_type=rendering_type, bill_date=bill_date,
            period_start=period_start, period_end=period_end,
            lines=tuple(lines + adjustment_lines), suppressed=suppressed,
            carried_invoice_ids=carried,
            adjustment_ids=tuple(line.adjustment_id for line in adjustment_lines
                                 if line.adjustment_id),
        )

    drafts: list[InvoiceDraft | None]
    if unit.managed and unit.rendering_type == "per_account":
        drafts = [draft(unit.account, groups[:1], None)]
        drafts += [draft(account, [(account, lines)], "per_account")
                   for account, lines in groups[1:]]
    elif unit.managed:
        drafts = [draft(unit.account, groups, "aggregated")]
    else:
        drafts = [draft(unit.account, groups, None)]
    return Generated(invoices=tuple(d for d in drafts if d is not None),
                     billed_through=billed_through, charge_ids=tuple(charge_ids))


def _tax(account: AccountIn, rules: tax.TaxRules, category: str, on: date) -> tax.TaxDecision:
    return tax.resolve(rules, taxable=account.taxable, country=account.tax_country,
                       region=account.tax_region, tax_category=category, on_date=on,
                       exemptions=account.exemptions)


def _taxed_line(account: AccountIn, rules: tax.TaxRules, bill_date: date, *, kind: str,
                description: str, quantity: int, amount_minor: int, category: str,
                inclusive: bool, **extra: object) -> Line:
    decision = _tax(account, rules, category, bill_date)
    net, tax_minor = tax.line_tax(amount_minor, decision, inclusive=inclusive)
    return Line(
        billing_account_id=account.id, kind=kind, description=description, quantity=quantity,
        amount_minor=net, tax_minor=tax_minor, tax_percent=decision.percent,
        tax_rate_id=decision.rate_id, tax_exemption_certificate=decision.exemption_certificate,
        tax_inclusive=inclusive, tax_category=category, **extra,  # type: ignore[arg-type]
    )


def _recurring(account: AccountIn, currency: str, cycle: Cycle, bill_date: date,
               rules: tax.TaxRules, billed_through: dict[str, date]) -> list[Line]:
    lines: list[Line] = []
    advance_end = cycle.period(bill_date)[1]
    for service in account.services:
        target = advance_end if service.billing_timing == "in_advance" else bill_date - ONE_DAY
        first = service.start_date
        if service.billed_through is not None:
            first = max(first, service.billed_through + ONE_DAY)
        last = target if service.end_date is None else min(target, service.end_date)
        if last < first:
            continue
        day = first
        while day <= last:
            start, end = cycle.period(day)
            for charge in service_charges(
                    service.segments, unit_amount_minor=service.unit_amount_minor,
                    currency=currency, period_start=start, period_end=end,
                    service_start=day, service_end=min(end, last)):
                lines.append(_taxed_line(
                    account, rules, bill_date, kind="recurring",
                    description=service.description, quantity=charge.quantity,
                    amount_minor=charge.amount_minor, category=service.tax_category,
                    inclusive=service.tax_inclusive,
                    unit_amount_minor=service.unit_amount_minor,
                    period_start=charge.start_date, period_end=charge.end_date,
                    service_id=service.id))
            day = end + ONE_DAY
        billed_through[service.id] = last
    return lines


def _one_time(account: AccountIn, bill_date: date, rules: tax.TaxRules,
              charge_ids: list[str]) -> list[Line]:
    lines = []
    for charge in sorted(account.charges, key=lambda c: (c.charge_date, c.id)):
        if charge.charge_date > bill_date:
            continue
        lines.append(_taxed_line(
            account, rules, bill_date, kind="one_time", description=charge.description,
            quantity=charge.quantity, amount_minor=charge.amount_minor,
            category=charge.tax_category, inclusive=charge.tax_inclusive,
            unit_amount_minor=charge.unit_amount_minor, pending_charge_id=charge.id))
        charge_ids.append(charge.id)
    return lines


def _adjustments(accounts: Sequence[AccountIn], running_total: int) -> list[Line]:
    """Debits always land; a credit lands while the invoice stays at or above zero."""
    lines = []
    for account in accounts:
        for adjustment in sorted(account.adjustments, key=lambda a: a.id):
            signed = adjustment.amount_minor if adjustment.kind == "debit" \
                else -adjustment.amount_minor
            if running_total + signed < 0:
                continue
            running_total += signed
            lines.append(Line(
                billing_account_id=account.id, kind="adjustment",
                description=adjustment.reason, quantity=1, amount_minor=signed,
                adjustment_id=adjustment.id))
    return lines
