"""/v1/invoice_distribution_rules (GTV's Distribute Invoice) and the print batches of bill
runs and one-off paper invoices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response as RawResponse
from pydantic import BaseModel, Field

from billfold.core.db import get_scoped, transaction
from billfold.core.errors import NotFound
from billfold.core.filestore import FileStore
from billfold.customers.records import CONTACT_CATEGORIES
from billfold.invoicing import delivery, distribution
from billfold.invoicing import service as invoices
from billfold.invoicing.models import BillRun, InvoiceDistributionRule
from billfold.web.api.schemas import Id, Input, page_of
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

ContactCategory = Literal[CONTACT_CATEGORIES]  # type: ignore[valid-type]


class DistributionRuleIn(Input):
    billing_account_id: Id | None = Field(
        None, description="Only this account; leave out for all accounts")
    contact_category: ContactCategory | None = Field(
        None, description="Also email the account's contacts in this category; leave out to "
                          "email the customer's primary email")


class DistributionRuleOut(BaseModel):
    id: str
    billing_account_id: str | None
    contact_category: str | None
    applies_to: str = Field(description='"all", "account:<id>", "category:<name>" or both')
    created_by: str
    mode: str
    created_at: datetime


@router.post("/invoice_distribution_rules", response_model=DistributionRuleOut,
             status_code=201, tags=["invoice delivery"])
def create_distribution_rule(body: DistributionRuleIn, db: DbSession, caller: ApiCaller
                             ) -> InvoiceDistributionRule:
    """Enable Distribute Invoice: invoices of accounts with invoice type email or
    paper_and_email are emailed only where a rule covers the account."""
    with transaction(db):
        return distribution.create_rule(
            db, caller.scope, billing_account_id=body.billing_account_id,
            contact_category=body.contact_category, actor=caller.actor)


@router.get("/invoice_distribution_rules", response_model=page_of(DistributionRuleOut),
            tags=["invoice delivery"])
def list_distribution_rules(
        db: DbSession, caller: ApiCaller, page: Pagination,
        billing_account_id: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, object]:
    rows: list[object] = list(distribution.list_rules(
        db, caller.scope, limit=page.limit + 1, starting_after=page.starting_after,
        billing_account_id=billing_account_id))
    return paged(rows, page)


@router.get("/invoice_distribution_rules/{distribution_rule_id}",
            response_model=DistributionRuleOut, tags=["invoice delivery"])
def get_distribution_rule(distribution_rule_id: str, db: DbSession, caller: ApiCaller
                          ) -> InvoiceDistributionRule:
    return distribution.get_rule(db, caller.scope, distribution_rule_id)


@router.delete("/invoice_distribution_rules/{distribution_rule_id}", status_code=204,
               tags=["invoice delivery"])
def delete_distribution_rule(distribution_rule_id: str, db: DbSession, caller: ApiCaller
                             ) -> RawResponse:
    """Disable Distribute Invoice for what the rule covered. Invoices already emailed stay
    emailed."""
    with transaction(db):
        distribution.delete_rule(db, caller.scope, distribution_rule_id)
    return RawResponse(status_code=204)


# -- print batches -------------------------------------------------------------------------

_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The print batch"}}
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "Its mailing manifest"}}


def _file(request: Request, key: str, batch_id: str, media_type: str, name: str
          ) -> RawResponse:
    store = FileStore(request.app.state.settings.data_dir)
    if not store.exists(key):
        raise NotFound("print_batch", batch_id)
    return RawResponse(store.get(key), media_type=media_type,
                       headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get("/bill_runs/{bill_run_id}/print_batch.pdf", tags=["invoice delivery"],
            response_class=RawResponse, responses=_PDF)
def bill_run_print_batch_pdf(bill_run_id: str, db: DbSession, caller: ApiCaller,
                             request: Request) -> RawResponse:
    """The run's paper invoices in one PDF, each starting on an odd page (404 until the
    worker has made it, and for a run without paper invoices)."""
    run: BillRun = get_scoped(db, BillRun, bill_run_id, caller.scope, "bill_run")
    return _file(request, delivery.print_batch_key(caller.scope, run.id, "pdf"), run.id,
                 "application/pdf", f"print-batch-{run.id}.pdf")


@router.get("/bill_runs/{bill_run_id}/print_batch.csv", tags=["invoice delivery"],
            response_class=RawResponse, responses=_CSV)
def bill_run_print_batch_csv(bill_run_id: str, db: DbSession, caller: ApiCaller,
                             request: Request) -> RawResponse:
    """The mailing manifest of the run's print batch: one row per invoice with its address,
    first page and page count."""
    run: BillRun = get_scoped(db, BillRun, bill_run_id, caller.scope, "bill_run")
    return _file(request, delivery.print_batch_key(caller.scope, run.id, "csv"), run.id,
                 "text/csv; charset=utf-8", f"print-batch-{run.id}.csv")


@router.get("/invoices/{invoice_id}/print_batch.pdf", tags=["invoice delivery"],
            response_class=RawResponse, responses=_PDF)
def invoice_print_batch_pdf(invoice_id: str, db: DbSession, caller: ApiCaller,
                            request: Request) -> RawResponse:
    """The print batch of a paper invoice issued outside a bill run (a finalized one-off)."""
    invoice = invoices.get_invoice(db, caller.scope, invoice_id)
    return _file(request, delivery.print_batch_key(caller.scope, invoice.id, "pdf"),
                 invoice.id, "application/pdf", f"print-batch-{invoice.number or invoice.id}.pdf")


@router.get("/invoices/{invoice_id}/print_batch.csv", tags=["invoice delivery"],
            response_class=RawResponse, responses=_CSV)
def invoice_print_batch_csv(invoice_id: str, db: DbSession, caller: ApiCaller,
                            request: Request) -> RawResponse:
    invoice = invoices.get_invoice(db, caller.scope, invoice_id)
    return _file(request, delivery.print_batch_key(caller.scope, invoice.id, "csv"),
                 invoice.id, "text/csv; charset=utf-8",
                 f"print-batch-{invoice.number or invoice.id}.csv")
