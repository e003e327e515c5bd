"""What the portal reads, scoped to the billing accounts a payer user was granted: the
invoice history (filtered, sorted, keyset-paginated, with what is due per currency), an
account's or a user's payments, and what a payment was applied to. Nothing here writes.

Paging is by keyset, never OFFSET: a page asks for the rows after (or before) the sort
key and id of the last (or first) row it showed, so page 100 costs what page 1 costs and
rows arriving meanwhile neither repeat nor vanish across pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, tuple_
from sqlalchemy.orm import Session

from billfold.core.db import among
from billfold.core.scope import Scope
from billfold.invoicing.models import Invoice
from billfold.payments.models import Payment, PaymentAllocation

SHOWN_STATUSES = ("open", "partially_paid", "paid", "void")
PAYABLE_STATUSES = ("open", "partially_paid")
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "": SHOWN_STATUSES, "unpaid": PAYABLE_STATUSES, "open": ("open",),
    "partially_paid": ("partially_paid",), "paid": ("paid",), "void": ("void",)}
# A payment with nothing to show for it: a declined attempt.
HIDDEN_PAYMENT_STATUSES = ("failed",)

AMOUNT_DUE = case((Invoice.status.in_(("void", "suppressed")), literal(0)),
                  else_=Invoice.total_minor + Invoice.adjustments_minor
                  - Invoice.amount_paid_minor)
SORT_KEYS: dict[str, Any] = {
    "issue_date": Invoice.issue_date,
    "due_date": func.coalesce(Invoice.due_date, Invoice.issue_date),
    "amount_due": AMOUNT_DUE,
    "number": Invoice.number,
}


@dataclass(frozen=True, slots=True)
class Filters:
    """Which invoices of the granted accounts a history page shows, and in what order."""

    account_ids: tuple[str, ...]
    statuses: tuple[str, ...] = SHOWN_STATUSES
    issued_from: date | None = None
    issued_to: date | None = None
    sort: str = "issue_date"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page starts: the sort key and id of a row next to it."""

    value: Any
    id: str

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, date) else self.value
        raw = json.dumps([value, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str, sort: str) -> Cursor | None:
        """The cursor ``text`` holds for ``sort``; None for anything that is not one (a
        link typed by hand starts again at the first page)."""
        if not text or len(text) > 400:
            return None
        try:
            value, row_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(row_id, str) or len(row_id) > 40:
                return None
            if sort in ("issue_date", "due_date"):
                return Cursor(date.fromisoformat(value), row_id)
            if sort == "amount_due" and isinstance(value, int) and not isinstance(value, bool):
                return Cursor(value, row_id)
            if sort == "number" and isinstance(value, str):
                return Cursor(value, row_id)
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
            return None
        return None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: str
    number: str
    status: str
    billing_account_id: str
    currency: str
    issue_date: date
    due_date: date | None
    total_minor: int
    amount_due_minor: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rows: list[HistoryRow]
    next_cursor: Cursor | None  # the link to the following page, if there is one
    previous_cursor: Cursor | None


_COLUMNS = (Invoice.id, Invoice.number, Invoice.status, Invoice.billing_account_id,
            Invoice.currency, Invoice.issue_date, Invoice.due_date, Invoice.total_minor,
            AMOUNT_DUE.label("amount_due_minor"))


def _where(session: Session, scope: Scope, filters: Filters) -> list[ColumnElement[bool]]:
    conditions = [Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
                  among(session, Invoice.billing_account_id, filters.account_ids),
                  among(session, Invoice.status, filters.statuses),
                  # A draft voided before it was issued was never presented to anyone.
                  Invoice.issue_date.is_not(None)]
    if filters.issued_from is not None:
        conditions.append(Invoice.issue_date >= filters.issued_from)
    if filters.issued_to is not None:
        conditions.append(Invoice.issue_date <= filters.issued_to)
    return conditions


def history_page(session: Session, scope: Scope, filters: Filters, *, limit: int,
                 after: Cursor | None = None, before: Cursor | None = None) -> HistoryPage:
    """One page of invoices: the first, the one after ``after``, or the one before
    ``before``."""
    if not filters.account_ids or not filters.statuses:
        return HistoryPage([], None, None)
    key = SORT_KEYS[filters.sort]
    backwards = before is not None
    # Walking back is walking the reversed order forward, then turning the page round.
    descending = filters.descending != backwards
    stmt = select(*_COLUMNS).where(*_where(session, scope, filters))
    start = before if backwards else after
    if start is not None:
        position = tuple_(key, Invoice.id)
        bound = tuple_(literal(start.value, type_=key.type), literal(start.id))
        stmt = stmt.where(position < bound if descending else position > bound)
    order = (key.desc(), Invoice.id.desc()) if descending else (key.asc(), Invoice.id.asc())
    found = [_row(r) for r in session.execute(stmt.order_by(*order).limit(limit + 1))]
    more = len(found) > limit
    rows = found[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return HistoryPage([], None, None)
    first, last = cursor_of(rows[0], filters.sort), cursor_of(rows[-1], filters.sort)
    if backwards:
        return HistoryPage(rows, last, first if more else None)
    return HistoryPage(rows, last if more else None, first if after is not None else None)


def cursor_of(row: HistoryRow, sort: str) -> Cursor:
    value = {"issue_date": row.issue_date, "due_date": row.due_date or row.issue_date,
             "amount_due": row.amount_due_minor, "number": row.number}[sort]
    return Cursor(value, row.id)


def _row(r: Any) -> HistoryRow:
    return HistoryRow(id=r.id, number=r.number or "", status=r.status,
                      billing_account_id=r.billing_account_id, currency=r.currency,
                      issue_date=r.issue_date, due_date=r.due_date,
                      total_minor=int(r.total_minor), amount_due_minor=int(r.amount_due_minor))


def due_totals(session: Session, scope: Scope, filters: Filters) -> dict[str, int]:
    """What the filtered invoices leave due, per currency (currencies owing nothing are
    left out)."""
    if not filters.account_ids or not filters.statuses:
        return {}
    rows = session.execute(
        select(Invoice.currency, func.sum(AMOUNT_DUE))
        .where(*_where(session, scope, filters), Invoice.status.in_(PAYABLE_STATUSES))
        .group_by(Invoice.currency).order_by(Invoice.currency))
    return {currency: int(total) for currency, total in rows if total}


def invoices_by_id(session: Session, scope: Scope, invoice_ids: Sequence[str]
                   ) -> dict[str, Invoice]:
    if not invoice_ids:
        return {}
    return {i.id: i for i in session.scalars(select(Invoice).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        among(session, Invoice.id, invoice_ids)))}


# -- payments ---------------------------------------------------------------------------------


def payments_of(session: Session, scope: Scope, account_ids: Sequence[str], *, limit: int,
                before_id: str | None = None) -> list[Payment]:
    """The accounts' payments, newest first (ids are time-ordered), declined attempts left
    out; ``limit + 1`` asked for tells whether there are more."""
    if not account_ids:
        return []
    stmt = select(Payment).where(
        Payment.tenant_id == scope.tenant_id, Payment.mode == scope.mode,
        among(session, Payment.billing_account_id, account_ids),
        Payment.status.not_in(HIDDEN_PAYMENT_STATUSES))
    if before_id:
        stmt = stmt.where(Payment.id < before_id)
    return list(session.scalars(stmt.order_by(Payment.id.desc()).limit(limit)))


def latest_payment_of_session(session: Session, pay_session_id: str) -> Payment | None:
    """The session's payment: the one that went through, else its latest attempt."""
    rows = list(session.scalars(select(Payment).where(Payment.pay_session_id == pay_session_id)
                                .order_by(Payment.created_at.desc(), Payment.id.desc())))
    kept = [p for p in rows if p.status not in HIDDEN_PAYMENT_STATUSES]
    return kept[0] if kept else (rows[0] if rows else None)


@dataclass(frozen=True, slots=True)
class Applied:
    """Money of a payment on one invoice, or held on the account (``invoice_id`` None)."""

    invoice_id: str | None
    invoice_number: str | None
    billing_account_id: str | None
    amount_minor: int


def applied_of(session: Session, payment: Payment) -> list[Applied]:
    """What the payment paid, net of what later refunds, returns or disputes took back,
    per invoice in the order first applied."""
    rows = session.execute(
        select(PaymentAllocation.invoice_id, PaymentAllocation.invoice_number,
               PaymentAllocation.billing_account_id, PaymentAllocation.amount_minor,
               Invoice.number)
        .join(Invoice, Invoice.id == PaymentAllocation.invoice_id, isouter=True)
        .where(PaymentAllocation.payment_id == payment.id)
        .order_by(PaymentAllocation.created_at, PaymentAllocation.id))
    merged: dict[tuple[str | None, str | None], Applied] = {}
    for invoice_id, number, account_id, amount, invoice_number in rows:
        key = (invoice_id, number if invoice_id is None else None)
        seen = merged.get(key)
        merged[key] = Applied(invoice_id, invoice_number or number, account_id,
                              int(amount) + (seen.amount_minor if seen else 0))
    return list(merged.values())
