"""The payer's billing accounts and payments: the accounts with role, balance and status;
one account's summary and payments; every payment, newest first; a receipt; and where the
hosted payment page sends the payer back to (``/portal/payments/after/{session}``).

Routes hang off portal.py's router (prefix ``/portal``).
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from billfold.core.db import get_scoped
from billfold.core.errors import NotFound
from billfold.customers.summary import account_summary
from billfold.ledger import service as ledger
from billfold.orders import service as orders
from billfold.payments import sessions
from billfold.payments.models import Payment
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_queries as queries
from billfold.web.pages import portal_views as views
from billfold.web.pages.portal_i18n import PortalTranslator
from billfold.web.routing import Router

router = Router()

PAYMENTS_PAGE_SIZE = 50
ACCOUNT_PAYMENTS_SHOWN = 20
# A payment still being charged, or whose outcome the gateway has not told yet.
UNSETTLED = ("processing", "unknown")


@router.get("/accounts")
def accounts(request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    t = views.words(request, viewer)
    rows = []
    for granted in viewer.grants(db):
        account = granted.account
        owed = ledger.billing_account_balances(db, viewer.scope, account.id)["receivable"]
        rows.append({"id": account.id, "number": account.number,
                     "name": granted.customer_name, "role": views.role(t, granted.grant.role),
                     "status": views.account_status(t, account.status),
                     "balance": t.money(owed.get(account.currency, 0), account.currency)})
    return base.render(request, "accounts.html", {"rows": rows}, viewer=viewer, t=t)


@router.get("/accounts/{account_id}")
def account(account_id: str, request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    granted = viewer.granted(db, account_id)
    if granted is None:
        return base.not_found(request, viewer)
    t = views.words(request, viewer)
    summary = account_summary(db, viewer.scope, account_id)
    # Customers sit below orders, so pending charges are summed here, as the API does.
    pending = orders.pending_totals(db, viewer.scope, account_id)
    currency = summary.account.currency
    payments = queries.payments_of(db, viewer.scope, [account_id],
                                   limit=ACCOUNT_PAYMENTS_SHOWN + 1)
    return base.render(request, "account.html", {
        "granted": granted, "role": views.role(t, granted.grant.role),
        "status": views.account_status(t, summary.account.status),
        "balance": t.money(summary.balance_minor, currency),
        "unapplied": t.money(summary.unapplied_payments_minor, currency),
        "pending": t.money(pending.amount_minor, currency), "pending_count": pending.count,
        "next_invoice_date": t.date(summary.next_invoice_date),
        "payments": [_payment_row(t, p, {account_id: granted.account.number})
                     for p in payments[:ACCOUNT_PAYMENTS_SHOWN]],
        "more_payments": len(payments) > ACCOUNT_PAYMENTS_SHOWN,
        "history": tenants.get_settings(db, viewer.scope).invoice_history_enabled},
        viewer=viewer, t=t)


@router.get("/payments")
def payments(request: Request, db: DbSession, before: str = "") -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    t = views.words(request, viewer)
    numbers = {g.account.id: g.account.number for g in viewer.grants(db)}
    found = queries.payments_of(db, viewer.scope, list(numbers), limit=PAYMENTS_PAGE_SIZE + 1,
                                before_id=before[:40] or None)
    shown = found[:PAYMENTS_PAGE_SIZE]
    root = request.scope.get("root_path", "")
    return base.render(request, "payments.html", {
        "rows": [_payment_row(t, p, numbers) for p in shown],
        "older_url": f"{root}/portal/payments?before={shown[-1].id}"
        if len(found) > PAYMENTS_PAGE_SIZE else None,
        "newest_url": f"{root}/portal/payments" if before else None}, viewer=viewer, t=t)


def _payment_row(t: PortalTranslator, payment: Payment, numbers: dict[str, str]
                 ) -> dict[str, str]:
    return {"id": payment.id, "number": payment.receipt_number or payment.id,
            "date": t.date(payment.payment_date),
            "account": numbers.get(payment.billing_account_id or "", ""),
            "method": views.method_label(t, payment),
            "status": views.payment_status(t, payment.status),
            "amount": t.money(payment.amount_minor + payment.fee_minor, payment.currency)}


@router.get("/payments/after/{session_id}")
def after_payment(session_id: str, request: Request, db: DbSession) -> Response:
    """Where the payment page's return link leads: the receipt of what was paid, or what
    became of the attempt."""
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    try:
        row = sessions.get(db, viewer.scope, session_id[:40])
    except NotFound:
        return base.not_found(request, viewer)
    if row.options.get("payer_user_id") != viewer.user.id:
        return base.not_found(request, viewer)
    payment = queries.latest_payment_of_session(db, row.id)
    t = views.words(request, viewer)
    root = request.scope.get("root_path", "")
    if payment is not None and payment.status in UNSETTLED:
        return base.render(request, "message.html", {
            "title": t("Your payment is still being processed"),
            "note": t("We have not heard back about this payment yet. It will appear under "
                      "Payments with its receipt as soon as it is confirmed; please do not "
                      "pay again meanwhile."),
            "link": (f"{root}/portal/payments", t("Your payments"))}, viewer=viewer, t=t)
    if payment is None or payment.status in queries.HIDDEN_PAYMENT_STATUSES:
        return base.render(request, "message.html", {
            "title": t("No payment was made"),
            "note": t("Nothing was charged. Your invoices are as they were."),
            "link": (f"{root}/portal/invoices", t("Back to your invoices"))},
            viewer=viewer, t=t)
    return base.redirect(request, f"/portal/payments/{payment.id}")


@router.get("/payments/{payment_id}")
def receipt(payment_id: str, request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    try:
        payment: Payment = get_scoped(db, Payment, payment_id[:40], viewer.scope, "payment")
    except NotFound:
        return base.not_found(request, viewer)
    if payment.billing_account_id is None or payment.status in queries.HIDDEN_PAYMENT_STATUSES \
            or viewer.granted(db, payment.billing_account_id) is None:
        return base.not_found(request, viewer)
    t = views.words(request, viewer)
    return base.render(request, "receipt.html", {
        "receipt": views.receipt(t, payment, queries.applied_of(db, payment), viewer.grants(db)),
        "unsettled": payment.status in UNSETTLED,
        "history": tenants.get_settings(db, viewer.scope).invoice_history_enabled},
        viewer=viewer, t=t)
