"""Telling the biller what happened to a payment: webhook events to its endpoints, and a
postback to the session's (or entry's) PostBackURL — Invoice Cloud's form fields for a
Cloud Payments V2 session, a JSON event otherwise. Everything goes through the outbox in
the caller's transaction, so nothing is told about a payment that was rolled back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from billfold.core import jobs
from billfold.core.jobs import Job
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import Invoice
from billfold.money import Money
from billfold.notifications import outbox, webhooks
from billfold.payments.models import Entry, Payment, PaySession
from billfold.tenants import service as tenants

# Invoice Cloud's PaymentTypeID values as Billfold sends them.
PAYMENT_TYPE_IDS = {"card": "1", "ach": "2"}
CARD_TYPES = {"visa": "Visa", "mastercard": "MasterCard", "amex": "American Express",
              "discover": "Discover", "diners": "Diners Club", "jcb": "JCB",
              "unionpay": "UnionPay"}


def describe(payment: Payment) -> dict[str, Any]:
    """A payment as the API and events show it."""
    return {
        "id": payment.id, "object": "payment", "status": payment.status,
        "method": payment.method, "amount_minor": payment.amount_minor,
        "fee_minor": payment.fee_minor, "refunded_minor": payment.refunded_minor,
        "currency": payment.currency, "billing_account_id": payment.billing_account_id,
        "pay_session_id": payment.pay_session_id, "entry_id": payment.entry_id,
        "receipt_number": payment.receipt_number, "payment_date": payment.payment_date.isoformat(),
        "gateway": payment.gateway or None, "gateway_reference": payment.gateway_reference,
        "brand": payment.brand, "last4": payment.last4, "exp_month": payment.exp_month,
        "exp_year": payment.exp_year, "routing_number": payment.routing_number,
        "account_type": payment.account_type, "failure_code": payment.failure_code,
        "failure_message": payment.failure_message, "return_code": payment.return_code,
        "settles_on": payment.settles_on.isoformat() if payment.settles_on else None,
        "invoices": [{"invoice_id": line.get("invoice_id"),
                      "invoice_number": line.get("invoice_number"),
                      "amount_minor": line["pay_minor"]} for line in payment.lines],
        "created_at": payment.created_at.isoformat(),
    }


def emit(session: Session, scope: Scope, type_: str, data: dict[str, Any],
         about: tuple[str, str]) -> None:
    webhooks.emit(session, scope, type=type_, data=data, about=about,
                  allow_private=tenants.private_targets_allowed(session, scope))


def payment_succeeded(session: Session, scope: Scope, payment: Payment,
                      paid: Sequence[Invoice]) -> None:
    # The payment's event and each paid invoice's, in one INSERT.
    webhooks.emit_many(session, scope, [
        ("payment.succeeded", describe(payment), ("payment", payment.id)),
        *(("invoice.paid", {
            "id": invoice.id, "object": "invoice", "number": invoice.number,
            "billing_account_id": invoice.billing_account_id, "status": invoice.status,
            "total_minor": invoice.total_minor, "currency": invoice.currency,
            "payment_id": payment.id}, ("invoice", invoice.id)) for invoice in paid)],
        allow_private=tenants.private_targets_allowed(session, scope))
    _postback(session, scope, payment, approved=True)
    _confirm(session, scope, payment)


# The payer's receipt email is written by the worker, from a job queued in the payment's
# transaction with what it says that could change later (the address, the biller's name,
# the language, whether the payment was pending): rendering it, checking the address and
# queueing the message took a tenth of recording a payment (callgrind: 8.53 -> 7.78
# million instructions once moved), now spent off the payer's request. The job commits with the
# payment or not at all, and makes its message in the transaction that completes it: one
# email per payment, as before.
RECEIPT = "payments.receipt"


def _confirm(session: Session, scope: Scope, payment: Payment) -> None:
    """The payer's confirmation email with the receipt, when the account asks for one."""
    account = session.get(BillingAccount, payment.billing_account_id) \
        if payment.billing_account_id else None
    if account is None or not account.email_confirmations:
        return
    customer = session.get(Customer, account.customer_id)
    to = payment.payer_email or (customer.primary_email if customer else None)
    if not to:
        return
    jobs.enqueue_many(session, kind=RECEIPT, scope=scope, items=[(None, {
        "payment_id": payment.id, "to": to,
        "biller": tenants.get_tenant(session, scope.tenant_id).name,
        "locale": account.preferred_language or "en", "pending": payment.status == "pending"})])


def send_receipt(session: Session, job: Job) -> None:
    """The job RECEIPT: queue the receipt email of the payment it names."""
    scope, wanted = job.scope, job.payload
    payment = session.get(Payment, wanted["payment_id"])
    if scope is None or payment is None or payment.tenant_id != scope.tenant_id:
        raise LookupError(f"no payment {wanted['payment_id']} in the job's tenant")
    biller = wanted["biller"]
    outbox.enqueue_email(session, scope, to=[wanted["to"]],
                         subject=f"{biller}: payment received, receipt {payment.receipt_number}",
                         text=receipt_text(payment, biller, wanted["locale"],
                                           pending=wanted["pending"]),
                         about=("payment", payment.id))


def handlers() -> dict[str, jobs.Handler]:
    """This package's job handlers, for ``jobs.run_pending``."""
    return {RECEIPT: send_receipt}


def masked_method(payment: Payment) -> str:
    if payment.method == "card":
        return f"{CARD_TYPES.get(payment.brand or '', 'Card')} •••• {payment.last4 or ''}"
    if payment.method == "ach":
        return f"Bank account •••• {payment.last4 or ''}"
    return payment.method.title()


def receipt_text(payment: Payment, biller: str, locale: str, *, pending: bool) -> str:
    def amount(minor: int) -> str:
        try:
            return Money(minor, payment.currency).format(locale.replace("-", "_"))
        except Exception:  # a language Babel has no locale data for: English formatting
            return Money(minor, payment.currency).format()

    lines = [f"Thank you for your payment to {biller}.", "",
             f"Receipt number: {payment.receipt_number}",
             f"Date:           {payment.payment_date.isoformat()}",
             f"Paid with:      {masked_method(payment)}", ""]
    lines += [f"  {line.get('invoice_number') or 'On account'}: {amount(int(line['pay_minor']))}"
              for line in payment.lines]
    if payment.fee_minor:
        lines.append(f"  Service fee: {amount(payment.fee_minor)}")
    lines += ["", f"Total: {amount(payment.amount_minor + payment.fee_minor)}"]
    if pending:
        lines += ["", "Bank payments settle in a few business days."]
    return "\n".join(lines) + "\n"


def payment_failed(session: Session, scope: Scope, payment: Payment) -> None:
    emit(session, scope, "payment.failed", describe(payment), ("payment", payment.id))
    _postback(session, scope, payment, approved=False)


def payment_changed(session: Session, scope: Scope, payment: Payment, event: str,
                    **extra: Any) -> None:
    """payment.refunded, payment.returned, payment.disputed: to endpoints, and as a JSON
    postback where the payment came through a native session with a postback URL. A Cloud
    Payments V2 PostBackURL gets only what Invoice Cloud posts there, the payment's result
    as a form: its receivers parse those fields, and these events have none."""
    data = {**describe(payment), **extra}
    emit(session, scope, event, data, ("payment", payment.id))
    url = _postback_url(session, payment)
    if url is not None:
        webhooks.enqueue_postback(session, scope, url=url, json_body={"type": event, "data": data},
                                  about=("payment", payment.id),
                                  allow_private=tenants.private_targets_allowed(session, scope))


def entry_event(session: Session, scope: Scope, entry: Entry, event: str) -> None:
    data = entry_data(entry)
    emit(session, scope, event, data, ("entry", entry.id))
    if entry.postback_url:
        webhooks.enqueue_postback(session, scope, url=entry.postback_url,
                                  json_body={"type": event, "data": data},
                                  about=("entry", entry.id),
                                  allow_private=tenants.private_targets_allowed(session, scope))


def entry_data(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "object": "entry", "assignment_key": entry.assignment_key,
            "status": entry.status, "amount_minor": entry.amount_minor,
            "currency": entry.currency, "billing_account_id": entry.billing_account_id,
            "payment_id": entry.payment_id, "invoice_id": entry.invoice_id}


def _postback_url(session: Session, payment: Payment) -> str | None:
    if payment.pay_session_id is None:
        return None
    row = session.get(PaySession, payment.pay_session_id)
    return row.postback_url if row is not None and row.kind == "native" else None


def _postback(session: Session, scope: Scope, payment: Payment, *, approved: bool) -> None:
    row = session.get(PaySession, payment.pay_session_id) if payment.pay_session_id else None
    if row is None:
        return
    if row.entry_id is not None:
        entry = session.get(Entry, row.entry_id)
        if entry is not None and entry.postback_url:
            event = "entry.balanced" if approved else "payment.failed"
            webhooks.enqueue_postback(
                session, scope, url=entry.postback_url,
                json_body={"type": event, "data": {**entry_data(entry),
                                                   "payment": describe(payment)}},
                about=("payment", payment.id), allow_private=tenants.private_targets_allowed(session, scope))
        return
    if row.postback_url is None:
        return
    allow_private = tenants.private_targets_allowed(session, scope)
    if row.kind == "cloudpayments_v2":
        webhooks.enqueue_postback(session, scope, url=row.postback_url,
                                  form=cloud_payments_fields(row, payment, approved=approved),
                                  about=("payment", payment.id), allow_private=allow_private)
    else:
        event = "payment.succeeded" if approved else "payment.failed"
        webhooks.enqueue_postback(session, scope, url=row.postback_url,
                                  json_body={"type": event, "data": describe(payment)},
                                  about=("payment", payment.id), allow_private=allow_private)


def cloud_payments_fields(row: PaySession, payment: Payment, *, approved: bool
                          ) -> list[tuple[str, str]]:
    """Invoice Cloud's postback fields, in its own names and formats."""
    payer = next((p for p in row.payers if p.get("billing_account_id") == payment.billing_account_id
                  or p.get("account_number") == (payment.lines[0].get("account_number")
                                                 if payment.lines else None)),
                 row.payers[0] if row.payers else {})

    def amount(minor: int) -> str:
        return str(Money(minor, payment.currency).to_decimal())

    brand = CARD_TYPES.get(payment.brand or "", payment.brand or "") \
        if payment.method == "card" else "ACH"
    return [
        ("BillerGUID", payment.tenant_id),
        ("PaymentDate", payment.payment_date.strftime("%m/%d/%Y")),
        ("InvoiceNumber", ",".join(str(line.get("invoice_number") or "") for line in payment.lines)),
        ("Approved", "True" if approved else "False"),
        ("CustomerName", payer.get("name") or ""),
        ("CustomerAddress", payer.get("address") or ""),
        ("CustomerCity", payer.get("city") or ""),
        ("CustomerState", payer.get("state") or ""),
        ("CustomerZip", payer.get("zip") or ""),
        ("PaymentGUID", payment.id),
        ("PaymentAmount", amount(payment.amount_minor)),
        ("PaymentDescription", payment.description or ""),
        ("PaymentTypeID", PAYMENT_TYPE_IDS.get(payment.method, "")),
        ("CardType", brand),
        ("PaymentMessage", "Approved" if approved else (payment.failure_message or "Declined")),
        ("BillerReference", row.biller_reference or ""),
        ("ConvenienceFee", amount(payment.fee_minor)),
        ("RemoteIP", payment.remote_ip or ""),
    ]
