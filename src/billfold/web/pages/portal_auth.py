"""Signing in to the payer portal without SSO: sign-in, registration with an account number
and the biller's registration value, email verification, password reset, sign-out and
sign-out everywhere.

A biller's entry pages live under ``/portal/b/{tenant_id}/{mode}/`` (the link a biller
puts on its site); once signed in, the session cookie says whose portal it is. No answer
here reveals whether an email address or an account exists.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.access import payers
from billfold.core.db import transaction
from billfold.core.errors import FieldError, NotFound, ValidationFailed
from billfold.core.scope import MODES, Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import Invoice
from billfold.money import Money, MoneyError
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import limits
from billfold.web.pages import portal_base as base
from billfold.web.routing import Router

router = Router(prefix="/portal", include_in_schema=False)
log = logging.getLogger(__name__)
Form = Annotated[FormData, Depends(base.read_form)]


def _biller(db: Session, tenant_id: str, mode: str) -> tuple[Scope, str] | None:
    if mode not in MODES:
        return None
    try:
        return Scope(tenant_id, mode), tenants.get_tenant(db, tenant_id).name
    except NotFound:
        return None


def _entry(request: Request, tenant_id: str, mode: str) -> str:
    root = request.scope.get("root_path", "")
    return f"{root}/portal/b/{tenant_id}/{mode}"


def _link(request: Request) -> Callable[[str], str]:
    base_url = str(request.app.state.settings.base_url).rstrip("/")
    return lambda path: base_url + path


def _field_errors(errors: list[FieldError]) -> dict[str, str]:
    return {e.field: e.message for e in errors}


# -- sign in ----------------------------------------------------------------------------------


@router.get("/b/{tenant_id}/{mode}/login")
def login_form(tenant_id: str, mode: str, request: Request, db: DbSession) -> Response:
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    return _login_page(request, tenant_id, mode, biller[1])


def _login_page(request: Request, tenant_id: str, mode: str, biller: str, *, email: str = "",
                failed: bool = False, status: int = 200) -> Response:
    return base.render(request, "login.html", {
        "entry": _entry(request, tenant_id, mode), "email": email, "failed": failed},
        biller=biller, status=status)


@router.post("/b/{tenant_id}/{mode}/login")
def login(tenant_id: str, mode: str, request: Request, db: DbSession, form: Form) -> Response:
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    email, password = str(form.get("email") or "")[:254], str(form.get("password") or "")
    if not limits.SIGN_IN.allow(base.client_address(request)) \
            or not limits.SIGN_IN_PER_EMAIL.allow(f"{tenant_id}:{email.strip().lower()}"):
        return base.too_many(request)
    with transaction(db):
        user = payers.sign_in(db, biller[0], email=email, password=password)
        if user is None:
            log.info("portal sign-in failed for tenant %s", tenant_id)
            return _login_page(request, tenant_id, mode, biller[1], email=email, failed=True,
                               status=401)
        _, cookie = payers.start_session(db, user, method="password")
    response = base.redirect(request, "/portal/invoices")
    base.set_session_cookie(request, response, cookie)
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, form: Form) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is not None:
        if not base.csrf_ok(request, form):
            return base.forbidden(request, viewer)
        with transaction(db):
            payers.end_session(db, viewer.session_row)
    response = _signed_out(request, viewer)
    base.clear_session_cookie(request, response)
    return response


@router.post("/logout-everywhere")
def logout_everywhere(request: Request, db: DbSession, form: Form) -> Response:
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    with transaction(db):
        payers.end_all_sessions(db, viewer.user)
    response = _signed_out(request, viewer)
    base.clear_session_cookie(request, response)
    return response


def _signed_out(request: Request, viewer: base.Viewer | None) -> Response:
    t = base.translator(request)
    link = None
    if viewer is not None:
        link = (f"{_entry(request, viewer.scope.tenant_id, viewer.scope.mode)}/login",
                t("Sign in again"))
    return base.render(request, "message.html", {
        "title": t("You have signed out"), "note": t("You can close this window."),
        "link": link}, biller=viewer.biller if viewer else None, t=t)


# -- registration -------------------------------------------------------------------------


@router.get("/b/{tenant_id}/{mode}/register")
def register_form(tenant_id: str, mode: str, request: Request, db: DbSession,
                  account: str = "") -> Response:
    """The registration form; ``account`` fills in the account number (the payment page's
    receipt links here with the account just paid)."""
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    check = tenants.get_settings(db, biller[0]).registration_check
    return base.render(request, "register.html", {
        "entry": _entry(request, tenant_id, mode), "check": check,
        "values": {"account_number": account[:40]}, "errors": {}}, biller=biller[1])


@router.post("/b/{tenant_id}/{mode}/register")
def register(tenant_id: str, mode: str, request: Request, db: DbSession, form: Form) -> Response:
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    if not limits.REGISTER.allow(base.client_address(request)):
        return base.too_many(request)
    scope, name = biller
    values = {k: str(form.get(k) or "")[:254] for k in ("account_number", "registration_value",
                                                        "email", "name")}
    check = tenants.get_settings(db, scope).registration_check
    try:
        with transaction(db):
            payers.register(db, scope, account_number=values["account_number"],
                            proof_ok=proof_checker(db, check, values["registration_value"]),
                            email=values["email"], name=values["name"],
                            password=str(form.get("password") or ""), signed_in=None,
                            link=_link(request), biller=name)
    except ValidationFailed as failed:
        return base.render(request, "register.html", {
            "entry": _entry(request, tenant_id, mode), "check": check, "values": values,
            "errors": _field_errors(failed.errors)}, biller=name, status=422)
    return _check_email(request, name)


def _check_email(request: Request, biller: str) -> Response:
    t = base.translator(request)
    return base.render(request, "message.html", {
        "title": t("Check your email"),
        "note": t("If the details you gave match our records, we have sent an email with a "
                  "link to finish. The link works for two days.")}, biller=biller, t=t)


def proof_checker(db: Session, check: str, value: str) -> Callable[[BillingAccount], bool]:
    """Whether ``value`` is the account's registration value: its billing postal code, or
    the total of its latest invoice, as the tenant's ``registration_check`` says."""
    given = value.strip()

    def postal_code(account: BillingAccount) -> bool:
        address = db.scalar(select(Customer.billing_address).where(
            Customer.id == account.customer_id)) or {}
        expected = str(address.get("postal_code") or "")
        normal = "".join(given.split()).upper()
        return bool(expected) and hmac.compare_digest(
            "".join(expected.split()).upper().encode(), normal.encode())

    def last_invoice_amount(account: BillingAccount) -> bool:
        total = db.scalar(select(Invoice.total_minor).where(
            Invoice.billing_account_id == account.id,
            Invoice.status.in_(("open", "paid", "partially_paid")))
            .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(1))
        if total is None:
            return False
        try:
            amount = Money.parse(given.replace(",", "").lstrip("$€£ "), account.currency)
        except (MoneyError, ValueError):
            return False
        return amount.minor == total

    return postal_code if check == "postal_code" else last_invoice_amount


@router.get("/verify")
def verify_form(request: Request, db: DbSession, token: str = "") -> Response:
    # A GET only shows a button: mail scanners that fetch links must not spend the token.
    scope = payers.token_scope(db, token, "registration") if token else None
    if scope is None:
        return _bad_link(request)
    return base.render(request, "verify.html", {"token": token},
                       biller=tenants.get_tenant(db, scope.tenant_id).name)


@router.post("/verify")
def verify(request: Request, db: DbSession, form: Form) -> Response:
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    token = str(form.get("token") or "")
    scope = payers.token_scope(db, token, "registration") if token else None
    if scope is None:
        return _bad_link(request)
    with transaction(db):
        user = payers.finish_registration(db, scope, token)
        if user is None:
            return _bad_link(request)
        _, cookie = payers.start_session(db, user, method="password")
    response = base.redirect(request, "/portal/invoices")
    base.set_session_cookie(request, response, cookie)
    return response


def _bad_link(request: Request) -> Response:
    t = base.translator(request)
    return base.render(request, "message.html", {
        "title": t("This link does not work"),
        "note": t("The link has expired or was used already. Ask for a new one.")},
        status=410, t=t)


# -- password reset -------------------------------------------------------------------------


@router.get("/b/{tenant_id}/{mode}/forgot")
def forgot_form(tenant_id: str, mode: str, request: Request, db: DbSession) -> Response:
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    return base.render(request, "forgot.html", {"entry": _entry(request, tenant_id, mode)},
                       biller=biller[1])


@router.post("/b/{tenant_id}/{mode}/forgot")
def forgot(tenant_id: str, mode: str, request: Request, db: DbSession, form: Form) -> Response:
    biller = _biller(db, tenant_id, mode)
    if biller is None:
        return base.not_found(request)
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    if not limits.RESET.allow(base.client_address(request)):
        return base.too_many(request)
    with transaction(db):
        payers.request_reset(db, biller[0], email=str(form.get("email") or "")[:254],
                             link=_link(request), biller=biller[1])
    return _check_email(request, biller[1])


@router.get("/reset")
def reset_form(request: Request, db: DbSession, token: str = "") -> Response:
    scope = payers.token_scope(db, token, "reset_password") if token else None
    if scope is None:
        return _bad_link(request)
    return base.render(request, "reset.html", {"token": token, "errors": {}},
                       biller=tenants.get_tenant(db, scope.tenant_id).name)


@router.post("/reset")
def reset(request: Request, db: DbSession, form: Form) -> Response:
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    token = str(form.get("token") or "")
    scope = payers.token_scope(db, token, "reset_password") if token else None
    if scope is None:
        return _bad_link(request)
    biller = tenants.get_tenant(db, scope.tenant_id).name
    try:
        with transaction(db):
            user = payers.reset_password(db, scope, token=token,
                                         password=str(form.get("password") or ""))
    except ValidationFailed as failed:
        return base.render(request, "reset.html", {
            "token": token, "errors": _field_errors(failed.errors)}, biller=biller, status=422)
    if user is None:
        return _bad_link(request)
    t = base.translator(request)
    return base.render(request, "message.html", {
        "title": t("Your password has been changed"),
        "note": t("Every earlier sign-in has ended. Sign in with your new password."),
        "link": (f"{_entry(request, scope.tenant_id, scope.mode)}/login", t("Sign in"))},
        biller=biller, t=t)
