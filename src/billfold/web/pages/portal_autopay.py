"""Autopay and saved payment methods in the portal: ``/portal/autopay`` (per account: on
or off, with which saved method and how many days after the due date — owners change it,
everyone else sees it) and ``/portal/methods`` (the methods a payer saved while paying,
with a way to remove one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.collections import enrollment as enrolling
from billfold.core.db import transaction
from billfold.core.errors import BillfoldError, NotFound, ValidationFailed
from billfold.payments import saved
from billfold.payments.models import SavedMethod
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_views as views
from billfold.web.pages.i18n import Translator
from billfold.web.pages.pay_views import saved_label
from billfold.web.pages.portal_i18n import PortalTranslator
from billfold.web.routing import Router

router = Router(prefix="/portal", include_in_schema=False)
Form = Annotated[FormData, Depends(base.read_form)]


def method_label(t: PortalTranslator, method: SavedMethod) -> str:
    """A saved method in the words the payment page offers it with."""
    return saved_label(method, Translator(t.locale))


# -- autopay ------------------------------------------------------------------------------


@router.get("/autopay")
def autopay_page(request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    return _autopay(request, db, viewer)


def _autopay(request: Request, db: Session, viewer: base.Viewer, *, errors: dict[str, Any] | None
             = None, notice: str | None = None, status: int = 200) -> Response:
    t = views.words(request, viewer)
    settings = tenants.get_settings(db, viewer.scope)
    methods = saved.list_for(db, viewer.scope, viewer.user.id)
    today = tenants.today(db, viewer.scope)
    rows = []
    for granted in viewer.grants(db):
        enrollment = enrolling.enrollment_of(db, viewer.scope, granted.account.id)
        current = None
        if enrollment is not None:
            current = next((m for m in methods if m.id == enrollment.saved_method_id), None)
            if current is None:  # another owner's method: say what it is without offering it
                current = db.get(SavedMethod, enrollment.saved_method_id)
        usable = [m for m in methods
                  if enrolling.unusable(db, viewer.scope, m, granted.account, today) is None]
        rows.append({
            "account": granted.account, "customer_name": granted.customer_name,
            "owner": granted.is_owner, "enrollment": enrollment,
            "current": method_label(t, current) if current is not None else None,
            "methods": [(m.id, method_label(t, m)) for m in usable]})
    return base.render(request, "autopay.html", {
        "rows": rows, "low": settings.autopay_min_offset_days,
        "high": settings.autopay_max_offset_days, "errors": errors or {}, "notice": notice},
        viewer=viewer, status=status, t=t)


@router.post("/autopay/{account_id}")
def enroll(account_id: str, request: Request, db: DbSession, form: Form) -> Response:
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    t = views.words(request, viewer)
    offset_text = str(form.get("offset_days") or "").strip()
    try:
        offset = int(offset_text)
    except ValueError:
        return _autopay(request, db, viewer, status=422, errors={
            account_id: {"offset_days": t("Enter a whole number of days")}})
    try:
        with transaction(db):
            enrolling.enroll(db, viewer.scope, user=viewer.user, billing_account_id=account_id,
                           saved_method_id=str(form.get("saved_method_id") or ""),
                           offset_days=offset)
    except NotFound:
        return base.not_found(request, viewer)
    except ValidationFailed as failed:
        return _autopay(request, db, viewer, status=422, errors={
            account_id: {e.field: e.message for e in failed.errors}})
    except BillfoldError as error:  # not the account's owner
        return _autopay(request, db, viewer, status=error.status,
                        errors={account_id: {"form": error.detail}})
    return base.redirect(request, "/portal/autopay")


@router.post("/autopay/{account_id}/cancel")
def cancel(account_id: str, request: Request, db: DbSession, form: Form) -> Response:
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    try:
        with transaction(db):
            enrolling.cancel(db, viewer.scope, user=viewer.user, billing_account_id=account_id)
    except NotFound:
        return base.not_found(request, viewer)
    except BillfoldError as error:
        return _autopay(request, db, viewer, status=error.status,
                        errors={account_id: {"form": error.detail}})
    return base.redirect(request, "/portal/autopay")


# -- saved methods ----------------------------------------------------------------------------


@router.get("/methods")
def methods_page(request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    return _methods(request, db, viewer)


def _methods(request: Request, db: Session, viewer: base.Viewer, *, error: str | None = None,
             status: int = 200) -> Response:
    t = views.words(request, viewer)
    rows = [(m.id, method_label(t, m), m.holder_name)
            for m in saved.list_for(db, viewer.scope, viewer.user.id)]
    return base.render(request, "methods.html", {"methods": rows, "error": error},
                       viewer=viewer, status=status, t=t)


@router.post("/methods/{method_id}/remove")
def remove_method(method_id: str, request: Request, db: DbSession, form: Form) -> Response:
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    try:
        with transaction(db):
            saved.remove(db, viewer.scope, payer_user_id=viewer.user.id, method_id=method_id)
    except NotFound:
        return base.not_found(request, viewer)
    except BillfoldError as error:  # an autopay enrollment relies on it
        return _methods(request, db, viewer, error=error.detail, status=error.status)
    return base.redirect(request, "/portal/methods")
