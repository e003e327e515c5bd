"""Pay sessions from Cloud Payments V2 requests (``POST /cloudpayments/v2``).

With ``CreateCustomerRecord`` true, the request's customers and invoices are upserted:
a billing account found by its number (or external number) is kept, and its customer
takes the Name, EmailAddress and address parts the request gives (one left out or empty
keeps what is stored); a missing account is created with its customer and billing
address. An invoice found by number on that account is paid at Billfold's own balance
(the ledger is the truth; a different ``BalanceDue`` is kept on the session's line as
``sent_balance_due_minor`` for the biller to see), a missing one is created open at
``BalanceDue`` and posted. A customer sent without invoices offers the account's open
invoices. With it false, the session carries the request's invoices and touches no
records; the money is then owed on to the biller's own system (ledger: external
payments). The whole request takes effect or none of it: any problem rolls it all back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice, InvoiceLine
from billfold.payments import sessions
from billfold.payments.cloudpayments import CloudPaymentRequest, CpCustomer, CpInvoice
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle

# Invoice Cloud's payment route is in US dollars; its request names no currency.
CURRENCY = "USD"
# Nor a country, which a Billfold address needs: its payers (State, Zip) are in the US.
COUNTRY = "US"


def create_session(session: Session, scope: Scope, request: CloudPaymentRequest, *,
                   actor: str) -> sessions.Created:
    problems = sessions.check_urls(session, scope, {
        "ReturnURL": request.return_url, "PostBackURL": request.postback_url,
        "CssUrl": request.css_url})
    lines: list[dict[str, Any]] = []
    payers: list[dict[str, Any]] = []
    for index, customer in enumerate(request.customers):
        where = f"Customers[{index}]"
        if request.create_customer_record:
            account = _account(session, scope, customer, where, problems, actor)
            if account is not None:
                lines += _record_lines(session, scope, account, customer, where, problems,
                                       start=len(lines))
                payers.append(_payer(customer, account.id))
        else:
            lines += _inline_lines(customer, where, problems, start=len(lines))
            payers.append(_payer(customer, None))
    if not lines and not problems:
        problems.append(FieldError("Customers", "name at least one invoice with a balance due",
                                   "nothing_to_pay"))
    if problems:
        raise ValidationFailed(problems)
    return sessions.new_session(
        session, scope, kind="cloudpayments_v2", currency=CURRENCY, lines=lines, payers=payers,
        create_customer_record=request.create_customer_record, allow_card=request.allow_card,
        allow_ach=request.allow_ach,
        options={"allow_remove": request.allow_remove,
                 "allow_view_statement": request.allow_view_statement,
                 "allow_view_related": request.allow_view_related,
                 "allow_remind_me": request.allow_remind_me,
                 "allow_register_account": request.allow_register_account},
        return_url=request.return_url, postback_url=request.postback_url,
        css_url=request.css_url, biller_reference=request.biller_reference,
        view_mode=request.view_mode, page_load_override=request.page_load_override)


def _payer(customer: CpCustomer, account_id: str | None) -> dict[str, Any]:
    return {"account_number": customer.account_number,
            "display_account_number": customer.display_account_number,
            "billing_account_id": account_id, "name": customer.name,
            "address": customer.address, "city": customer.city, "state": customer.state,
            "zip": customer.zip, "email": customer.email}


def _line(key: int, customer: CpCustomer, invoice: CpInvoice, *, invoice_id: str | None,
          account_id: str | None, balance: int) -> dict[str, Any]:
    minimum = invoice.minimum_amount_due_minor
    return {
        "key": str(key), "invoice_id": invoice_id, "invoice_number": invoice.invoice_number,
        "billing_account_id": account_id, "account_number": customer.account_number,
        "display_account_number": customer.display_account_number, "type_id": invoice.type_id,
        "invoice_date": invoice.invoice_date.isoformat() if invoice.invoice_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "balance_due_minor": balance, "cc_fee_minor": invoice.cc_fee_minor,
        "ach_fee_minor": invoice.ach_fee_minor,
        "minimum_amount_due_minor": min(minimum, balance) if minimum is not None else None,
        "allow_partial": invoice.allow_partial}


def _inline_lines(customer: CpCustomer, where: str, problems: list[FieldError], *, start: int
                  ) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for index, invoice in enumerate(customer.invoices):
        if not invoice.balance_due_minor:
            problems.append(FieldError(f"{where}.Invoices[{index}].BalanceDue",
                                       "is required (above zero) when CreateCustomerRecord is "
                                       "false", "required"))
            continue
        lines.append(_line(start + len(lines) + 1, customer, invoice, invoice_id=None,
                           account_id=None, balance=invoice.balance_due_minor))
    if not customer.invoices:
        problems.append(FieldError(f"{where}.Invoices", "are required when CreateCustomerRecord "
                                   "is false: there is no record to take them from", "required"))
    return lines


def _account(session: Session, scope: Scope, customer: CpCustomer, where: str,
             problems: list[FieldError], actor: str) -> BillingAccount | None:
    number = customer.account_number
    found = session.scalars(select(BillingAccount).where(
        BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode,
        or_(BillingAccount.number == number, BillingAccount.external_number == number))
        .order_by(BillingAccount.number != number).limit(1)).first()
    if found is not None:
        if found.currency != CURRENCY:
            problems.append(FieldError(f"{where}.AccountNumber", f"is billed in {found.currency}; "
                                       f"Cloud Payments sessions are in {CURRENCY}",
                                       "currency_mismatch"))
            return None
        _update_customer(session, scope, found, customer, where, problems, actor)
        return found
    return _create_account(session, scope, customer, where, problems, actor)


def _create_account(session: Session, scope: Scope, customer: CpCustomer, where: str,
                    problems: list[FieldError], actor: str) -> BillingAccount | None:
    cycle = sessions.first_of(session, scope, BillCycle)
    category = sessions.first_of(session, scope, AccountCategory)
    if cycle is None or category is None:
        problems.append(FieldError(f"{where}.AccountNumber", "is not a billing account yet, and "
                                   "creating one needs a bill cycle and an account category: "
                                   "create them first", "reference_data_missing"))
        return None
    if not customer.email:
        # Billfold's customers need a primary email (the customer record's own rule), so
        # only a request that creates the account needs one; an existing account does not.
        problems.append(FieldError(f"{where}.EmailAddress", "is required to create the customer "
                                   f"of account {customer.account_number}, which is new: a "
                                   "customer needs a primary email address", "required"))
        return None
    data: dict[str, Any] = {
        "company_name": customer.name or customer.account_number,
        "primary_email": customer.email, "billing_address": _address(None, customer),
        "billing_account": {"number": customer.account_number, "currency": CURRENCY,
                            "bill_cycle_id": cycle.id, "account_category_id": category.id,
                            "start_date": tenants.today(session, scope),
                            "invoice_type": "email"}}
    try:
        with session.begin_nested():
            _, account = customers.create_customer(session, scope, data=data, actor=actor)
    except ValidationFailed as exc:
        problems += _cloud_problems(exc, where, "created")
        return None
    return account


def _update_customer(session: Session, scope: Scope, account: BillingAccount,
                     customer: CpCustomer, where: str, problems: list[FieldError],
                     actor: str) -> None:
    """Bring the account's customer up to what the request says of it (a change is in its
    history like any other). Nothing is written when nothing differs."""
    record = customers.get_customer(session, scope, account.customer_id)
    changes = _customer_changes(record, customer)
    if not changes:
        return
    try:
        with session.begin_nested():
            customers.update_customer(session, scope, customer_id=record.id, changes=changes,
                                      actor=actor)
    except ValidationFailed as exc:
        problems += _cloud_problems(exc, where, "updated")


def _customer_changes(record: Customer, sent: CpCustomer) -> dict[str, Any]:
    """The customer fields ``sent`` changes. A value left out or empty keeps the stored
    one: clients send what they have, and an absent field is no instruction to erase. A
    person's first and last name are not rewritten from one free-text Name (splitting it
    would be a guess); a company's name is."""
    changes: dict[str, Any] = {}
    if sent.name and not record.is_person and sent.name != record.company_name:
        changes["company_name"] = sent.name
    if sent.email and sent.email.casefold() != (record.primary_email or "").casefold():
        changes["primary_email"] = sent.email
    address = _address(record.billing_address, sent)
    if address != record.billing_address:
        changes["billing_address"] = address
    return changes


def _address(kept: dict[str, Any] | None, sent: CpCustomer) -> dict[str, Any] | None:
    """The billing address with the parts ``sent`` gives over those ``kept``. A new street
    (Address) drops the kept second line, which belonged to the old one. Without an
    address kept, one is made only from an Address: a Billfold address needs its first
    line, so City, State or Zip alone are not stored."""
    parts = {name: value for name, value in (
        ("city", sent.city), ("region", sent.state), ("postal_code", sent.zip)) if value}
    if kept is None:
        if not sent.address:
            return None
        return {"line1": sent.address, "line2": None, "city": None, "region": None,
                "postal_code": None, "country": COUNTRY, **parts}
    merged = dict(kept)
    if sent.address and sent.address != kept.get("line1"):
        merged.update(line1=sent.address, line2=None)
    merged.update(parts)
    return merged


_CLOUD_NAMES = {
    "company_name": "Name", "primary_email": "EmailAddress",
    "billing_account.number": "AccountNumber", "billing_address": "Address",
    "billing_address.line1": "Address", "billing_address.city": "City",
    "billing_address.region": "State", "billing_address.postal_code": "Zip",
}


def _cloud_problems(exc: ValidationFailed, where: str, done: str) -> list[FieldError]:
    """The customers service's refusal in the request's own field names. A field the
    request has no name for is the record's own (a custom field made required since, or
    the tenant's defaults for a new account): it is named on the AccountNumber."""
    result = []
    for error in exc.errors:
        name = _CLOUD_NAMES.get(error.field)
        if name is not None:
            result.append(FieldError(f"{where}.{name}", error.message, error.code))
        else:
            result.append(FieldError(f"{where}.AccountNumber", f"its customer cannot be {done}: "
                                     f"{error.field} {error.message}", error.code))
    return result



def _record_lines(session: Session, scope: Scope, account: BillingAccount, customer: CpCustomer,
                  where: str, problems: list[FieldError], *, start: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    if not customer.invoices:
        open_invoice: Invoice
        for open_invoice in session.scalars(select(Invoice).where(
                Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
                Invoice.billing_account_id == account.id,
                Invoice.status.in_(sessions.PAYABLE_STATUSES)).order_by(Invoice.due_date)):
            line = sessions.line_from_invoice(str(start + len(lines) + 1), open_invoice, account)
            line["display_account_number"] = customer.display_account_number
            lines.append(line)
        return lines
    for index, sent in enumerate(customer.invoices):
        field = f"{where}.Invoices[{index}]"
        found = _invoice(session, scope, account, sent, field, problems)
        if found is None:
            continue
        invoice = found
        if invoice.status not in sessions.PAYABLE_STATUSES or invoice.amount_due_minor <= 0:
            problems.append(FieldError(f"{field}.InvoiceNumber", f"is {invoice.status} already",
                                       "invoice_not_payable"))
            continue
        line = _line(start + len(lines) + 1, customer, sent, invoice_id=invoice.id,
                     account_id=account.id, balance=invoice.amount_due_minor)
        if sent.balance_due_minor is not None and sent.balance_due_minor != line[
                "balance_due_minor"]:
            # Paid at Billfold's balance all the same; what the biller's system said is
            # kept where the biller reads the session (GET /v1/pay_sessions/{id}).
            line["sent_balance_due_minor"] = sent.balance_due_minor
        lines.append(line)
    return lines


def _invoice(session: Session, scope: Scope, account: BillingAccount, sent: CpInvoice,
             field: str, problems: list[FieldError]) -> Invoice | None:
    found = session.scalars(select(Invoice).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        Invoice.number == sent.invoice_number)).first()
    if found is not None:
        if found.billing_account_id != account.id:
            problems.append(FieldError(f"{field}.InvoiceNumber", "belongs to another account",
                                       "invoice_of_another_account"))
            return None
        return found
    if not sent.balance_due_minor:
        problems.append(FieldError(f"{field}.BalanceDue", "is required (above zero) to create "
                                   f"invoice {sent.invoice_number}", "required"))
        return None
    return _import_invoice(session, scope, account, sent)


def _import_invoice(session: Session, scope: Scope, account: BillingAccount, sent: CpInvoice
                    ) -> Invoice:
    """An invoice the biller's own system issued, recorded open at its balance and
    posted like any other: the receivable it creates is what the payment pays."""
    today = tenants.today(session, scope)
    amount = int(sent.balance_due_minor or 0)
    now = clock.utcnow()
    invoice = Invoice(
        id=ids.new_id("invoice"), tenant_id=scope.tenant_id, mode=scope.mode,
        number=sent.invoice_number, status="open", billing_account_id=account.id,
        invoiced_account_id=None, customer_id=account.customer_id, currency=account.currency,
        rendering_type=None, bill_date=None, period_start=None, period_end=None,
        issue_date=sent.invoice_date or today, due_date=sent.due_date or sent.invoice_date or today,
        subtotal_minor=amount, tax_minor=0, total_minor=amount, amount_paid_minor=0,
        adjustments_minor=0, assignment_key=None, bill_run_id=None,
        memo="Recorded from a Cloud Payments V2 request", delivery_status="not_required",
        created_at=now, finalized_at=now)
    session.add(invoice)
    session.flush()
    line = InvoiceLine(
        id=ids.new_id("invoice_line"), tenant_id=scope.tenant_id, mode=scope.mode,
        invoice_id=invoice.id, position=1, kind="manual", billing_account_id=account.id,
        description=f"Invoice {sent.invoice_number}", quantity=1, unit_amount_minor=amount,
        amount_minor=amount, tax_minor=0, tax_percent="0", tax_inclusive=False)
    session.add(line)
    session.flush()
    invoicing.post_invoice(session, scope, invoice, [line])
    return invoice
