"""Bill runs: pick the accounts due on or before ``as_of_date``, cut them into chunks that
workers claim as jobs, and bill each account in a transaction of its own.

Exactly once: an account's bill date is ``billing_account.next_bill_date`` (or, before its
first invoice, the first bill date on or after its start). Billing it writes, in one
transaction, the invoices, a ``billed_period`` row unique per (tenant, mode, account, bill
date) and the account's next bill date. A worker that dies mid-account leaves nothing of
it; a rerun or a second worker finds the account moved on (or the guard row) and skips it.
A failing account is rolled back, recorded with its reason, and the run goes on.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billfold.catalog import tax, tax_service
from billfold.core import bulk, clock, ids, jobs
from billfold.core.db import among, get_scoped, is_postgres, refresh_statistics
from billfold.core.errors import invalid
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing import delivery
from billfold.invoicing import generate as gen
from billfold.invoicing.models import (
    Adjustment,
    BilledPeriod,
    BillRun,
    BillRunChunk,
    BillRunFailure,
    Invoice,
    InvoiceLine,
)
from billfold.invoicing.service import (
    FINALIZED_HOOKS,
    due_date,
    next_numbers,
    post_invoice,
    settle_status,
)
from billfold.ledger import service as ledger
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.orders import service as orders
from billfold.orders.models import Order, PendingCharge, Service, ServiceQuantity
from billfold.orders.proration import QuantitySegment
from billfold.tenants import cycles
from billfold.tenants import service as tenants
from billfold.tenants.models import BillCycle

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
JOB_KIND = "invoicing.bill_run_chunk"
ONE_DAY = timedelta(days=1)


def _cycle(session: Session, bill_cycle_id: str) -> Any:
    return tenants.reference_row(session, BillCycle, bill_cycle_id)


def first_bill_date(cycle: Any, start_date: date) -> date:
    return cycles.next_bill_date(frequency=cycle.frequency, bill_day=cycle.bill_day,
                                 cycle_start=cycle.start_date, on_or_after=start_date)


def following_bill_date(cycle: Any, bill_date: date) -> date:
    return cycles.next_bill_date(frequency=cycle.frequency, bill_day=cycle.bill_day,
                                 cycle_start=cycle.start_date, on_or_after=bill_date + ONE_DAY)


def bill_date_of(session: Session, account: BillingAccount) -> date:
    if account.next_bill_date is not None:
        return account.next_bill_date
    return first_bill_date(_cycle(session, account.bill_cycle_id), account.start_date)


# -- starting a run ----------------------------------------------------------------------


def _due_accounts(session: Session, scope: Scope, as_of: date, bill_cycle_id: str | None
                  ) -> list[str]:
    """Active accounts not billed through a responsible account whose bill date is on or
    before ``as_of``, in id order."""
    stmt = select(BillingAccount.id, BillingAccount.next_bill_date, BillingAccount.start_date,
                  BillingAccount.bill_cycle_id).where(
        BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode,
        BillingAccount.status == "active", BillingAccount.responsible_account_id.is_(None),
        BillingAccount.start_date <= as_of,
        or_(BillingAccount.next_bill_date.is_(None), BillingAccount.next_bill_date <= as_of))
    if bill_cycle_id is not None:
        stmt = stmt.where(BillingAccount.bill_cycle_id == bill_cycle_id)
    due = []
    for account_id, next_date, start, cycle_id in session.execute(stmt.order_by(BillingAccount.id)):
        if next_date is None:
            next_date = first_bill_date(_cycle(session, cycle_id), start)
        if next_date <= as_of:
            due.append(account_id)
    return due


def start_bill_run(session: Session, scope: Scope, *, as_of_date: date,
                   bill_cycle_id: str | None = None, actor: str,
                   chunk_size: int = CHUNK_SIZE) -> tuple[BillRun, bool]:
    """Create a run for the accounts due and queue its chunks. Returns (run, created): with
    nothing due and a run of the same date and cycle already there, that run, and nothing
    is written."""
    if bill_cycle_id is not None:
        cycle = tenants.reference_row(session, BillCycle, bill_cycle_id) \
            if isinstance(bill_cycle_id, str) else None
        if cycle is None or cycle.tenant_id != scope.tenant_id or cycle.mode != scope.mode:
            raise invalid("bill_cycle_id", f"no bill cycle with id {bill_cycle_id!r}", "not_found")
    due = _due_accounts(session, scope, as_of_date, bill_cycle_id)
    if not due:
        earlier = session.scalars(select(BillRun).where(
            BillRun.tenant_id == scope.tenant_id, BillRun.mode == scope.mode,
            BillRun.as_of_date == as_of_date,
            BillRun.bill_cycle_id.is_(None) if bill_cycle_id is None
            else BillRun.bill_cycle_id == bill_cycle_id).order_by(BillRun.id.desc())).first()
        if earlier is not None:
            return earlier, False
    chunks = [due[i:i + chunk_size] for i in range(0, len(due), chunk_size)]
    run = BillRun(id=ids.new_id("bill_run"), tenant_id=scope.tenant_id, mode=scope.mode,
                  bill_cycle_id=bill_cycle_id, as_of_date=as_of_date,
                  status="running" if chunks else "completed", accounts_total=len(due),
                  chunks_total=len(chunks), created_by=actor[:100], created_at=clock.utcnow(),
                  completed_at=None if chunks else clock.utcnow())
    session.add(run)
    session.flush()
    for position, account_ids in enumerate(chunks):
        chunk = BillRunChunk(id=ids.new_id("bill_run_chunk"), tenant_id=scope.tenant_id,
                             mode=scope.mode, bill_run_id=run.id, position=position,
                             account_ids=account_ids, done_at=None)
        session.add(chunk)
        session.flush()
        jobs.enqueue(session, kind=JOB_KIND, key=chunk.id, scope=scope,
                     payload={"chunk_id": chunk.id})
    return run, True


# -- billing one account -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    account_id: str
    bill_date: date
    outcome: str  # invoiced | suppressed | nothing_to_bill
    invoice_ids: tuple[str, ...]


@dataclass(slots=True)
class _Loaded:
    """Everything generate() needs for a set of accounts, read with one query per table."""

    customers: dict[str, Any]
    exemptions: dict[str, list[tax.ExemptionRule]]
    services: dict[str, list[Any]]
    segments: dict[str, list[QuantitySegment]]
    charges: dict[str, list[Any]]
    adjustments: dict[str, list[Any]]
    suppressed: dict[str, list[Any]]  # by invoiced account
    carried_lines: dict[str, list[Any]]  # by suppressed invoice
    # The assignment key of each pending charge and service invoiced on an invoice of its
    # order's own (see _order_keys); those of orders held back are not loaded at all.
    keyed: dict[str, str] = field(default_factory=dict)


def _load(session: Session, scope: Scope, accounts: list[BillingAccount]) -> _Loaded:
    account_ids = [a.id for a in accounts]
    in_scope = (("tenant_id", scope.tenant_id), ("mode", scope.mode))

    def rows(model: Any, *conditions: Any, columns: Iterable[str] | None = None) -> list[Any]:
        table = model.__table__
        chosen = table.c if columns is None else [table.c[name] for name in columns]
        stmt = select(*chosen).where(*(table.c[k] == v for k, v in in_scope), *conditions)
        return list(session.execute(stmt).all())

    def grouped(items: Iterable[Any], key: str) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            found[getattr(item, key)].append(item)
        return found

    customers = {c.id: c for c in session.execute(select(
        Customer.id, Customer.customer_name, Customer.billing_address,
        Customer.service_address).where(
            among(session, Customer.id, {a.customer_id for a in accounts}))
        ).all()}
    s_table, c_table = Service.__table__, PendingCharge.__table__
    a_table, i_table = Adjustment.__table__, Invoice.__table__
    services = rows(Service, among(session, s_table.c.billing_account_id, account_ids),
                    s_table.c.status != "ended", columns=(
                        "id", "billing_account_id", "description", "unit_amount_minor",
                        "billing_timing", "tax_category", "tax_inclusive", "start_date",
                        "end_date", "billed_through", "order_id"))
    charges = rows(PendingCharge, among(session, c_table.c.billing_account_id, account_ids),
                   c_table.c.invoice_id.is_(None))
    held, keyed = _order_keys(session, scope, [*charges, *(
        s for s in services if s.billed_through is None)])
    if held:
        services = [s for s in services if s.id not in held]
        charges = [c for c in charges if c.id not in held]
    segments: dict[str, list[QuantitySegment]] = defaultdict(list)
    if services:
        q_table = ServiceQuantity.__table__
        # Tenant and mode lead the (tenant, mode, service, date) index; without them the
        # lookup reads every quantity of every tenant.
        for row in session.execute(select(q_table.c.service_id, q_table.c.effective_date,
                                          q_table.c.quantity).where(
                q_table.c.tenant_id == scope.tenant_id, q_table.c.mode == scope.mode,
                among(session, q_table.c.service_id, [s.id for s in services]))).all():
            segments[row.service_id].append(QuantitySegment(row.effective_date, row.quantity))
    suppressed = rows(Invoice, among(session, i_table.c.invoiced_account_id, account_ids),
                      i_table.c.status == "suppressed", i_table.c.carried_to_invoice_id.is_(None))
    carried_lines: dict[str, list[Any]] = defaultdict(list)
    if suppressed:
        l_table = InvoiceLine.__table__
        for line in session.execute(select(l_table).where(
                among(session, l_table.c.invoice_id, [i.id for i in suppressed])).order_by(
                l_table.c.invoice_id, l_table.c.position)):
            carried_lines[line.invoice_id].append(line)
    return _Loaded(
        customers=customers,
        exemptions=tax_service.exemptions_for(session, scope, account_ids),
        services=grouped(services, "billing_account_id"), segments=segments,
        charges=grouped(charges, "billing_account_id"),
        adjustments=grouped(rows(Adjustment,
                                 among(session, a_table.c.billing_account_id, account_ids),
                                 a_table.c.invoice_id.is_(None),
                                 a_table.c.applied_invoice_id.is_(None)), "billing_account_id"),
        suppressed=grouped(suppressed, "invoiced_account_id"), carried_lines=carried_lines,
        keyed=keyed,
    )


def _account_in(loaded: _Loaded, account: BillingAccount) -> gen.AccountIn:
    customer = loaded.customers[account.customer_id]
    country, region = tax.tax_address(customer.billing_address, customer.service_address)
    suppressed = sorted(loaded.suppressed.get(account.id, ()), key=lambda i: i.id)
    return gen.AccountIn(
        id=account.id, number=account.number,
        label=f"{account.number} · {customer.customer_name}",
        taxable=account.taxable, tax_country=country, tax_region=region,
        exemptions=tuple(loaded.exemptions.get(account.id, ())),
        services=tuple(gen.ServiceIn(
            id=s.id, description=s.description, unit_amount_minor=s.unit_amount_minor,
            billing_timing=s.billing_timing, tax_category=s.tax_category,
            tax_inclusive=s.tax_inclusive, start_date=s.start_date, end_date=s.end_date,
            billed_through=s.billed_through, segments=tuple(loaded.segments[s.id]))
            for s in sorted(loaded.services.get(account.id, ()), key=lambda s: s.id)),
        charges=tuple(gen.ChargeIn(
            id=c.id, description=c.description, quantity=c.quantity,
            unit_amount_minor=c.unit_amount_minor, amount_minor=c.amount_minor,
            tax_category=c.tax_category, tax_inclusive=c.tax_inclusive,
            charge_date=c.charge_date) for c in loaded.charges.get(account.id, ())),
        adjustments=tuple(gen.AdjustmentIn(a.id, a.kind, a.amount_minor, a.reason)
                          for a in loaded.adjustments.get(account.id, ())),
        carried=tuple(gen.CarriedInvoice(i.id, tuple(
            _carried(line) for line in loaded.carried_lines.get(i.id, ())
            if line.billing_account_id == account.id)) for i in suppressed),
    )


def _unit(session: Session, loaded: _Loaded, account: BillingAccount,
          managed: list[BillingAccount]) -> gen.BillingUnit:
    cycle = _cycle(session, account.bill_cycle_id)
    return gen.BillingUnit(
        account=_account_in(loaded, account), currency=account.currency,
        cycle=gen.Cycle(cycle.frequency, cycle.bill_day, cycle.start_date),
        minimum_invoice_amount_minor=account.minimum_invoice_amount_minor,
        rendering_type=account.invoice_rendering_type,
        managed=tuple(_account_in(loaded, m) for m in managed))


def _carried(line: Any) -> gen.Line:
    return gen.Line(
        billing_account_id=line.billing_account_id, kind=line.kind,
        description=line.description, quantity=line.quantity, amount_minor=line.amount_minor,
        tax_minor=line.tax_minor, unit_amount_minor=line.unit_amount_minor,
        tax_percent=line.tax_percent, tax_rate_id=line.tax_rate_id,
        tax_exemption_certificate=line.tax_exemption_certificate,
        tax_inclusive=line.tax_inclusive, tax_category=line.tax_category,
        period_start=line.period_start, period_end=line.period_end,
        service_id=line.service_id, pending_charge_id=line.pending_charge_id,
        carried_from_invoice_id=line.carried_from_invoice_id or line.invoice_id)


def bill_account(session: Session, scope: Scope, *, account_id: str, as_of: date,
                 bill_run_id: str, rules: tax.TaxRules | None = None,
                 on_invoice: Callable[[Session, Scope, Invoice], None] | None = None
                 ) -> Outcome | None:
    """Bill the account's next bill date if it is on or before ``as_of``; None when it is
    not due (already billed, by this run or another). Call inside a transaction."""
    account = session.get(BillingAccount, account_id, with_for_update=True)
    if account is None or account.tenant_id != scope.tenant_id or account.mode != scope.mode:
        return None
    if account.status != "active" or account.responsible_account_id is not None:
        return None
    bill_date = bill_date_of(session, account)
    if bill_date > as_of:
        return None
    guard = BilledPeriod(id=ids.new_id("bill_run_account"), tenant_id=scope.tenant_id,
                         mode=scope.mode, billing_account_id=account.id, bill_date=bill_date,
                         bill_run_id=bill_run_id, outcome="nothing_to_bill", invoice_ids=[],
                         at=clock.utcnow())
    try:
        with session.begin_nested():
            session.add(guard)
    except IntegrityError:
        return None  # billed already: another worker got here first
    cycle = _cycle(session, account.bill_cycle_id)
    managed = list(session.scalars(select(BillingAccount).where(  # see bill_batch
        BillingAccount.responsible_account_id == account.id,
        BillingAccount.status == "active").order_by(BillingAccount.id)))
    everyone = [account, *managed]
    if rules is None:
        rules = tax_service.load_tax_rules(session, scope)
    loaded = _load(session, scope, everyone)
    result = _generate(session, loaded, account, managed, bill_date, rules)

    invoices = _store(session, scope, account, result, bill_run_id, loaded.keyed)
    issued = [i for i in invoices if i.status != "suppressed"]
    for invoice in issued:
        if on_invoice is not None:
            on_invoice(session, scope, invoice)
    if issued:
        on_issued_many(session, scope, [(i.id, account.invoice_type) for i in issued])
    following = following_bill_date(cycle, bill_date)
    for billed in everyone:
        billed.next_bill_date = following
    guard.invoice_ids = [i.id for i in invoices]
    guard.outcome = ("invoiced" if any(i.status != "suppressed" for i in invoices)
                     else "suppressed" if invoices else "nothing_to_bill")
    session.flush()
    return Outcome(account.id, bill_date, guard.outcome, tuple(guard.invoice_ids))


def _store(session: Session, scope: Scope, account: BillingAccount, result: gen.Generated,
           bill_run_id: str, keys: dict[str, str]) -> list[Invoice]:
    now = clock.utcnow()
    posted = [d for d in result.invoices if not d.suppressed]
    numbers = iter(next_numbers(session, scope, len(posted)) if posted else [])
    invoices: list[Invoice] = []
    for draft in result.invoices:
        invoice = Invoice(
            id=ids.new_id("invoice"), tenant_id=scope.tenant_id, mode=scope.mode,
            number=None if draft.suppressed else next(numbers),
            status="suppressed" if draft.suppressed else "open",
            billing_account_id=draft.billing_account_id,
            invoiced_account_id=draft.invoiced_account_id, customer_id=account.customer_id,
            currency=draft.currency, rendering_type=draft.rendering_type,
            bill_date=draft.bill_date, period_start=draft.period_start,
            period_end=draft.period_end, issue_date=draft.bill_date,
            due_date=None if draft.suppressed else due_date(session, account, draft.bill_date),
            subtotal_minor=draft.subtotal_minor, tax_minor=draft.tax_minor,
            total_minor=draft.total_minor, amount_paid_minor=0, adjustments_minor=0,
            bill_run_id=bill_run_id, created_at=now,
            assignment_key=None if draft.suppressed else _key_of(draft, keys),
            delivery_status="not_required" if draft.suppressed
            else delivery.initial_status(account.invoice_type, account.email_notify),
            finalized_at=None if draft.suppressed else now)
        settle_status(invoice)
        invoices.append(invoice)
        session.add(invoice)
        lines = [InvoiceLine(
            id=ids.new_id("invoice_line"), tenant_id=scope.tenant_id, mode=scope.mode,
            invoice_id=invoice.id, position=position, kind=line.kind,
            billing_account_id=line.billing_account_id, description=line.description,
            quantity=line.quantity, unit_amount_minor=line.unit_amount_minor,
            amount_minor=line.amount_minor, tax_minor=line.tax_minor,
            tax_percent=line.tax_percent, tax_rate_id=line.tax_rate_id,
            tax_exemption_certificate=line.tax_exemption_certificate,
            tax_inclusive=line.tax_inclusive, tax_category=line.tax_category,
            period_start=line.period_start, period_end=line.period_end,
            service_id=line.service_id, pending_charge_id=line.pending_charge_id,
            adjustment_id=line.adjustment_id,
            carried_from_invoice_id=line.carried_from_invoice_id)
            for position, line in enumerate(draft.lines, start=1)]
        session.flush()
        session.add_all(lines)
        if draft.carried_invoice_ids:
            session.execute(update(Invoice).where(Invoice.id.in_(draft.carried_invoice_ids))
                            .values(carried_to_invoice_id=invoice.id))
        if draft.adjustment_ids:
            session.execute(update(Adjustment).where(Adjustment.id.in_(draft.adjustment_ids))
                            .values(applied_invoice_id=invoice.id))
        charge_ids = {line.pending_charge_id for line in draft.lines
                      if line.pending_charge_id and not line.carried_from_invoice_id}
        if charge_ids:
            session.execute(update(PendingCharge).where(PendingCharge.id.in_(charge_ids))
                            .values(invoice_id=invoice.id))
        if not draft.suppressed:
            session.flush()
            post_invoice(session, scope, invoice, lines)
            if invoice.assignment_key:
                for hook in FINALIZED_HOOKS:
                    hook(session, scope, [(invoice.id, invoice.assignment_key)])
    for service_id, through in result.billed_through.items():
        session.execute(update(Service).where(Service.id == service_id)
                        .values(billed_through=through))
    session.flush()
    return invoices


# -- orders paid by prepayment entries ---------------------------------------------------

# What becomes of an order with an assignment key (one placed with a prepayment entry)
# until its first invoice: held back, or invoiced on an invoice of its own that carries
# the key. payments.entries answers from the entry's state (the seed's workflow: the
# order is invoiced once its entry is balanced, on an invoice with the entry's key).
HOLD, OWN_INVOICE = "hold", "own_invoice"

# Called with (session, scope, {key, ...}) in the bill run's transaction; returns
# {key: HOLD or OWN_INVOICE}. A key left out is billed like any order.
ORDER_KEY_HOOKS: list[Callable[[Session, Scope, set[str]], dict[str, str]]] = []


def _order_keys(session: Session, scope: Scope, items: list[Any]
                ) -> tuple[set[str], dict[str, str]]:
    """Of these pending charges and services not billed yet, the ids held back, and the
    assignment key of each to be invoiced under its order's key."""
    order_ids = {item.order_id for item in items if item.order_id is not None}
    if not order_ids or not ORDER_KEY_HOOKS:
        return set(), {}
    key_of = {str(order_id): str(key) for order_id, key in session.execute(
        select(Order.id, Order.assignment_key).where(
            among(session, Order.id, order_ids), Order.assignment_key.is_not(None)))}
    if not key_of:
        return set(), {}
    how: dict[str, str] = {}
    for hook in ORDER_KEY_HOOKS:
        how.update(hook(session, scope, set(key_of.values())))
    held, keyed = set(), {}
    for item in items:
        key = key_of.get(item.order_id)
        if key is not None and how.get(key) == HOLD:
            held.add(item.id)
        elif key is not None and how.get(key) == OWN_INVOICE:
            keyed[item.id] = key
    return held, keyed


def _generate(session: Session, loaded: _Loaded, account: Any, managed: list[Any],
              bill_date: date, rules: tax.TaxRules) -> gen.Generated:
    """generate() for the account, except that what each keyed order brings goes on an
    invoice of its own carrying the key: one invoice per order and entry, so a payer who
    ordered twice in a period has each entry find its invoice. Such an invoice takes no
    adjustments or carried lines and is never suppressed (it is paid already)."""
    unit = _unit(session, loaded, account, managed)
    keyed, members = loaded.keyed, (unit.account, *unit.managed)
    keys = sorted({keyed[i] for i in [*(s.id for m in members for s in m.services),
                                      *(c.id for m in members for c in m.charges)]
                   if i in keyed}) if keyed else []
    if not keys:
        return gen.generate(unit, bill_date, rules)

    def part(key: str | None) -> gen.BillingUnit:
        def only(member: gen.AccountIn) -> gen.AccountIn:
            picked = replace(member,
                             services=tuple(s for s in member.services if keyed.get(s.id) == key),
                             charges=tuple(c for c in member.charges if keyed.get(c.id) == key))
            return picked if key is None else replace(picked, adjustments=(), carried=())
        return replace(unit, account=only(unit.account),
                       managed=tuple(only(m) for m in unit.managed),
                       minimum_invoice_amount_minor=unit.minimum_invoice_amount_minor
                       if key is None else 0)

    parts = [gen.generate(part(key), bill_date, rules) for key in [None, *keys]]
    return gen.Generated(
        invoices=tuple(d for p in parts for d in p.invoices),
        billed_through={k: v for p in parts for k, v in p.billed_through.items()},
        charge_ids=tuple(c for p in parts for c in p.charge_ids))


def _key_of(draft: gen.InvoiceDraft, keys: dict[str, str]) -> str | None:
    """The key of the order an invoice of its own was made for (see _generate)."""
    found = {keys[item] for line in draft.lines
             for item in (line.pending_charge_id, line.service_id) if item in keys}
    return found.pop() if len(found) == 1 else None


# -- billing many accounts at once -------------------------------------------------------

_BILLED_COLUMNS = tuple(BillingAccount.__table__.c[name] for name in (
    "id", "tenant_id", "mode", "customer_id", "number", "status", "responsible_account_id",
    "bill_cycle_id", "start_date", "next_bill_date", "currency", "taxable", "invoice_type",
    "invoice_rendering_type", "minimum_invoice_amount_minor", "payment_term_id", "email_notify"))

# Accounts billed in one transaction. 250 rather than 100: each batch costs a commit and
# a score of statements whatever its size (8-10% of a 20,000-account run on SQLite).
BATCH_SIZE = 250


def bill_batch(session: Session, scope: Scope, *, account_ids: list[str], as_of: date,
               bill_run_id: str, rules: tax.TaxRules,
               failures: list[tuple[str, date | None, str]]) -> list[str]:
    """Bill the next bill date of each due account among ``account_ids`` in the caller's
    transaction, with a handful of statements per table for the whole batch: the same
    invoices, guard rows, ledger entries and updates bill_account writes one by one.
    Accounts whose generation fails are left untouched and appended to ``failures``.
    Returns the ids still due after this bill date (an account several dates behind).

    Any database error leaves the transaction unusable: the caller rolls back and bills the
    batch one account per transaction instead, which isolates a failing account."""
    # Rows of the columns billing needs, not ORM objects: a batch reads hundreds.
    accounts: list[Any] = list(session.execute(
        select(*_BILLED_COLUMNS).where(among(session, BillingAccount.id, account_ids))
        .order_by(BillingAccount.id).with_for_update()))
    due: list[tuple[Any, date]] = []
    for account in accounts:
        if account.tenant_id != scope.tenant_id or account.mode != scope.mode \
                or account.status != "active" or account.responsible_account_id is not None:
            continue
        bill_date = bill_date_of(session, account)
        if bill_date <= as_of:
            due.append((account, bill_date))
    if not due:
        return []
    managed_of: dict[str, list[Any]] = defaultdict(list)
    # By the responsible-account index alone: ids are unique across tenants, and with
    # tenant and mode in the WHERE, SQLite (which keeps no statistics) preferred an index
    # leading with them and read every account of the tenant for each batch.
    for managed in session.execute(
            select(*_BILLED_COLUMNS).where(
                among(session, BillingAccount.responsible_account_id, [a.id for a, _ in due]))
            .order_by(BillingAccount.id).with_for_update()):
        assert managed.responsible_account_id is not None
        if managed.status == "active":
            managed_of[managed.responsible_account_id].append(managed)
    everyone = [a for a, _ in due] + [m for group in managed_of.values() for m in group]
    loaded = _load(session, scope, everyone)
    generated: list[tuple[Any, date, gen.Generated]] = []
    for account, bill_date in due:
        try:
            generated.append((account, bill_date, _generate(
                session, loaded, account, managed_of.get(account.id, []), bill_date, rules)))
        except Exception as exc:  # this account only; the batch goes on without it
            failures.append((account.id, bill_date, f"{type(exc).__name__}: {exc}"))
    _store_many(session, scope, generated, managed_of, bill_run_id, loaded.keyed)
    still_due = []
    for account, bill_date, _ in generated:
        if following_bill_date(_cycle(session, account.bill_cycle_id), bill_date) <= as_of:
            still_due.append(account.id)
    return still_due


def _store_many(session: Session, scope: Scope,
                generated: list[tuple[Any, date, gen.Generated]],
                managed_of: dict[str, list[Any]], bill_run_id: str, keys: dict[str, str]
                ) -> None:
    now = clock.utcnow()
    keyed: list[tuple[str, str]] = []
    tenant, mode = scope.tenant_id, scope.mode
    invoices: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    entries: list[ledger.NewEntry] = []
    issued: list[tuple[str, str]] = []  # (invoice id, owing account's invoice_type)
    carried: list[tuple[str, str]] = []
    applied: list[tuple[str, str]] = []
    charged: list[tuple[str, str]] = []
    through: list[tuple[str, date]] = []
    moved: list[tuple[str, date]] = []
    numbered: list[tuple[dict[str, Any], gen.InvoiceDraft]] = []
    for account, bill_date, result in generated:
        invoice_ids = []
        for draft in result.invoices:
            invoice_id = ids.new_id("invoice")
            invoice_ids.append(invoice_id)
            status = "suppressed"
            if not draft.suppressed:
                status = "open" if draft.total_minor > 0 else "paid"
                issued.append((invoice_id, account.invoice_type))
            invoices.append({
                "id": invoice_id, "tenant_id": tenant, "mode": mode,
                "number": None, "status": status,
                "billing_account_id": draft.billing_account_id,
                "invoiced_account_id": draft.invoiced_account_id,
                "customer_id": account.customer_id, "currency": draft.currency,
                "rendering_type": draft.rendering_type, "bill_date": draft.bill_date,
                "period_start": draft.period_start, "period_end": draft.period_end,
                "issue_date": draft.bill_date,
                "due_date": None if draft.suppressed else due_date(session, account,
                                                                   draft.bill_date),
                "subtotal_minor": draft.subtotal_minor, "tax_minor": draft.tax_minor,
                "total_minor": draft.total_minor, "amount_paid_minor": 0,
                "adjustments_minor": 0,
                "assignment_key": None if draft.suppressed else _key_of(draft, keys),
                "bill_run_id": bill_run_id,
                "carried_to_invoice_id": None, "memo": None, "pdf_key": None,
                "delivery_status": "not_required" if draft.suppressed
                else delivery.initial_status(account.invoice_type, account.email_notify),
                "delivery_error": None,
                "created_at": now, "finalized_at": None if draft.suppressed else now,
                "voided_at": None})
            for position, line in enumerate(draft.lines, start=1):
                lines.append({
                    "id": ids.new_id("invoice_line"), "tenant_id": tenant, "mode": mode,
                    "invoice_id": invoice_id, "position": position, "kind": line.kind,
                    "billing_account_id": line.billing_account_id,
                    "description": line.description, "quantity": line.quantity,
                    "unit_amount_minor": line.unit_amount_minor,
                    "amount_minor": line.amount_minor, "tax_minor": line.tax_minor,
                    "tax_percent": line.tax_percent, "tax_rate_id": line.tax_rate_id,
                    "tax_exemption_certificate": line.tax_exemption_certificate,
                    "tax_inclusive": line.tax_inclusive, "tax_category": line.tax_category,
                    "period_start": line.period_start, "period_end": line.period_end,
                    "service_id": line.service_id, "pending_charge_id": line.pending_charge_id,
                    "adjustment_id": line.adjustment_id,
                    "carried_from_invoice_id": line.carried_from_invoice_id})
                if line.pending_charge_id and not line.carried_from_invoice_id:
                    charged.append((line.pending_charge_id, invoice_id))
            carried += [(i, invoice_id) for i in draft.carried_invoice_ids]
            applied += [(i, invoice_id) for i in draft.adjustment_ids]
            if invoices[-1]["assignment_key"]:
                keyed.append((invoice_id, invoices[-1]["assignment_key"]))
            if not draft.suppressed:
                numbered.append((invoices[-1], draft))
        through += list(result.billed_through.items())
        following = following_bill_date(_cycle(session, account.bill_cycle_id), bill_date)
        for billed in [account, *managed_of.get(account.id, [])]:
            moved.append((billed.id, following))
        outcome = ("invoiced" if any(not d.suppressed for d in result.invoices)
                   else "suppressed" if result.invoices else "nothing_to_bill")
        guards.append({"id": ids.new_id("bill_run_account"), "tenant_id": tenant, "mode": mode,
                       "billing_account_id": account.id, "bill_date": bill_date,
                       "bill_run_id": bill_run_id, "outcome": outcome,
                       "invoice_ids": invoice_ids, "at": now})
    # Numbers last: the series' counter stays locked until commit (numbers are gap-free),
    # so what does not need them is written first, and a concurrent chunk waits only for
    # this one's invoices, lines and ledger entries.
    bulk.insert_rows(session, cast(Table, BilledPeriod.__table__), guards)
    bulk.update_rows(session, cast(Table, Service.__table__), "billed_through", sorted(through))
    bulk.update_rows(session, cast(Table, BillingAccount.__table__), "next_bill_date",
                     sorted(moved))
    for (row, draft), number in zip(numbered, next_numbers(session, scope, len(numbered))
                                    if numbered else [], strict=True):
        row["number"] = number
        if (entry := _invoice_entry(row["id"], draft, number)) is not None:
            entries.append(entry)
    bulk.insert_rows(session, cast(Table, Invoice.__table__), invoices)
    bulk.insert_rows(session, cast(Table, InvoiceLine.__table__), lines)
    for model, column, rows in (  # these point at the invoices just written
            (Invoice, "carried_to_invoice_id", carried),
            (Adjustment, "applied_invoice_id", applied),
            (PendingCharge, "invoice_id", charged)):
        bulk.update_rows(session, cast(Table, model.__table__), column, sorted(rows))
    ledger.post_many(session, scope, entries)
    if issued:
        on_issued_many(session, scope, issued)
    if keyed:
        for hook in FINALIZED_HOOKS:
            hook(session, scope, keyed)


def _invoice_entry(invoice_id: str, draft: gen.InvoiceDraft, number: str | None
                   ) -> ledger.NewEntry | None:
    charges = [line for line in draft.lines if line.kind != "adjustment"]
    net = sum(line.amount_minor for line in charges)
    tax_minor = sum(line.tax_minor for line in charges)
    postings = [
        PostingLine(AccountRef("receivable", draft.billing_account_id),
                    Money(net + tax_minor, draft.currency)),
        PostingLine(AccountRef("revenue"), Money(-net, draft.currency)),
        PostingLine(AccountRef("tax_payable"), Money(-tax_minor, draft.currency)),
    ]
    postings = [p for p in postings if p.amount.minor != 0]
    if len(postings) < 2:
        return None
    return ledger.NewEntry(SourceRef("invoice", invoice_id), postings, f"Invoice {number}",
                           draft.bill_date)


def on_issued_many(session: Session, scope: Scope, issued: list[tuple[str, str]]) -> None:
    """What happens to invoices issued by a batch: the hook delivery plugs into."""
    for hook in ISSUED_HOOKS:
        hook(session, scope, issued)


# Called with (session, scope, [(invoice id, invoice_type), ...]) for every batch of
# invoices a bill run issues, inside its transaction. invoicing.delivery registers here.
ISSUED_HOOKS: list[Callable[[Session, Scope, list[tuple[str, str]]], None]] = [
    delivery.invoices_issued]


# -- chunks and progress -----------------------------------------------------------------


# What a run grows fast, and what it reads that an import may just have filled (a run
# soon after loading 100,000 accounts and their services, before autovacuum has looked,
# was planned as if those tables were empty: 58 invoices/s instead of hundreds). Their
# statistics are refreshed before each chunk when stale.
RUN_TABLES = ("invoice", "invoice_line", "billed_period", "ledger_entry", "ledger_posting",
              "ledger_account", "job", "billing_account", "customer", "service",
              "service_quantity", "pending_charge", "adjustment", "tax_exemption")


def bill_chunk(session: Session, job: jobs.Job, *, on_invoice: Callable[..., None] | None = None,
               progress: Callable[[int], None] | None = None) -> None:
    """The job handler of a chunk: its accounts in batches, each batch in a transaction of
    its own, failures recorded and skipped."""
    chunk_id = job.payload["chunk_id"]
    chunk = session.get(BillRunChunk, chunk_id)
    if chunk is None or chunk.done_at is not None:
        return
    run = session.get(BillRun, chunk.bill_run_id)
    assert run is not None
    scope = Scope(chunk.tenant_id, chunk.mode)  # type: ignore[arg-type]
    account_ids = list(chunk.account_ids)
    as_of, run_id = run.as_of_date, run.id
    rules = tax_service.load_tax_rules(session, scope)
    session.commit()
    # Fresh statistics also discard PostgreSQL's cached plans, so the chunk's lookups by
    # arrays of keys may use generic plans (a quarter faster than planning each with its
    # values; db.plan_with_values is for batch work that refreshes nothing).
    refresh_statistics(session, RUN_TABLES)
    for start in range(0, len(account_ids), BATCH_SIZE):
        batch = account_ids[start:start + BATCH_SIZE]
        _bill_batch_or_each(session, scope, batch, as_of, run_id, rules, on_invoice)
        if progress is not None:
            progress(len(batch))
    # Two workers finishing a run's last chunks take turns here, so one of them sees the
    # other's chunk done and completes the run.
    session.get(BillRun, run_id, with_for_update=True)
    chunk = session.get(BillRunChunk, chunk_id, populate_existing=True)
    assert chunk is not None
    chunk.done_at = clock.utcnow()
    session.flush()
    left = session.scalar(select(func.count()).where(
        BillRunChunk.bill_run_id == run_id, BillRunChunk.done_at.is_(None)))
    if not left:
        session.execute(update(BillRun).where(BillRun.id == run_id, BillRun.status == "running")
                        .values(status="completed", completed_at=clock.utcnow()))
        orders.end_services(session, scope, as_of=as_of)
        delivery.bill_run_completed(session, scope, run_id)


def _bill_batch_or_each(session: Session, scope: Scope, batch: list[str], as_of: date,
                        run_id: str, rules: tax.TaxRules,
                        on_invoice: Callable[..., None] | None) -> None:
    """Bill a batch in one transaction; if that fails, each account in its own."""
    while batch:  # again for accounts several bill dates behind
        failures: list[tuple[str, date | None, str]] = []
        try:
            _fast_commits(session)
            batch = bill_batch(session, scope, account_ids=batch, as_of=as_of,
                               bill_run_id=run_id, rules=rules, failures=failures)
            _record_failures(session, scope, run_id, failures)
            session.commit()
        except Exception as exc:
            session.rollback()
            log.info("bill run %s: batch failed (%s); one account per transaction",
                     run_id, exc)
            for account_id in batch:
                _bill_alone(session, scope, account_id, as_of, run_id, rules, on_invoice)
            batch = []


def _fast_commits(session: Session) -> None:
    """On PostgreSQL, commit a bill-run transaction without waiting for its WAL flush. A
    crash may then lose the last few transactions, never half of one; and what a bill run
    lost it bills again on the next run, guarded like any rerun."""
    if is_postgres(session):
        session.execute(select(func.set_config("synchronous_commit", "off", True)))


def _record_failures(session: Session, scope: Scope, run_id: str,
                     failures: list[tuple[str, date | None, str]]) -> None:
    for account_id, bill_date, reason in failures:
        log.warning("bill run %s: account %s failed: %s", run_id, account_id, reason)
        session.add(BillRunFailure(
            id=ids.new_id("bill_run_account"), tenant_id=scope.tenant_id, mode=scope.mode,
            bill_run_id=run_id, billing_account_id=account_id, bill_date=bill_date,
            reason=reason[:2000], at=clock.utcnow()))


def _bill_alone(session: Session, scope: Scope, account_id: str, as_of: date, run_id: str,
                rules: tax.TaxRules, on_invoice: Callable[..., None] | None) -> None:
    """Bill one account, each bill date in a transaction of its own; a failure is rolled
    back and recorded with its reason."""
    while True:
        try:
            _fast_commits(session)
            outcome = bill_account(session, scope, account_id=account_id, as_of=as_of,
                                   bill_run_id=run_id, rules=rules, on_invoice=on_invoice)
            session.commit()
        except Exception as exc:  # one account's failure must not stop the run
            session.rollback()
            _record_failures(session, scope, run_id,
                             [(account_id, None, f"{type(exc).__name__}: {exc}")])
            session.commit()
            return
        if outcome is None:
            return


@dataclass(frozen=True, slots=True)
class RunReport:
    run: BillRun
    invoiced: int
    suppressed: int
    nothing_to_bill: int
    failed: int
    failures: list[BillRunFailure]
    totals: dict[str, int]  # total_minor of the run's posted invoices per currency
    invoice_count: int


def report(session: Session, scope: Scope, run_id: str) -> RunReport:
    run: BillRun = get_scoped(session, BillRun, run_id, scope, "bill_run")
    outcomes = dict(session.execute(select(BilledPeriod.outcome, func.count()).where(
        BilledPeriod.bill_run_id == run.id).group_by(BilledPeriod.outcome)).all())
    failures = list(session.scalars(select(BillRunFailure).where(
        BillRunFailure.bill_run_id == run.id).order_by(BillRunFailure.id).limit(100)))
    failed = session.scalar(select(func.count()).where(BillRunFailure.bill_run_id == run.id)) or 0
    totals: dict[str, int] = {}
    count = 0
    for currency, total, n in session.execute(
            select(Invoice.currency, func.sum(Invoice.total_minor), func.count()).where(
                Invoice.bill_run_id == run.id, Invoice.status != "suppressed")
            .group_by(Invoice.currency)):
        totals[currency] = int(total or 0)
        count += n
    return RunReport(run=run, invoiced=outcomes.get("invoiced", 0),
                     suppressed=outcomes.get("suppressed", 0),
                     nothing_to_bill=outcomes.get("nothing_to_bill", 0), failed=failed,
                     failures=failures, totals=totals, invoice_count=count)


def list_runs(session: Session, scope: Scope, *, limit: int, starting_after: str | None = None
              ) -> list[BillRun]:
    stmt = select(BillRun).where(BillRun.tenant_id == scope.tenant_id, BillRun.mode == scope.mode)
    if starting_after is not None:
        stmt = stmt.where(BillRun.id > starting_after)
    return list(session.scalars(stmt.order_by(BillRun.id).limit(limit)))
