"""Pay sessions: what a payer is handed to pay on the hosted page, created natively
(``POST /v1/pay_sessions``) or from a Cloud Payments V2 request. Services never commit."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from billfold.access import payers as payer_users
from billfold.core import clock, db, ids
from billfold.core.db import among, persisted
from billfold.core.errors import BillfoldError, Conflict, FieldError, NotFound, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import Invoice
from billfold.notifications import targets
from billfold.payments.models import PaySession
from billfold.tenants import service as tenants

MAX_LINES = 500
PAYABLE_STATUSES = ("open", "partially_paid")


class SessionExpired(BillfoldError):
    def __init__(self) -> None:
        super().__init__(detail="This payment link has expired. Ask for a new one.",
                         code="pay_session_expired", status=410, title="Payment link expired")


class SessionPaid(Conflict):
    def __init__(self) -> None:
        super().__init__("This payment link has been paid already.", code="pay_session_paid")


@dataclass(frozen=True, slots=True)
class Created:
    session: PaySession
    token: str  # shown once, in the URL; only its hash is stored

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/pay/{self.token}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


POSTBACK_FIELDS = frozenset({"postback_url", "PostBackURL"})


def check_urls(session: Session, scope: Scope, urls: Mapping[str, str | None]) -> list[FieldError]:
    """ReturnURL, PostBackURL and CssUrl must be on one of the tenant's allowed origins; a
    postback URL whose host is a loopback name or a literal address Billfold may not
    connect to is refused as well (a name is judged when the postback is sent)."""
    allowed = tenants.get_settings(session, scope).allowed_origins
    problems = []
    for field_name, url in urls.items():
        if url is None:
            continue
        if not allowed:
            problems.append(FieldError(field_name, "no allowed origins are set for this mode; "
                                       "add the origin to allowed_origins in /v1/settings first",
                                       "origin_not_allowed"))
        elif not targets.matches_origin(url, allowed):
            problems.append(FieldError(field_name, "is not on one of the allowed origins "
                                       f"({', '.join(allowed)})", "origin_not_allowed"))
        elif field_name in POSTBACK_FIELDS:
            try:
                targets.check_literal(url, allow_private=tenants.private_targets_allowed(
                    session, scope))
            except targets.UnsafeTarget as exc:
                problems.append(FieldError(field_name, exc.detail, exc.code))
    return problems


def line_from_invoice(key: str, invoice: Invoice, account: BillingAccount, *,
                      allow_partial: bool = False, minimum_minor: int | None = None,
                      cc_fee_minor: int = 0, ach_fee_minor: int = 0,
                      type_id: int | None = None) -> dict[str, Any]:
    return {
        "key": key, "invoice_id": invoice.id, "invoice_number": invoice.number,
        "billing_account_id": account.id, "account_number": account.number,
        "type_id": type_id,
        "invoice_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "balance_due_minor": invoice.amount_due_minor, "cc_fee_minor": cc_fee_minor,
        "ach_fee_minor": ach_fee_minor, "minimum_amount_due_minor": minimum_minor,
        "allow_partial": allow_partial,
    }


def new_session(session: Session, scope: Scope, *, kind: str, currency: str,
                lines: list[dict[str, Any]], payers: list[dict[str, Any]],
                create_customer_record: bool = False, allow_card: bool = True,
                allow_ach: bool = True, options: Mapping[str, Any] | None = None,
                return_url: str | None = None, postback_url: str | None = None,
                css_url: str | None = None, biller_reference: str | None = None,
                view_mode: int = 0, page_load_override: int | None = None,
                locale: str | None = None, entry_id: str | None = None) -> Created:
    """Store a session over already-checked lines and hand back its one-time token."""
    settings = tenants.get_settings(session, scope)
    token = secrets.token_urlsafe(24)
    now = clock.utcnow()
    values = {
        "id": ids.new_id("pay_session"), "tenant_id": scope.tenant_id, "mode": scope.mode,
        "token_hash": token_hash(token), "kind": kind, "status": "open", "currency": currency,
        "lines": lines, "payers": payers, "create_customer_record": create_customer_record,
        "allow_card": allow_card, "allow_ach": allow_ach,
        "options": {"allow_remove": True, "allow_view_statement": False,
                 "allow_view_related": False, "allow_remind_me": False,
                 "allow_register_account": False, **(options or {})},
        "return_url": return_url, "postback_url": postback_url, "css_url": css_url,
        "biller_reference": biller_reference, "view_mode": view_mode,
        "page_load_override": page_load_override, "locale": locale, "entry_id": entry_id,
        "payment_id": None, "created_at": now, "paid_at": None,
        "expires_at": _expiry(session, scope, settings.pay_session_minutes)}
    # One prebuilt INSERT rather than a unit-of-work flush: sessions are made at a rate.
    _INSERT_SESSION.run(session, values)
    return Created(persisted(session, PaySession, values), token)


_INSERT_SESSION = db.Direct(cast(Table, PaySession.__table__).insert())


def _expiry(session: Session, scope: Scope, minutes: int) -> datetime:
    # On the scope's own clock, so a test clock moved forward expires test sessions.
    return tenants.now(session, scope) + timedelta(minutes=minutes)


def create_native(session: Session, scope: Scope, *, invoices: Sequence[Mapping[str, Any]],
                  allow_card: bool = True, allow_ach: bool = True, allow_remove: bool = True,
                  return_url: str | None = None, postback_url: str | None = None,
                  css_url: str | None = None, reference: str | None = None,
                  locale: str | None = None, view_mode: int = 0, currency: str | None = None,
                  payer: Mapping[str, Any] | None = None,
                  payer_user_id: str | None = None, own_origin: str | None = None) -> Created:
    """A session over invoices of this tenant, each {invoice_id, allow_partial?,
    minimum_amount_minor?, card_fee_minor?, ach_fee_minor?}, or given inline — invoices
    Billfold does not keep: {number, amount_due_minor, due_date?, account_number?, and the
    same options} in ``currency``, paid by ``payer`` {name?, email?}. ``payer_user_id``
    (a session the portal makes for a signed-in payer) offers that user's saved payment
    methods on the page and lets the payer save a new one. ``return_url`` may also be on
    ``own_origin`` (Billfold's own, in ``targets.origin_of`` form): the portal sends its
    payer back to itself, an origin no tenant lists."""
    returning = None if own_origin and targets.matches_origin(return_url or "", [own_origin]) \
        else return_url
    problems = check_urls(session, scope, {"return_url": returning,
                                           "postback_url": postback_url, "css_url": css_url})
    if not allow_card and not allow_ach:
        problems.append(FieldError("allow_ach", "card and bank payments cannot both be off"))
    if payer_user_id is not None and payer_users.get_user(session, scope, payer_user_id) is None:
        problems.append(FieldError("payer_user_id", "no such payer user", "not_found"))
    if not 1 <= len(invoices) <= MAX_LINES:
        problems.append(FieldError("invoices", f"give 1 to {MAX_LINES} invoices"))
    wanted = [str(i.get("invoice_id")) for i in invoices if i.get("invoice_id")]
    found = {row.id: row for row in _PAYABLE.run(session, {
        "tenant": scope.tenant_id, "mode": scope.mode, "ids": wanted})} if wanted else {}
    lines, currencies = [], set()
    for index, raw in enumerate(invoices):
        where = f"invoices[{index}]"
        if not raw.get("invoice_id"):
            lines += _inline(index, raw, currency, problems)
            currencies.add(currency or "")
            continue
        invoice = found.get(str(raw.get("invoice_id")))
        if invoice is None:
            problems.append(FieldError(f"{where}.invoice_id", "no such invoice", "not_found"))
            continue
        due = _amount_due(invoice)
        if invoice.status not in PAYABLE_STATUSES or due <= 0:
            problems.append(FieldError(f"{where}.invoice_id",
                                       f"is {invoice.status}; only open invoices can be paid",
                                       "invoice_not_payable"))
            continue
        if wanted.count(invoice.id) > 1:
            problems.append(FieldError(f"{where}.invoice_id", "is listed twice"))
            continue
        minimum = raw.get("minimum_amount_minor")
        if minimum is not None and minimum > due:
            problems.append(FieldError(f"{where}.minimum_amount_minor",
                                       "is more than the invoice's amount due"))
        currencies.add(invoice.currency)
        lines.append({
            "key": str(index + 1), "invoice_id": invoice.id, "invoice_number": invoice.number,
            "billing_account_id": invoice.billing_account_id,
            "account_number": invoice.account_number, "type_id": None,
            "invoice_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
            "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
            "balance_due_minor": due, "cc_fee_minor": int(raw.get("card_fee_minor") or 0),
            "ach_fee_minor": int(raw.get("ach_fee_minor") or 0),
            "minimum_amount_due_minor": minimum,
            "allow_partial": bool(raw.get("allow_partial", False))})
    if "" in currencies:
        problems.append(FieldError("currency", "is required with invoices given inline",
                                   "required"))
    elif len(currencies) > 1:
        problems.append(FieldError("invoices", "are in more than one currency; pay each "
                                   "currency in a session of its own", "currency_mismatch"))
    if problems:
        raise ValidationFailed(problems)
    firsts = {line["billing_account_id"]: found[line["invoice_id"]] for line in reversed(lines)
              if line["invoice_id"]}
    payers = [_payer_row(firsts[a]) for a in dict.fromkeys(
        line["billing_account_id"] for line in lines if line["billing_account_id"])]
    if any(not line["billing_account_id"] for line in lines):
        payers.append({"account_number": None, "display_account_number": None,
                       "billing_account_id": None, "name": (payer or {}).get("name"),
                       "address": None, "city": None, "state": None, "zip": None,
                       "email": (payer or {}).get("email")})
    options: dict[str, Any] = {"allow_remove": allow_remove}
    if payer_user_id is not None:
        options["payer_user_id"] = payer_user_id
    return new_session(session, scope, kind="native", currency=currencies.pop(), lines=lines,
                       payers=payers, create_customer_record=bool(found), allow_card=allow_card,
                       allow_ach=allow_ach, options=options,
                       return_url=return_url, postback_url=postback_url, css_url=css_url,
                       biller_reference=reference, locale=locale, view_mode=view_mode)


# What a session needs of its invoices, their accounts and customers, in one statement
# built once per dialect (and, on PostgreSQL, per number of invoices: db.DirectAmong).
_PAYABLE = db.DirectAmong(lambda dialect, among: (
    select(Invoice.id, Invoice.number, Invoice.status, Invoice.billing_account_id,
           Invoice.currency, Invoice.issue_date, Invoice.due_date, Invoice.total_minor,
           Invoice.adjustments_minor, Invoice.amount_paid_minor,
           BillingAccount.number.label("account_number"), Customer.customer_name,
           Customer.primary_email, Customer.billing_address)
    .join(BillingAccount, BillingAccount.id == Invoice.billing_account_id)
    .join(Customer, Customer.id == BillingAccount.customer_id)
    .where(Invoice.tenant_id == bindparam("tenant"), Invoice.mode == bindparam("mode"),
           among(Invoice.id))), "ids")


def _amount_due(row: Any) -> int:
    if row.status in ("void", "suppressed"):
        return 0
    return int(row.total_minor + row.adjustments_minor - row.amount_paid_minor)


def _payer_row(row: Any) -> dict[str, Any]:
    address = row.billing_address or {}
    return {"account_number": row.account_number, "display_account_number": None,
            "billing_account_id": row.billing_account_id, "name": row.customer_name,
            "address": address.get("line1"), "city": address.get("city"),
            "state": address.get("region"), "zip": address.get("postal_code"),
            "email": row.primary_email}


def _inline(index: int, raw: Mapping[str, Any], currency: str | None,
            problems: list[FieldError]) -> list[dict[str, Any]]:
    """A line for an invoice the biller keeps elsewhere: what it says is what is paid."""
    where = f"invoices[{index}]"
    number, amount = raw.get("number"), raw.get("amount_due_minor")
    found = len(problems)
    if not isinstance(number, str) or not number.strip() or len(number) > 100:
        problems.append(FieldError(f"{where}.number", "give an invoice_id, or the number (1 to "
                                   "100 characters) and amount_due_minor of an invoice kept "
                                   "elsewhere", "required"))
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 10**15:
        problems.append(FieldError(f"{where}.amount_due_minor", "must be from 1 to 10^15",
                                   "required"))
    minimum = raw.get("minimum_amount_minor")
    if isinstance(amount, int) and minimum is not None and minimum > amount:
        problems.append(FieldError(f"{where}.minimum_amount_minor",
                                   "is more than the amount due"))
    if len(problems) > found or currency is None:
        return []
    due = raw.get("due_date")
    return [{"key": str(index + 1), "invoice_id": None, "invoice_number": str(number).strip(),
             "billing_account_id": None, "account_number": raw.get("account_number"),
             "type_id": None, "invoice_date": None,
             "due_date": due.isoformat() if isinstance(due, date) else due,
             "balance_due_minor": amount, "cc_fee_minor": int(raw.get("card_fee_minor") or 0),
             "ach_fee_minor": int(raw.get("ach_fee_minor") or 0),
             "minimum_amount_due_minor": minimum,
             "allow_partial": bool(raw.get("allow_partial", False))}]


def first_of(session: Session, scope: Scope, model: Any) -> Any:
    """The scope's oldest row of ``model`` (the default bill cycle or category of an
    account created for a payer)."""
    return session.scalars(select(model).where(
        model.tenant_id == scope.tenant_id, model.mode == scope.mode)
        .order_by(model.created_at, model.id).limit(1)).first()


def payers_of(session: Session, accounts: Sequence[BillingAccount]) -> list[dict[str, Any]]:
    """The payers as the page and the postback show them: from the customer records."""
    customers = {c.id: c for c in session.scalars(select(Customer).where(
        among(session, Customer.id, {a.customer_id for a in accounts})))}
    result = []
    for account in accounts:
        customer = customers[account.customer_id]
        address = customer.billing_address or {}
        result.append({
            "account_number": account.number, "display_account_number": None,
            "billing_account_id": account.id, "name": customer.customer_name,
            "address": address.get("line1"), "city": address.get("city"),
            "state": address.get("region"), "zip": address.get("postal_code"),
            "email": customer.primary_email})
    return result


def find(session: Session, token: str, *, for_update: bool = False) -> PaySession:
    """The session a page URL's token names; NotFound for any token that names none."""
    stmt = select(PaySession).where(PaySession.token_hash == token_hash(token))
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise NotFound("pay_session", "(token)")
    return row


def get(session: Session, scope: Scope, session_id: str) -> PaySession:
    row = session.get(PaySession, session_id)
    if row is None or row.tenant_id != scope.tenant_id or row.mode != scope.mode:
        raise NotFound("pay_session", session_id)
    return row


def list_sessions(session: Session, scope: Scope, *, limit: int,
                  starting_after: str | None = None) -> list[PaySession]:
    stmt = select(PaySession).where(PaySession.tenant_id == scope.tenant_id,
                                    PaySession.mode == scope.mode)
    if starting_after:
        stmt = stmt.where(PaySession.id > starting_after)
    return list(session.scalars(stmt.order_by(PaySession.id).limit(limit)))


def is_expired(session: Session, row: PaySession) -> bool:
    scope = Scope(row.tenant_id, row.mode)  # type: ignore[arg-type]
    return row.status != "paid" and tenants.now(session, scope) >= row.expires_at


def current_lines(session: Session, row: PaySession) -> list[dict[str, Any]]:
    """The session's lines with today's balances: an invoice paid or voided since the
    session was made drops out, one paid in part shows what is left."""
    ids_ = [line["invoice_id"] for line in row.lines if line.get("invoice_id")]
    if not ids_:
        return [dict(line) for line in row.lines]
    due = {i.id: (i.status, i.amount_due_minor) for i in session.scalars(
        select(Invoice).where(among(session, Invoice.id, ids_)))}
    result = []
    for line in row.lines:
        line = dict(line)
        if line.get("invoice_id"):
            status, amount = due.get(line["invoice_id"], ("void", 0))
            if status not in PAYABLE_STATUSES or amount <= 0:
                continue
            line["balance_due_minor"] = amount
            if line.get("minimum_amount_due_minor") is not None:
                line["minimum_amount_due_minor"] = min(line["minimum_amount_due_minor"], amount)
        result.append(line)
    return result


def claim(session: Session, row: PaySession) -> bool:
    """Take the session for one payment attempt: a conditional update that only one of
    any number of concurrent submissions wins (STYLE rule 4)."""
    result = session.execute(update(PaySession).where(
        PaySession.id == row.id, PaySession.status == "open").values(status="processing")
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, session_id: str) -> None:
    """Give the session back after an attempt that charged nothing (declined)."""
    session.execute(update(PaySession).where(
        PaySession.id == session_id, PaySession.status == "processing").values(status="open")
        .execution_options(synchronize_session=False))
