"""The signed-in payer portal: invoice history (every invoice of every granted account,
filtered, sorted and paged by keyset), an invoice as its PDF shows it, the PDF itself, and
"Pay selected", which hands the chosen invoices to the hosted payment page.

The accounts, payments and receipts pages are in portal_accounts.py, preferences and the
profile in portal_settings.py; their routes hang off this router. An object outside the
viewer's grants answers 404 exactly like a missing one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.access import payers
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.core.filestore import FileStore
from billfold.invoicing import documents
from billfold.invoicing.models import Invoice
from billfold.notifications import targets
from billfold.payments import sessions
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import portal_accounts, portal_settings
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_queries as queries
from billfold.web.pages import portal_views as views
from billfold.web.pages.portal_i18n import PortalTranslator
from billfold.web.routing import Router

router = Router(prefix="/portal", include_in_schema=False)
router.include_router(portal_accounts.router)
router.include_router(portal_settings.router)
Form = Annotated[FormData, Depends(base.read_form)]
log = logging.getLogger(__name__)

PAGE_SIZE = 50
FILTER_NAMES = ("account", "status", "from", "to", "sort", "order")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the history table, formatted."""

    id: str
    number: str
    account: str
    issue_date: str
    due_date: str
    status: str
    overdue: bool
    total: str
    due: str
    payable: bool
    chosen: bool


# -- invoice history ------------------------------------------------------------------------


@router.get("/invoices")
def invoices(request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    if not tenants.get_settings(db, viewer.scope).invoice_history_enabled:
        return views.history_off(request, viewer)
    return _history(request, db, viewer, request.query_params)


def _history(request: Request, db: Session, viewer: base.Viewer, params: Mapping[str, str], *,
             problems: Sequence[str] = (), chosen: frozenset[str] = frozenset(),
             status: int = 200) -> Response:
    t = views.words(request, viewer)
    grants = viewer.grants(db)
    read = _filters(params, grants, t)
    if read is None:
        return base.not_found(request, viewer)
    filters, shown, errors = read
    page = queries.history_page(
        db, viewer.scope, filters, limit=PAGE_SIZE,
        after=queries.Cursor.decode(params.get("after", ""), filters.sort),
        before=queries.Cursor.decode(params.get("before", ""), filters.sort))
    today = tenants.today(db, viewer.scope)
    by_account = {g.account.id: g for g in grants}
    rows = [_row(t, r, by_account[r.billing_account_id], today, chosen) for r in page.rows]
    totals = queries.due_totals(db, viewer.scope, filters)
    portal = f"{request.scope.get('root_path', '')}/portal/invoices"
    return base.render(request, "invoices.html", {
        "rows": rows, "shown": shown, "problems": [*problems, *errors],
        "accounts": [(g.account.id, views.account_label(g)) for g in grants],
        "totals": [t.money(minor, currency) for currency, minor in totals.items()],
        "next_url": _page_url(portal, shown, "after", page.next_cursor),
        "previous_url": _page_url(portal, shown, "before", page.previous_cursor),
        "back": urlencode({k: v for k, v in params.items() if k in (*FILTER_NAMES, "after",
                                                                     "before") and v}),
        "payable": any(r.payable for r in rows)}, viewer=viewer,
        status=422 if errors and status == 200 else status, t=t)


def _filters(params: Mapping[str, str], grants: Sequence[payers.Granted], t: PortalTranslator
             ) -> tuple[queries.Filters, dict[str, str], list[str]] | None:
    """The filters a query string asks for, what the form shows, and what was wrong with
    it (a wrong part is left out); None for an account outside the grants."""
    shown = {name: str(params.get(name) or "")[:40] for name in FILTER_NAMES}
    granted = [g.account.id for g in grants]
    if shown["account"] and shown["account"] not in granted:
        return None
    if shown["status"] not in queries.STATUS_FILTERS:
        shown["status"] = ""
    if shown["sort"] not in queries.SORT_KEYS:
        shown["sort"] = "issue_date"
    if shown["order"] not in ("asc", "desc"):
        shown["order"] = "desc"
    errors: list[str] = []
    issued = [_date(shown, name, t, errors) for name in ("from", "to")]
    if issued[0] and issued[1] and issued[0] > issued[1]:
        errors.append(t("The first issue date is after the last one."))
        issued = [None, None]
    filters = queries.Filters(
        account_ids=(shown["account"],) if shown["account"] else tuple(granted),
        statuses=queries.STATUS_FILTERS[shown["status"]], issued_from=issued[0],
        issued_to=issued[1], sort=shown["sort"], descending=shown["order"] == "desc")
    return filters, shown, errors


def _date(shown: dict[str, str], name: str, t: PortalTranslator, errors: list[str]
          ) -> date | None:
    if not shown[name]:
        return None
    try:
        return date.fromisoformat(shown[name])
    except ValueError:
        errors.append(t("Enter dates like {example}.", example="2026-03-31"))
        shown[name] = ""
        return None


def _row(t: PortalTranslator, row: queries.HistoryRow, grant: payers.Granted, today: date,
         chosen: frozenset[str]) -> Row:
    payable = grant.can_pay and row.status in queries.PAYABLE_STATUSES \
        and row.amount_due_minor > 0
    return Row(id=row.id, number=row.number, account=grant.account.number,
               issue_date=t.date(row.issue_date), due_date=t.date(row.due_date),
               status=views.invoice_status(t, row.status),
               overdue=row.status in queries.PAYABLE_STATUSES and row.due_date is not None
               and row.due_date < today,
               total=t.money(row.total_minor, row.currency),
               due=t.money(row.amount_due_minor, row.currency), payable=payable,
               chosen=payable and row.id in chosen)


def _page_url(path: str, shown: dict[str, str], direction: str,
              cursor: queries.Cursor | None) -> str | None:
    if cursor is None:
        return None
    query = {k: v for k, v in shown.items() if v} | {direction: cursor.encode()}
    return f"{path}?{urlencode(query)}"


# -- one invoice ------------------------------------------------------------------------------


def _visible(db: Session, viewer: base.Viewer, invoice_id: str) -> Invoice | None:
    """The invoice if the viewer may see it: issued, on a granted account."""
    invoice = queries.invoices_by_id(db, viewer.scope, [invoice_id[:40]]).get(invoice_id)
    if invoice is None or invoice.status not in queries.SHOWN_STATUSES \
            or invoice.issue_date is None \
            or viewer.granted(db, invoice.billing_account_id) is None:
        return None
    return invoice


def _shown_invoice(request: Request, db: Session, invoice_id: str
                   ) -> tuple[base.Viewer, Invoice] | Response:
    """The signed-in viewer and one of their invoices, or the page to answer with (sign
    in, history off, not found)."""
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    if not tenants.get_settings(db, viewer.scope).invoice_history_enabled:
        return views.history_off(request, viewer)
    found = _visible(db, viewer, invoice_id)
    if found is None:
        return base.not_found(request, viewer)
    return viewer, found


@router.get("/invoices/{invoice_id}")
def invoice(invoice_id: str, request: Request, db: DbSession) -> Response:
    shown = _shown_invoice(request, db, invoice_id)
    if isinstance(shown, Response):
        return shown
    viewer, found = shown
    grant = viewer.granted(db, found.billing_account_id)
    assert grant is not None
    t = views.words(request, viewer)
    return base.render(request, "invoice.html", {
        "invoice": found, "doc": documents.document_for(db, viewer.scope, found),
        "status": views.invoice_status(t, found.status),
        "payable": grant.can_pay and found.status in queries.PAYABLE_STATUSES
        and found.amount_due_minor > 0}, viewer=viewer, t=t)


@router.get("/invoices/{invoice_id}/pdf")
def invoice_pdf(invoice_id: str, request: Request, db: DbSession) -> Response:
    """The PDF the worker rendered for the invoice (the same file /v1/invoices/{id}/pdf
    serves), as a download."""
    shown = _shown_invoice(request, db, invoice_id)
    if isinstance(shown, Response):
        return shown
    viewer, found = shown
    store = FileStore(request.app.state.settings.data_dir)
    if found.pdf_key is None or not store.exists(found.pdf_key):
        t = views.words(request, viewer)
        return base.render(request, "message.html", {
            "title": t("The PDF is not ready yet"),
            "note": t("The PDF of this invoice is still being prepared. Try again in a few "
                      "minutes; the invoice page shows the same details meanwhile."),
            "link": (f"{request.scope.get('root_path', '')}/portal/invoices/{found.id}",
                     t("Back to the invoice"))}, viewer=viewer, status=404, t=t)
    name = _SAFE_NAME.sub("_", found.number or found.id)
    return Response(store.get(found.pdf_key), media_type="application/pdf", headers={
        **base.POLICY.headers(), "Content-Disposition": f'attachment; filename="{name}.pdf"'})


# -- pay selected -------------------------------------------------------------------------------


@router.post("/pay")
def pay(request: Request, db: DbSession, form: Form) -> Response:
    """A hosted payment session over the chosen invoices, then off to its page; any
    invoice the viewer may not pay refuses the lot and nothing is created."""
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    if not tenants.get_settings(db, viewer.scope).invoice_history_enabled:
        return views.history_off(request, viewer)
    t = views.words(request, viewer)
    chosen = list(dict.fromkeys(str(v)[:40] for v in form.getlist("invoice")))
    back = dict(parse_qsl(str(form.get("back") or "")[:2000]))
    problems = _payable(db, viewer, t, chosen)
    if problems:
        return _history(request, db, viewer, back, problems=problems,
                        chosen=frozenset(chosen), status=422)
    base_url = str(request.app.state.settings.base_url).rstrip("/")
    try:
        with transaction(db):
            created = sessions.create_native(
                db, viewer.scope, invoices=[{"invoice_id": i, "allow_partial": True}
                                            for i in chosen],
                return_url=f"{base_url}/portal/payments/after", locale=t.locale.tag,
                payer_user_id=viewer.user.id, own_origin=targets.origin_of(base_url))
            # The session's id is known only once it exists; same origin, already checked.
            created.session.return_url = \
                f"{base_url}/portal/payments/after/{created.session.id}"
    except ValidationFailed as failed:  # an invoice paid or voided a moment ago
        log.info("portal pay session refused: %s", failed.errors)
        return _history(request, db, viewer, back, chosen=frozenset(chosen), status=422,
                        problems=[t("An invoice chosen has just been paid or changed. Check "
                                    "the list and try again.")])
    return base.redirect(request, f"/pay/{created.token}")


def _payable(db: Session, viewer: base.Viewer, t: PortalTranslator, chosen: Sequence[str]
             ) -> list[str]:
    """What is wrong with paying ``chosen`` together (nothing: they may be paid)."""
    if not chosen:
        return [t("Choose at least one invoice to pay.")]
    if len(chosen) > sessions.MAX_LINES:
        return [t("Choose at most {count} invoices at a time.", count=sessions.MAX_LINES)]
    found = queries.invoices_by_id(db, viewer.scope, chosen)
    problems: list[str] = []
    for invoice_id in chosen:
        invoice = found.get(invoice_id)
        grant = viewer.granted(db, invoice.billing_account_id) if invoice else None
        if invoice is None or grant is None or invoice.status not in queries.SHOWN_STATUSES:
            problems.append(t("One of the invoices chosen is not yours to pay, or does not "
                              "exist."))
        elif not grant.can_pay:
            problems.append(t("You may see the invoices of account {number} but not pay "
                              "them.", number=grant.account.number))
        elif invoice.status not in queries.PAYABLE_STATUSES or invoice.amount_due_minor <= 0:
            problems.append(t("Invoice {number} has nothing left to pay.",
                              number=invoice.number))
    currencies = sorted({i.currency for i in found.values()})
    if not problems and len(currencies) > 1:
        problems.append(t("The invoices chosen are in different currencies ({currencies}). "
                          "Pay the invoices of each currency separately.",
                          currencies=", ".join(currencies)))
    return list(dict.fromkeys(problems))
