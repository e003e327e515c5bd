"""What the portal's signed-in pages share: the viewer of a request, the page that answers
when the biller has turned invoice history off, and the words for statuses, roles and
payment methods in the viewer's language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from billfold.access import payers
from billfold.payments.models import Payment
from billfold.payments.notify import CARD_TYPES
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_queries as queries
from billfold.web.pages.portal_i18n import PortalTranslator


def words(request: Request, viewer: base.Viewer) -> PortalTranslator:
    return base.translator(request, viewer.user.preferred_language)


def history_off(request: Request, viewer: base.Viewer) -> Response:
    t = words(request, viewer)
    return base.render(request, "message.html", {
        "title": t("Invoice history is not available"),
        "note": t("{biller} does not show invoice history online. Your payments and "
                  "receipts are still here.", biller=viewer.biller),
        "link": (f"{request.scope.get('root_path', '')}/portal/payments", t("Your payments"))},
        viewer=viewer, t=t)


def account_label(granted: payers.Granted) -> str:
    return f"{granted.account.number} · {granted.customer_name}"


def invoice_status(t: PortalTranslator, status: str) -> str:
    return {"open": t("Open"), "partially_paid": t("Partially paid"), "paid": t("Paid"),
            "void": t("Void")}.get(status, status)


def payment_status(t: PortalTranslator, status: str) -> str:
    return {"processing": t("Processing"), "unknown": t("Being confirmed"),
            "pending": t("Pending"), "succeeded": t("Completed"), "failed": t("Declined"),
            "refunded": t("Refunded"), "partially_refunded": t("Partly refunded"),
            "voided": t("Cancelled"), "returned": t("Returned by the bank"),
            "disputed": t("Disputed")}.get(status, status)


def role(t: PortalTranslator, name: str) -> str:
    return {"owner": t("Owner"), "payer": t("Can pay"), "viewer": t("Can view")}.get(name, name)


def account_status(t: PortalTranslator, status: str) -> str:
    return {"active": t("Active"), "suspended": t("Suspended"), "deactivated": t("Closed"),
            "pending_collection": t("In collection")}.get(status, status)


def method_label(t: PortalTranslator, payment: Payment) -> str:
    """The method as a receipt shows it: never more than the last four digits."""
    last4 = payment.last4 or ""
    if payment.method == "card":
        brand = CARD_TYPES.get(payment.brand or "") or t("Card")
        return t("{brand} ending {last4}", brand=brand, last4=last4)
    if payment.method == "ach":
        return t("Bank account ending {last4}", last4=last4)
    if payment.method == "check":
        return t("Check")
    return payment.method.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class PaidLine:
    invoice_id: str | None  # links to the invoice when the viewer may see it
    label: str
    account: str
    amount: str


@dataclass(frozen=True, slots=True)
class Receipt:
    payment: Payment
    number: str
    date: str
    status: str
    method: str
    lines: list[PaidLine]
    amount: str
    fee: str
    total: str
    refunded: str | None
    pending: bool


def receipt(t: PortalTranslator, payment: Payment, applied: Sequence[queries.Applied],
            grants: Sequence[payers.Granted]) -> Receipt:
    """A payment as its receipt shows it: what it was applied to, or, before the gateway
    has confirmed it, what the payer chose to pay."""
    numbers = {g.account.id: g.account.number for g in grants}
    money = payment.currency
    lines = [PaidLine(a.invoice_id if a.billing_account_id in numbers else None,
                      a.invoice_number or t("Held as a credit on the account"),
                      numbers.get(a.billing_account_id or "", ""), t.money(a.amount_minor, money))
             for a in applied if a.amount_minor]
    if not applied:
        lines = [PaidLine(None, str(line.get("invoice_number") or ""),
                          numbers.get(str(line.get("billing_account_id") or ""), ""),
                          t.money(int(line.get("pay_minor") or 0), money))
                 for line in payment.lines]
    return Receipt(
        payment=payment, number=payment.receipt_number or payment.id,
        date=t.date(payment.payment_date), status=payment_status(t, payment.status),
        method=method_label(t, payment), lines=lines, amount=t.money(payment.amount_minor, money),
        fee=t.money(payment.fee_minor, money),
        total=t.money(payment.amount_minor + payment.fee_minor, money),
        refunded=t.money(payment.refunded_minor, money) if payment.refunded_minor else None,
        pending=payment.status == "pending")
