"""/v1/pay_sessions, /v1/payments (refunds, voids), /v1/test_clock, and the webhook and
postback settings: /v1/webhook_endpoints, /v1/webhook_deliveries, /v1/postback_secret."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.collections import autopay
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.notifications import webhooks
from billfold.payments import (
    after,
    cloud,
    cloudpayments,
    entries,
    notify,
    recording,
    refunds,
    sessions,
    takeback,
)
from billfold.payments.models import Payment, PaySession, Refund
from billfold.tenants import service as tenants
from billfold.web import workers
from billfold.web.api.schemas import Id, Input, page_of
from billfold.web.deps import ApiCaller, Caller, DbSession, Pagination, caller_of, paged
from billfold.web.routing import Router, one_write

router = Router(prefix="/v1")
Minor = Annotated[StrictInt, Field(ge=0, le=10**15)]
Url = Annotated[StrictStr, Field(max_length=2000)]


def _factory(request: Request, db: Session) -> sessionmaker[Session]:
    """Sessions for a service that runs several transactions of its own (around a gateway
    call). The request's own transaction, opened by authentication, ends first: on
    SQLite it holds the writer's lock those transactions need."""
    db.commit()
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


def _request_first(request: Request, db: Session) -> Callable[[], Session]:
    """Sessions for a service that runs its transactions one after another: the first in
    the request's own session, whose transaction authentication began (on SQLite holding
    the writer's lock already, with the tenant's settings read), the others new."""
    factory: sessionmaker[Session] = request.app.state.sessions
    unused = [db]
    return lambda: unused.pop() if unused else factory()


def _gateway(request: Request, scope: Scope) -> Any:
    return request.app.state.gateways(scope)


# -- pay sessions -------------------------------------------------------------------------


class PaySessionInvoiceIn(Input):
    invoice_id: Id | None = Field(None, description="An invoice of this tenant; or, for one "
                                  "kept elsewhere, number and amount_due_minor")
    number: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    amount_due_minor: Annotated[StrictInt, Field(ge=1, le=10**15)] | None = None
    due_date: date | None = None
    account_number: Annotated[StrictStr, Field(max_length=100)] | None = None
    allow_partial: StrictBool = False
    minimum_amount_minor: Minor | None = Field(None, description="Least the payer may pay on "
                                               "it when paying in part")
    card_fee_minor: Minor = Field(0, description="Service fee when paid by card")
    ach_fee_minor: Minor = Field(0, description="Service fee when paid by bank account")


class PaySessionIn(Input):
    invoices: list[PaySessionInvoiceIn] = Field(min_length=1, max_length=sessions.MAX_LINES)
    allow_card: StrictBool = True
    allow_ach: StrictBool = True
    allow_remove: StrictBool = Field(True, description="The payer may leave invoices out")
    return_url: Url | None = None
    postback_url: Url | None = None
    css_url: Url | None = None
    reference: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, description="Your own reference, sent back in postbacks")
    locale: Literal["en", "es", "fr", "de"] | None = None
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] | None = Field(
        None, description="Required with invoices given inline")
    payer: dict[Annotated[StrictStr, Field(max_length=20)],
                Annotated[StrictStr, Field(max_length=200)]] | None = Field(
        None, description="{name, email} of the payer of inline invoices")
    view_mode: Literal[0, 1] = Field(0, description="0: the payer is sent to the page; 1: "
                                     "the page is framed by one of the allowed origins")


class PaySessionOut(BaseModel):
    id: str
    object: str = "pay_session"
    url: str | None = Field(None, description="The payment page; shown only when created")
    kind: str
    status: str
    currency: str
    lines: list[dict[str, Any]]
    payment_id: str | None
    return_url: str | None
    postback_url: str | None
    expires_at: datetime
    created_at: datetime
    paid_at: datetime | None
    mode: str


def session_out(session: Session, row: PaySession, url: str | None = None) -> dict[str, Any]:
    status = "expired" if sessions.is_expired(session, row) else row.status
    return {"id": row.id, "url": url, "kind": row.kind, "status": status,
            "currency": row.currency, "lines": row.lines, "payment_id": row.payment_id,
            "return_url": row.return_url, "postback_url": row.postback_url,
            "expires_at": row.expires_at, "created_at": row.created_at, "paid_at": row.paid_at,
            "mode": row.mode}


@router.post("/pay_sessions", response_model=PaySessionOut, status_code=201,
             tags=["payments"])
@one_write  # the session's INSERT: without BEGIN and COMMIT on PostgreSQL
def create_pay_session(body: PaySessionIn, request: Request, db: DbSession,
                       caller: ApiCaller) -> dict[str, Any]:
    """A hosted payment page for invoices of this tenant. Send the payer to ``url``; it
    stays payable for the tenant's ``pay_session_minutes`` and can be paid once."""
    with transaction(db):
        created = sessions.create_native(
            db, caller.scope, invoices=[i.model_dump(exclude_none=True) for i in body.invoices],
            allow_card=body.allow_card, allow_ach=body.allow_ach, allow_remove=body.allow_remove,
            return_url=body.return_url, postback_url=body.postback_url, css_url=body.css_url,
            reference=body.reference, locale=body.locale, view_mode=body.view_mode,
            currency=body.currency, payer=body.payer)
        return session_out(db, created.session, created.url(request.app.state.settings.base_url))


@router.get("/pay_sessions", response_model=page_of(PaySessionOut), tags=["payments"])
def list_pay_sessions(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    rows = sessions.list_sessions(db, caller.scope, limit=page.limit + 1,
                                  starting_after=page.starting_after)
    return paged([session_out(db, r) for r in rows], page)


@router.get("/pay_sessions/{session_id}", response_model=PaySessionOut, tags=["payments"])
def get_pay_session(session_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return session_out(db, sessions.get(db, caller.scope, session_id))


# -- payments -----------------------------------------------------------------------------


class PaymentOut(BaseModel):
    id: str
    object: str
    status: str
    method: str
    amount_minor: int
    fee_minor: int
    refunded_minor: int
    currency: str
    billing_account_id: str | None
    pay_session_id: str | None
    entry_id: str | None
    receipt_number: str | None
    payment_date: date
    gateway: str | None
    gateway_reference: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    routing_number: str | None
    account_type: str | None
    failure_code: str | None
    failure_message: str | None
    return_code: str | None
    settles_on: date | None
    invoices: list[dict[str, Any]]
    created_at: datetime


PaymentStatus = Literal["processing", "unknown", "pending", "succeeded", "failed", "refunded",
                        "partially_refunded", "voided", "returned", "disputed"]


@router.get("/payments", response_model=page_of(PaymentOut), tags=["payments"])
def list_payments(db: DbSession, caller: ApiCaller, page: Pagination,
                  billing_account_id: Annotated[str | None, Query(max_length=40)] = None,
                  status: PaymentStatus | None = None) -> dict[str, object]:
    stmt = select(Payment).where(Payment.tenant_id == caller.scope.tenant_id,
                                 Payment.mode == caller.scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(Payment.billing_account_id == billing_account_id)
    if status is not None:
        stmt = stmt.where(Payment.status == status)
    if page.starting_after:
        stmt = stmt.where(Payment.id > page.starting_after)
    rows = db.scalars(stmt.order_by(Payment.id).limit(page.limit + 1))
    return paged([notify.describe(p) for p in rows], page)


@router.get("/payments/{payment_id}", response_model=PaymentOut, tags=["payments"])
def get_payment(payment_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return notify.describe(takeback.get_payment(db, caller.scope, payment_id))


class PaymentIn(Input):
    billing_account_id: Id
    amount_minor: Annotated[StrictInt, Field(ge=1, le=10**15)]
    method: Literal["check", "cash", "wire", "other", "card", "ach"] = Field(
        description="check, cash, wire or other: money received outside Billfold, applied "
        "at once; card or ach: charge the saved instrument_token through the gateway")
    instrument_token: Annotated[StrictStr, Field(max_length=100)] | None = None
    invoice_ids: list[Id] = Field([], max_length=500, description="Invoices to pay, in this "
                                  "order; none: the account's open invoices, oldest due first")
    reference: Annotated[StrictStr, Field(max_length=500)] | None = Field(
        None, description="Check number, wire reference…")


@router.post("/payments", response_model=PaymentOut, status_code=201, tags=["payments"])
def record_payment(body: PaymentIn, request: Request, db: DbSession, caller: ApiCaller
                   ) -> dict[str, Any]:
    """Record a payment on a billing account and apply it; any excess is unapplied cash."""
    key = request.headers.get("idempotency-key")
    payment = recording.record(
        _request_first(request, db), request.app.state.gateways, caller.scope,
        billing_account_id=body.billing_account_id, amount_minor=body.amount_minor,
        method=body.method, instrument_token=body.instrument_token,
        invoice_ids=body.invoice_ids, reference=body.reference,
        submission_key=f"api:{key}"[:200] if key else None)
    return notify.describe(payment)


class RefundIn(Input):
    amount_minor: Annotated[StrictInt, Field(ge=1, le=10**15)] | None = Field(
        None, description="Part of the payment to refund; omitted: all that is left (and "
        "then the service fee too)")
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None


class RefundOut(BaseModel):
    id: str
    payment_id: str
    status: str
    amount_minor: int
    fee_minor: int
    reason: str | None
    gateway_reference: str | None
    failure_message: str | None
    created_at: datetime


def _refund_out(row: Refund) -> dict[str, Any]:
    return {k: getattr(row, k) for k in RefundOut.model_fields}


@router.post("/payments/{payment_id}/refunds", response_model=RefundOut, status_code=201,
             tags=["payments"])
def create_refund(payment_id: str, body: RefundIn, request: Request, db: DbSession,
                  caller: ApiCaller) -> dict[str, Any]:
    """Refund a card payment, or a settled bank payment (by an ACH credit), in full or in
    part through the gateway: it takes back its amount from the payment's unapplied cash
    first, then invoices kept elsewhere, then the invoices it paid last. A refund the
    gateway refuses answers 409 ``refund_refused`` and is listed, ``failed``, under GET
    …/refunds; one whose answer was lost stays ``pending`` until the janitor asks the
    gateway."""
    takeback.get_payment(db, caller.scope, payment_id)  # 404 before asking for a gateway
    row = refunds.refund(_factory(request, db), _gateway(request, caller.scope), caller.scope,
                       payment_id=payment_id, amount_minor=body.amount_minor, reason=body.reason)
    return _refund_out(row)


@router.get("/payments/{payment_id}/refunds", response_model=page_of(RefundOut),
            tags=["payments"])
def list_refunds(payment_id: str, db: DbSession, caller: ApiCaller) -> dict[str, object]:
    rows = refunds.list_refunds(db, caller.scope, payment_id)
    return {"data": [_refund_out(r) for r in rows], "has_more": False}


@router.post("/payments/{payment_id}/void", response_model=PaymentOut, tags=["payments"])
def void_payment(payment_id: str, request: Request, db: DbSession, caller: ApiCaller
                 ) -> dict[str, Any]:
    """Cancel a bank payment before it settles; the invoices it paid reopen."""
    takeback.get_payment(db, caller.scope, payment_id)
    payment = after.void(_factory(request, db), _gateway(request, caller.scope), caller.scope,
                         payment_id=payment_id)
    return notify.describe(payment)


# -- test clock ---------------------------------------------------------------------------


class ClockIn(Input):
    days: Annotated[StrictInt, Field(ge=1, le=366)]


class ClockOut(BaseModel):
    today: date
    clock_offset_days: int
    mode: str


@router.post("/test_clock/advance", response_model=ClockOut, tags=["test clock"])
def advance_clock(body: ClockIn, request: Request, db: DbSession, caller: ApiCaller
                  ) -> dict[str, Any]:
    """Test mode only: move this tenant's test clock forward and run what falls due
    meanwhile (bank settlements, returns and chargebacks of the test gateway, and the
    autopay charges of invoices that have come due)."""
    tenants.require_test_mode(caller.scope)
    factory = _factory(request, db)
    offset = after.advance_test_clock(factory, _gateway(request, caller.scope), caller.scope,
                                      days=body.days)
    autopay.run(factory, request.app.state.gateways, caller.scope,
                base_url=str(request.app.state.settings.base_url))
    with factory() as session:
        return {"today": tenants.today(session, caller.scope), "clock_offset_days": offset,
                "mode": caller.scope.mode}


# -- webhooks and postbacks ---------------------------------------------------------------


class EndpointIn(Input):
    url: Url
    enabled_events: list[Annotated[StrictStr, Field(max_length=60)]] = Field(
        ["*"], min_length=1, max_length=50,
        description=f"Event types, or [\"*\"] for all: {', '.join(webhooks.EVENT_TYPES)}")
    description: Annotated[StrictStr, Field(max_length=500)] | None = None


class EndpointPatch(Input):
    url: Url | None = None
    enabled_events: list[Annotated[StrictStr, Field(max_length=60)]] | None = None
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    status: Literal["enabled", "disabled"] | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    enabled_events: list[str]
    description: str | None
    status: str
    disabled_reason: str | None
    secret: str | None = Field(None, description="The signing secret; shown only when created "
                               "or rotated")
    created_at: datetime


def _endpoint_out(row: Any, secret: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "enabled_events": row.enabled_events,
            "description": row.description, "status": row.status,
            "disabled_reason": row.disabled_reason, "secret": secret,
            "created_at": row.created_at}


@router.post("/webhook_endpoints", response_model=EndpointOut, status_code=201,
             tags=["webhooks"])
def create_endpoint(body: EndpointIn, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    """Receive events, signed per Standard Webhooks with the secret returned here once."""
    with transaction(db):
        row, secret = webhooks.create_endpoint(
            db, caller.scope, url=body.url, enabled_events=body.enabled_events,
            description=body.description, allow_private=tenants.private_targets_allowed(db, caller.scope))
        return _endpoint_out(row, secret)


@router.get("/webhook_endpoints", response_model=page_of(EndpointOut), tags=["webhooks"])
def list_endpoints(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    rows = webhooks.list_endpoints(db, caller.scope, limit=page.limit + 1,
                                   starting_after=page.starting_after)
    return paged([_endpoint_out(r) for r in rows], page)


@router.get("/webhook_endpoints/{endpoint_id}", response_model=EndpointOut, tags=["webhooks"])
def get_endpoint(endpoint_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return _endpoint_out(webhooks.get_endpoint(db, caller.scope, endpoint_id))


@router.patch("/webhook_endpoints/{endpoint_id}", response_model=EndpointOut, tags=["webhooks"])
def update_endpoint(endpoint_id: str, body: EndpointPatch, db: DbSession, caller: ApiCaller
                    ) -> dict[str, Any]:
    with transaction(db):
        row = webhooks.update_endpoint(db, caller.scope, endpoint_id=endpoint_id,
                                       changes=body.model_dump(exclude_unset=True),
                                       allow_private=tenants.private_targets_allowed(db, caller.scope))
        return _endpoint_out(row)


@router.post("/webhook_endpoints/{endpoint_id}/rotate_secret", response_model=EndpointOut,
             tags=["webhooks"])
def rotate_endpoint_secret(endpoint_id: str, db: DbSession, caller: ApiCaller
                           ) -> dict[str, Any]:
    """A new signing secret; the old one keeps signing alongside for 24 hours."""
    with transaction(db):
        row, secret = webhooks.rotate_endpoint_secret(db, caller.scope, endpoint_id=endpoint_id)
        return _endpoint_out(row, secret)


class DeliveryOut(BaseModel):
    id: str
    kind: str
    endpoint_id: str | None
    event_id: str | None
    event_type: str | None
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _delivery_out(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in DeliveryOut.model_fields}


@router.get("/webhook_deliveries", response_model=page_of(DeliveryOut), tags=["webhooks"])
def list_deliveries(db: DbSession, caller: ApiCaller, page: Pagination,
                    endpoint_id: Annotated[str | None, Query(max_length=40)] = None
                    ) -> dict[str, object]:
    """The delivery log of webhooks and postbacks, with each attempt's outcome."""
    rows = webhooks.list_deliveries(db, caller.scope, endpoint_id=endpoint_id,
                                    limit=page.limit + 1, starting_after=page.starting_after)
    return paged([_delivery_out(r) for r in rows], page)


@router.post("/webhook_deliveries/{delivery_id}/resend", response_model=DeliveryOut,
             status_code=201, tags=["webhooks"])
def resend_delivery(delivery_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    """Send a delivery again (same body and webhook-id, so receivers can deduplicate)."""
    with transaction(db):
        return _delivery_out(webhooks.resend(db, caller.scope, delivery_id))


class SecretOut(BaseModel):
    secret: str = Field(description="whsec_…: shown once. The previous secret keeps signing "
                        "alongside for 24 hours.")
    mode: str


@router.post("/postback_secret", response_model=SecretOut, tags=["webhooks"])
def rotate_postback_secret(db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    """Reveal a new postback signing secret for this mode (rotating the old one)."""
    with transaction(db):
        return {"secret": webhooks.rotate_postback_secret(db, caller.scope),
                "mode": caller.scope.mode}


# -- Cloud Payments V2 --------------------------------------------------------------------

cloud_router = Router()


class CloudPaymentData(BaseModel):
    CloudPaymentURL: str
    SessionId: str


class CloudPaymentOut(BaseModel):
    Data: CloudPaymentData


@cloud_router.post("/cloudpayments/v2", response_model=CloudPaymentOut, tags=["payments"],
                   openapi_extra={"requestBody": {"required": True, "content": {
                       "application/json": {"schema": {"type": "object"}}}}})
async def cloud_payments_v2(request: Request) -> dict[str, Any]:
    """Invoice Cloud's Cloud Payments V2 request, with its own field names (in any letter
    case; booleans and amounts also as strings; dates MM/DD/YYYY). Authenticate with
    ``Authorization: Basic base64(<api key>)`` or Bearer. Answers
    ``{"Data": {"CloudPaymentURL", "SessionId"}}``."""
    caller = await workers.run_sync(_authenticate, request)
    data = cloudpayments.parse_json(await request.body())
    parsed = cloudpayments.parse_request(data, currency=cloud.CURRENCY)
    return await workers.run_sync(_cloud_session, request, caller, parsed)


def _authenticate(request: Request) -> Caller:
    with request.app.state.sessions() as db:
        caller = caller_of(request, db)
        db.commit()
        return caller


def _cloud_session(request: Request, caller: Caller,
                   parsed: cloudpayments.CloudPaymentRequest) -> dict[str, Any]:
    with request.app.state.sessions() as db, transaction(db):
        created = cloud.create_session(db, caller.scope, parsed, actor=caller.actor)
        url = created.url(request.app.state.settings.base_url)
        return {"Data": {"CloudPaymentURL": url, "SessionId": created.session.id}}


# -- entries ------------------------------------------------------------------------------


class EntryCustomerIn(Input):
    company_name: Annotated[StrictStr, Field(max_length=200)] | None = None
    first_name: Annotated[StrictStr, Field(max_length=100)] | None = None
    last_name: Annotated[StrictStr, Field(max_length=100)] | None = None
    primary_email: Annotated[StrictStr, Field(max_length=254)]


class SalesOrderLineIn(Input):
    price_id: Id
    quantity: Annotated[StrictInt, Field(ge=1, le=10**6)] = 1
    start_date: date | None = None


class EntryIn(Input):
    assignment_key: Annotated[StrictStr, Field(min_length=1, max_length=100)] = Field(
        description="Unique per tenant; the invoice finalized with it gets this money")
    amount_minor: Annotated[StrictInt, Field(ge=1, le=10**15)]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    billing_account_id: Id | None = None
    customer: EntryCustomerIn | None = Field(None, description="A new customer (with a "
                                             "billing account) instead of billing_account_id")
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    sales_order: list[SalesOrderLineIn] | None = Field(
        None, max_length=100, description="Lines of an order placed on the account now; once "
        "the entry is balanced, the next bill run invoices it on an invoice of its own with "
        "this assignment key (and the entry is assigned to it)")
    return_url: Url | None = None
    postback_url: Url | None = None


class AssignmentProblemOut(BaseModel):
    code: Literal["currency_mismatch", "other_customer", "payment_disputed"]
    message: str
    invoice_id: str | None


class EntryOut(BaseModel):
    id: str
    object: str = "entry"
    assignment_key: str
    status: Literal["open", "balanced", "assigned", "refunded"] = Field(
        description="refunded: its payment was refunded in full; it is never assigned and "
        "its sales order is not invoiced")
    amount_minor: int
    currency: str
    billing_account_id: str
    description: str | None
    order_id: str | None
    payment_id: str | None
    invoice_id: str | None
    payment_url: str | None = Field(None, description="Shown only when created, and by "
                                    "POST /v1/entries/{id}/payment_url")
    assignment_problem: AssignmentProblemOut | None = Field(
        None, description="Why a balanced entry is not assigned to the invoice with its key")
    created_at: datetime
    balanced_at: datetime | None
    assigned_at: datetime | None


_DERIVED = ("object", "payment_url", "status", "assignment_problem")


def _entry_out(view: entries.EntryView, url: str | None = None) -> dict[str, Any]:
    return {**{k: getattr(view.entry, k) for k in EntryOut.model_fields if k not in _DERIVED},
            "status": view.status, "assignment_problem": view.assignment_problem,
            "payment_url": url}


@router.post("/entries", response_model=EntryOut, status_code=201, tags=["entries"])
def create_entry(body: EntryIn, request: Request, db: DbSession, caller: ApiCaller
                 ) -> dict[str, Any]:
    """A prepayment with an assignment key and the link that pays it (card only)."""
    with transaction(db):
        sales_order = None if body.sales_order is None else [
            {k: v for k, v in line.model_dump().items() if v is not None}
            for line in body.sales_order]
        entry, created = entries.create_entry(
            db, caller.scope, assignment_key=body.assignment_key, amount_minor=body.amount_minor,
            currency=body.currency, billing_account_id=body.billing_account_id,
            customer=body.customer.model_dump(exclude_none=True) if body.customer else None,
            description=body.description, sales_order=sales_order,
            return_url=body.return_url, postback_url=body.postback_url, actor=caller.actor)
        [view] = entries.views(db, caller.scope, [entry])
        return _entry_out(view, created.url(request.app.state.settings.base_url))


@router.post("/entries/{entry_id}/payment_url", response_model=EntryOut, tags=["entries"])
def new_payment_url(entry_id: str, request: Request, db: DbSession, caller: ApiCaller
                    ) -> dict[str, Any]:
    """A fresh link that pays an open entry (its link expired, or was lost): the link
    given before stops working."""
    with transaction(db):
        entry, created = entries.new_payment_link(db, caller.scope, entry_id=entry_id)
        [view] = entries.views(db, caller.scope, [entry])
        return _entry_out(view, created.url(request.app.state.settings.base_url))


@router.get("/entries", response_model=page_of(EntryOut), tags=["entries"])
def list_entries(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    rows = entries.list_entries(db, caller.scope, limit=page.limit + 1,
                                starting_after=page.starting_after)
    return paged([_entry_out(v) for v in entries.views(db, caller.scope, rows)], page)


@router.get("/entries/{entry_id}", response_model=EntryOut, tags=["entries"])
def get_entry(entry_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    [view] = entries.views(db, caller.scope, [entries.get_entry(db, caller.scope, entry_id)])
    return _entry_out(view)
