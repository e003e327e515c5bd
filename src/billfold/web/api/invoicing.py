"""/v1/bill_runs, /v1/invoices and /v1/adjustments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from fastapi.responses import Response as RawResponse
from pydantic import BaseModel, Field, StrictInt, StrictStr

from billfold.core.db import get_scoped, transaction
from billfold.core.errors import NotFound
from billfold.core.filestore import FileStore
from billfold.invoicing import billrun
from billfold.invoicing import service as invoices
from billfold.invoicing.models import Adjustment, Invoice, InvoiceLine
from billfold.web.api.schemas import Id, Input, page_of
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

IdFilter = Annotated[str | None, Query(max_length=40)]
Minor = Annotated[StrictInt, Field(ge=0, le=invoices.MAX_MINOR)]
InvoiceStatus = Literal["draft", "open", "partially_paid", "paid", "void", "suppressed"]


# -- bill runs -----------------------------------------------------------------------------


class BillRunIn(Input):
    as_of_date: date = Field(description="Bill every active account due on or before this date")
    bill_cycle_id: Id | None = Field(None, description="Only this bill cycle's accounts")


class BillRunFailureOut(BaseModel):
    billing_account_id: str
    reason: str
    at: datetime


class BillRunOut(BaseModel):
    id: str
    bill_cycle_id: str | None
    as_of_date: date
    status: str
    accounts_total: int
    accounts_invoiced: int
    accounts_suppressed: int
    accounts_with_nothing_to_bill: int
    accounts_failed: int
    invoices: int
    totals_minor: dict[str, int] = Field(description="Total of the run's invoices per currency")
    failures: list[BillRunFailureOut]
    mode: str
    created_at: datetime
    completed_at: datetime | None


def _run_out(report: billrun.RunReport) -> dict[str, Any]:
    run = report.run
    return {
        "id": run.id, "bill_cycle_id": run.bill_cycle_id, "as_of_date": run.as_of_date,
        "status": run.status, "accounts_total": run.accounts_total,
        "accounts_invoiced": report.invoiced, "accounts_suppressed": report.suppressed,
        "accounts_with_nothing_to_bill": report.nothing_to_bill,
        "accounts_failed": report.failed, "invoices": report.invoice_count,
        "totals_minor": report.totals,
        "failures": [{"billing_account_id": f.billing_account_id, "reason": f.reason, "at": f.at}
                     for f in report.failures],
        "mode": run.mode, "created_at": run.created_at, "completed_at": run.completed_at,
    }


@router.post("/bill_runs", response_model=BillRunOut, status_code=201, tags=["bill runs"],
             responses={200: {"description": "Nothing was due: the earlier run of that date"}})
def create_bill_run(body: BillRunIn, db: DbSession, caller: ApiCaller, response: Response
                    ) -> dict[str, Any]:
    """Start a bill run; workers bill its accounts in chunks. Poll GET /v1/bill_runs/{id}."""
    with transaction(db):
        run, created = billrun.start_bill_run(db, caller.scope, as_of_date=body.as_of_date,
                                              bill_cycle_id=body.bill_cycle_id, actor=caller.actor)
    if not created:
        response.status_code = 200
    return _run_out(billrun.report(db, caller.scope, run.id))


@router.get("/bill_runs", response_model=page_of(BillRunOut), tags=["bill runs"])
def list_bill_runs(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    runs = billrun.list_runs(db, caller.scope, limit=page.limit + 1,
                             starting_after=page.starting_after)
    return paged([_run_out(billrun.report(db, caller.scope, r.id)) for r in runs], page)


@router.get("/bill_runs/{bill_run_id}", response_model=BillRunOut, tags=["bill runs"])
def get_bill_run(bill_run_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return _run_out(billrun.report(db, caller.scope, bill_run_id))


# -- invoices ------------------------------------------------------------------------------


class InvoiceLineOut(BaseModel):
    id: str
    kind: str
    billing_account_id: str
    description: str
    quantity: int
    unit_amount_minor: int | None
    amount_minor: int
    tax_minor: int
    tax_percent: str | None
    tax_exemption_certificate: str | None
    period_start: date | None
    period_end: date | None
    service_id: str | None
    pending_charge_id: str | None
    adjustment_id: str | None


class InvoiceOut(BaseModel):
    id: str
    number: str | None
    status: str
    billing_account_id: str
    invoiced_account_id: str | None
    customer_id: str
    currency: str
    rendering_type: str | None
    period_start: date | None
    period_end: date | None
    issue_date: date | None
    due_date: date | None
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    adjustments_minor: int
    amount_paid_minor: int
    amount_due_minor: int
    assignment_key: str | None
    bill_run_id: str | None
    carried_to_invoice_id: str | None
    delivery_status: str
    delivery_error: str | None
    memo: str | None
    lines: list[InvoiceLineOut]
    mode: str
    created_at: datetime
    finalized_at: datetime | None
    voided_at: datetime | None


INVOICE_FIELDS = tuple(f for f in InvoiceOut.model_fields if f != "lines")
LINE_FIELDS = tuple(InvoiceLineOut.model_fields)


def _invoice_out(invoice: Invoice, lines: list[InvoiceLine]) -> dict[str, Any]:
    out = {f: getattr(invoice, f) for f in INVOICE_FIELDS}
    out["lines"] = [{f: getattr(line, f) for f in LINE_FIELDS} for line in lines]
    return out


def _one(db: DbSession, invoice: Invoice) -> dict[str, Any]:
    return _invoice_out(invoice, invoices.invoice_lines(db, [invoice.id])[invoice.id])


class DraftLineIn(Input):
    description: Annotated[StrictStr, Field(min_length=1, max_length=300)]
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 1
    unit_amount_minor: Minor
    tax_percent: Annotated[StrictStr, Field(max_length=12)] = Field(
        "0", description='Percent as a decimal string, e.g. "8.25"')


class InvoiceIn(Input):
    billing_account_id: Id
    lines: Annotated[list[DraftLineIn], Field(min_length=1, max_length=invoices.MAX_LINES)]
    assignment_key: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = Field(
        None, description="Settles a prepayment entry with the same key (see /v1/entries)")
    memo: Annotated[StrictStr, Field(max_length=2000)] | None = None


@router.post("/invoices", response_model=InvoiceOut, status_code=201, tags=["invoices"])
def create_invoice(body: InvoiceIn, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    """A one-off invoice as a draft; finalize it to number and post it."""
    with transaction(db):
        invoice = invoices.create_draft(
            db, caller.scope, billing_account_id=body.billing_account_id,
            lines=[line.model_dump() for line in body.lines],
            assignment_key=body.assignment_key, memo=body.memo, actor=caller.actor)
        return _one(db, invoice)


@router.get("/invoices", response_model=page_of(InvoiceOut), tags=["invoices"])
def list_invoices(
    db: DbSession, caller: ApiCaller, page: Pagination,
    billing_account_id: IdFilter = None,
    status: Annotated[InvoiceStatus | None, Query()] = None,
    issued_from: Annotated[date | None, Query(description="Issue date on or after")] = None,
    issued_to: Annotated[date | None, Query(description="Issue date on or before")] = None,
) -> dict[str, object]:
    rows = invoices.list_invoices(
        db, caller.scope, limit=page.limit + 1, starting_after=page.starting_after,
        billing_account_id=billing_account_id, status=status, issued_from=issued_from,
        issued_to=issued_to)
    lines = invoices.invoice_lines(db, [r.id for r in rows[:page.limit]])
    return paged([_invoice_out(r, lines.get(r.id, [])) for r in rows], page)


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, tags=["invoices"])
def get_invoice(invoice_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return _one(db, invoices.get_invoice(db, caller.scope, invoice_id))


@router.post("/invoices/{invoice_id}/finalize", response_model=InvoiceOut, tags=["invoices"])
def finalize_invoice(invoice_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        return _one(db, invoices.finalize(db, caller.scope, invoice_id=invoice_id,
                                          actor=caller.actor))


@router.post("/invoices/{invoice_id}/void", response_model=InvoiceOut, tags=["invoices"])
def void_invoice(invoice_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        return _one(db, invoices.void(db, caller.scope, invoice_id=invoice_id, actor=caller.actor))


@router.get("/invoices/{invoice_id}/pdf", tags=["invoices"],
            responses={200: {"content": {"application/pdf": {}}}})
def invoice_pdf(invoice_id: str, db: DbSession, caller: ApiCaller, request: Request
                ) -> RawResponse:
    """The invoice's PDF, once the worker has rendered it (404 until then)."""
    invoice = invoices.get_invoice(db, caller.scope, invoice_id)
    store = FileStore(request.app.state.settings.data_dir)
    if invoice.pdf_key is None or not store.exists(invoice.pdf_key):
        raise NotFound("invoice_pdf", invoice_id)
    name = invoice.number or invoice.id
    return RawResponse(store.get(invoice.pdf_key), media_type="application/pdf",
                       headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


# -- adjustments ---------------------------------------------------------------------------


class AdjustmentIn(Input):
    billing_account_id: Id
    invoice_id: Id | None = Field(None, description="Adjust this invoice's open amount; "
                                                    "without it the adjustment lands on the "
                                                    "account's next invoice")
    kind: Literal["credit", "debit"]
    amount_minor: Annotated[StrictInt, Field(ge=1, le=invoices.MAX_MINOR)]
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]


class AdjustmentOut(BaseModel):
    id: str
    billing_account_id: str
    invoice_id: str | None
    applied_invoice_id: str | None
    kind: str
    amount_minor: int
    currency: str
    reason: str
    created_by: str
    mode: str
    created_at: datetime


@router.post("/adjustments", response_model=AdjustmentOut, status_code=201, tags=["adjustments"])
def create_adjustment(body: AdjustmentIn, db: DbSession, caller: ApiCaller) -> Adjustment:
    with transaction(db):
        return invoices.create_adjustment(
            db, caller.scope, billing_account_id=body.billing_account_id, kind=body.kind,
            amount_minor=body.amount_minor, reason=body.reason, invoice_id=body.invoice_id,
            actor=caller.actor)


@router.get("/adjustments", response_model=page_of(AdjustmentOut), tags=["adjustments"])
def list_adjustments(db: DbSession, caller: ApiCaller, page: Pagination,
                     billing_account_id: IdFilter = None) -> dict[str, object]:
    rows: list[object] = list(invoices.list_adjustments(
        db, caller.scope, limit=page.limit + 1, starting_after=page.starting_after,
        billing_account_id=billing_account_id))
    return paged(rows, page)


@router.get("/adjustments/{adjustment_id}", response_model=AdjustmentOut, tags=["adjustments"])
def get_adjustment(adjustment_id: str, db: DbSession, caller: ApiCaller) -> Adjustment:
    row: Adjustment = get_scoped(db, Adjustment, adjustment_id, caller.scope, "adjustment")
    return row
