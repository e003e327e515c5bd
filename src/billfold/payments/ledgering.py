"""A payment's ledger entries and the allocation rows that say which invoices they moved.

Payment received (card captured, or bank debit submitted):
    cash clearing           debit  amount + fee
    receivable (account)    credit what it paid on the account's invoices
    unapplied cash (holder) credit what no invoice took
    external payments       credit what it paid on invoices Billfold does not keep
    fee revenue             credit the service fee
Refunds, voids, returns and chargebacks post the same lines the other way round for the
part they take back; a won chargeback posts them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from billfold.core import clock, ids, txcache
from billfold.core.db import Direct, DirectAmong, columns_of, insert_now
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.payments.allocation import Share
from billfold.payments.models import Payment, PaymentAllocation
from billfold.tenants import service as tenants


@dataclass(frozen=True, slots=True)
class Applied:
    """What a payment holds now: shares on invoices and unapplied cash of accounts, and
    money paid on invoices known only by number (a session that keeps no records)."""

    shares: list[Share]
    external: list[tuple[str | None, int]]  # (invoice number, amount)

    @property
    def total(self) -> int:
        return sum(s.amount_minor for s in self.shares) + sum(a for _, a in self.external)


def posting_lines(payment: Payment, shares: Sequence[Share], external_minor: int, fee_minor: int,
                  *, sign: int = 1) -> list[PostingLine]:
    """The lines of a payment's entry for these shares; ``sign=-1`` takes them back."""
    currency = payment.currency
    credits: dict[AccountRef, int] = defaultdict(int)
    for share in shares:
        kind = "receivable" if share.invoice_id else "unapplied_cash"
        credits[AccountRef(kind, share.billing_account_id)] += share.amount_minor
    if external_minor:
        credits[AccountRef("external_payments")] += external_minor
    if fee_minor:
        credits[AccountRef("fee_revenue")] += fee_minor
    total = sum(credits.values())
    lines = [PostingLine(AccountRef("cash_clearing"), Money(sign * total, currency))]
    lines += [PostingLine(ref, Money(-sign * amount, currency))
              for ref, amount in credits.items() if amount]
    return lines


def payment_accounts_read(scope: Scope, billing_account_id: str
                          ) -> tuple[DirectAmong, dict[str, object]]:
    """The read of the ledger accounts a payment on the billing account posts to (its
    service fee's and external payments' aside), in the account's currency: to read with
    the account, before posting (``ledger.accounts_known``)."""
    keys = [AccountRef("cash_clearing").key, AccountRef("receivable", billing_account_id).key,
            AccountRef("unapplied_cash", billing_account_id).key]
    return _PAYMENT_ACCOUNTS, {"tenant": scope.tenant_id, "mode": scope.mode,
                               "billing_account": billing_account_id, "keys": sorted(keys)}


def accounts_read(scope: Scope, payment: Payment) -> tuple[DirectAmong, dict[str, Any]]:
    """The read of the ledger accounts settling ``payment`` may post to, in its currency:
    to read before settling it (``ledger.accounts_known``)."""
    refs = {AccountRef("cash_clearing")}
    for line in payment.lines:
        if account_id := line.get("billing_account_id"):
            refs |= {AccountRef("receivable", account_id), AccountRef("unapplied_cash", account_id)}
        else:
            refs.add(AccountRef("external_payments"))
    if payment.fee_minor:
        refs.add(AccountRef("fee_revenue"))
    return ledger.accounts_read(scope, payment.currency, (ref.key for ref in refs))


_PAYMENT_ACCOUNTS = ledger.accounts_read_in(
    select(BillingAccount.currency).where(
        BillingAccount.id == bindparam("billing_account"),
        BillingAccount.tenant_id == bindparam("tenant")).scalar_subquery())


def post(session: Session, scope: Scope, payment: Payment, *, source: SourceRef,
         shares: Sequence[Share], external: Sequence[tuple[str | None, int]], fee_minor: int,
         kind: str, description: str, extra: Sequence[PostingLine] = (),
         invoices: dict[str, Invoice] | None = None) -> list[Invoice]:
    """Post one entry for these shares (negative shares take money off invoices), write
    their allocation rows and move the invoices' paid amounts. Returns the invoices
    touched, locked, with their new status. ``invoices`` are the shares' invoices if the
    caller locked them already. Every source is new (a payment, refund, dispute… made in
    this transaction), so the entry goes in with post_many's few statements."""
    sign = 1 if kind in ("payment", "reinstate") else -1
    external_minor = sum(a for _, a in external)
    magnitudes = [Share(s.invoice_id, s.billing_account_id, sign * s.amount_minor) for s in shares]
    lines = posting_lines(payment, magnitudes, sign * external_minor, sign * fee_minor, sign=sign)
    lines = [line for line in lines if line.amount.minor] + list(extra)
    if len(lines) >= 2:
        entry = ledger.NewEntry(source, lines, description, tenants.today(session, scope))
        if _PENDING in session.info:
            session.info[_PENDING].append(entry)
        else:
            ledger.post_many(session, scope, [entry])
    wanted = [s.invoice_id for s in shares if s.invoice_id]
    if invoices is None or not set(wanted) <= set(invoices):
        invoices = lock_invoices(session, wanted)
    now = clock.utcnow()
    base = {"tenant_id": scope.tenant_id, "mode": scope.mode, "payment_id": payment.id,
            "kind": kind, "created_at": now}
    rows = [{**base, "id": ids.new_id("payment_allocation"), "invoice_id": s.invoice_id,
             "invoice_number": invoices[s.invoice_id].number if s.invoice_id else None,
             "billing_account_id": s.billing_account_id, "amount_minor": s.amount_minor}
            for s in shares if s.amount_minor]
    rows += [{**base, "id": ids.new_id("payment_allocation"), "invoice_id": None,
              "invoice_number": number, "billing_account_id": None, "amount_minor": amount}
             for number, amount in external if amount]
    if payment in session.new:  # recorded just now (a check): inserted here, not flushed
        insert_now(session, payment)
    _INSERT_ALLOCATION.run_many(session, rows)
    # The invoices are written with one statement, not by the session's unit of work
    # (which cost twice as much): the new values go into the session as written, not as
    # changes to flush. Not in a savepoint, whose rollback forgets only what the unit of
    # work wrote: the session would keep the new values.
    direct = not session.in_nested_transaction()
    touched = {}
    for share in shares:
        if share.invoice_id:
            invoice = touched[share.invoice_id] = invoices[share.invoice_id]
            paid = invoice.amount_paid_minor + share.amount_minor
            if direct:
                set_committed_value(invoice, "amount_paid_minor", paid)
                set_committed_value(invoice, "status", invoicing.settled_status(invoice))
            else:
                invoice.amount_paid_minor = paid
                invoicing.settle_status(invoice)
    if direct:
        _SET_PAID.run_many(session, [{"invoice_id": i.id, "paid": i.amount_paid_minor,
                                      "status": i.status} for i in touched.values()])
    session.flush()  # whatever else is pending, as callers expect of post
    return list(touched.values())


_PENDING = "billfold.payments.entries_to_post"
_INSERT_ALLOCATION = Direct(cast(Table, PaymentAllocation.__table__).insert())
_INVOICE_TABLE = cast(Table, Invoice.__table__)
_SET_PAID = Direct(update(_INVOICE_TABLE).where(_INVOICE_TABLE.c.id == bindparam("invoice_id"))
                   .values(amount_paid_minor=bindparam("paid"), status=bindparam("status")))


@contextmanager
def posting_last(session: Session, scope: Scope) -> Iterator[None]:
    """Entries ``post`` makes inside go into the ledger when the block ends. Every payment
    updates the same few balance rows (cash clearing, fee revenue) and PostgreSQL holds
    their locks until commit, so concurrent payments queue there; the later the update,
    the shorter the queue."""
    session.info[_PENDING] = []
    try:
        yield
        entries = session.info[_PENDING]
    finally:
        session.info.pop(_PENDING, None)
    ledger.post_many(session, scope, entries)


def lock_invoices(session: Session, invoice_ids: Sequence[str]) -> dict[str, Invoice]:
    """The invoices, locked in id order (no lock-order deadlocks between payments).
    When this transaction locked all of them already (``invoices_locked``), those are
    returned as they are, with no statement."""
    wanted = sorted(set(invoice_ids))
    if not wanted:
        return {}
    held: dict[str, Invoice] = txcache.cached(session, _LOCKED_INVOICES, dict)
    if all(i in held for i in wanted):
        return {i: held[i] for i in wanted}
    return {i.id: i for i in session.scalars(_LOCK_INVOICES, {"ids": wanted})}


def invoices_locked(session: Session, invoices: Iterable[Invoice]) -> None:
    """Note invoices this transaction has just read FOR UPDATE (as locked: a locking read
    loads over what the session held, make_sessionmaker): lock_invoices returns them, for
    as long as the transaction lasts (a savepoint's end forgets them, with its locks). On SQLite a read
    is as good as the lock: every transaction there holds the one writer's lock from its
    first statement (BEGIN IMMEDIATE), so no one can change them meanwhile."""
    held: dict[str, Invoice] = txcache.cached(session, _LOCKED_INVOICES, dict)
    held.update((invoice.id, invoice) for invoice in invoices)


_LOCKED_INVOICES = "billfold.locked_invoices"


# Built once (every payment runs it); a payment names a few invoices, so a plain IN list.
# The rows as locked replace what the session read of them before: an invoice it still
# held from a read before a concurrent payment's commit would show that payment unpaid.
# The same, run directly, for a transaction that holds none of them yet (nothing to
# refresh): its rows made instances with db.loaded, then noted with invoices_locked.
INVOICES_LOCKED = DirectAmong(lambda _dialect, among: (
    select(*columns_of(Invoice)).where(
        Invoice.tenant_id == bindparam("tenant"), Invoice.mode == bindparam("mode"),
        among(Invoice.id))
    .order_by(Invoice.id).with_for_update()), "ids")
_LOCK_INVOICES = (select(Invoice).where(Invoice.id.in_(bindparam("ids", expanding=True)))
                  .order_by(Invoice.id).with_for_update())


def applied(session: Session, payment_id: str) -> Applied:
    """Net of every allocation of the payment, in the order the money was first applied."""
    rows = session.execute(
        select(PaymentAllocation.invoice_id, PaymentAllocation.billing_account_id,
               PaymentAllocation.invoice_number,
               func.sum(PaymentAllocation.amount_minor), func.min(PaymentAllocation.id))
        .where(PaymentAllocation.payment_id == payment_id)
        .group_by(PaymentAllocation.invoice_id, PaymentAllocation.billing_account_id,
                  PaymentAllocation.invoice_number)
        .order_by(func.min(PaymentAllocation.id))).all()
    shares, external = [], []
    for invoice_id, account_id, number, total, _ in rows:
        if not total:
            continue
        if account_id is None:
            external.append((number, int(total)))
        else:
            shares.append(Share(invoice_id, account_id, int(total)))
    return Applied(shares, external)
