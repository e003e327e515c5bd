"""The payer's preferences per account (paperless, new-invoice email, payment
confirmations) and profile (who they are, their accounts, adding an account, signing out
everywhere). Routes hang off portal.py's router (prefix ``/portal``).

Only an account's owner changes its preferences, and only when the biller lets payers
control them (``payer_controlled_preferences``); everyone else sees them read-only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.access import payers, preferences
from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import limits, portal_auth
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_views as views
from billfold.web.routing import Router

router = Router()
Form = Annotated[FormData, Depends(base.read_form)]


# -- preferences ------------------------------------------------------------------------------


@router.get("/preferences")
def preferences_page(request: Request, db: DbSession, saved: str = "") -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    settings = tenants.get_settings(db, viewer.scope)
    t = views.words(request, viewer)
    sections = [{"id": g.account.id, "label": views.account_label(g),
                 "role": views.role(t, g.grant.role),
                 "prefs": preferences.of(g.account),
                 "editable": g.is_owner and settings.payer_controlled_preferences,
                 "saved": g.account.id == saved}
                for g in viewer.grants(db)]
    return base.render(request, "preferences.html", {
        "sections": sections, "payer_controlled": settings.payer_controlled_preferences,
        "paper_bill": settings.paper_bill}, viewer=viewer, t=t)


@router.post("/preferences/{account_id}")
def change_preferences(account_id: str, request: Request, db: DbSession, form: Form
                       ) -> Response:
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    granted = viewer.granted(db, account_id)
    if granted is None:
        return base.not_found(request, viewer)
    t = views.words(request, viewer)
    root = request.scope.get("root_path", "")
    if not tenants.get_settings(db, viewer.scope).payer_controlled_preferences \
            or not granted.is_owner:
        return base.render(request, "message.html", {
            "title": t("You cannot change these preferences"),
            "note": t("Only an account's owner may change its preferences, and only when "
                      "{biller} lets payers set them.", biller=viewer.biller),
            "link": (f"{root}/portal/preferences", t("Back to your preferences"))},
            viewer=viewer, status=403, t=t)
    with transaction(db):
        preferences.apply(db, viewer.scope, granted.account, actor=f"payer_user:{viewer.user.id}",
                          paperless="paperless" in form, email_notify="email_notify" in form,
                          email_confirmations="email_confirmations" in form)
    return base.redirect(request, f"/portal/preferences?saved={account_id}")


# -- profile --------------------------------------------------------------------------------------


@router.get("/profile")
def profile(request: Request, db: DbSession) -> Response:
    viewer = base.viewer_of(request, db)
    if viewer is None:
        return base.to_sign_in(request)
    return _profile(request, db, viewer)


def _profile(request: Request, db: Session, viewer: base.Viewer, *,
             values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
             status: int = 200) -> Response:
    t = views.words(request, viewer)
    return base.render(request, "profile.html", {
        "accounts": [{"id": g.account.id, "number": g.account.number, "name": g.customer_name,
                      "role": views.role(t, g.grant.role)} for g in viewer.grants(db)],
        "check": tenants.get_settings(db, viewer.scope).registration_check,
        "languages": LANGUAGE_NAMES, "language": t.locale.language,
        "values": values or {}, "errors": errors or {}}, viewer=viewer, status=status, t=t)


@router.post("/profile/accounts")
def add_account(request: Request, db: DbSession, form: Form) -> Response:
    """The registration story for a signed-in payer: the account's number and the biller's
    registration value, then a link by email that adds the account (as its owner)."""
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    if not limits.REGISTER.allow(f"payer_user:{viewer.user.id}"):
        return base.too_many(request)
    values = {k: str(form.get(k) or "")[:254] for k in ("account_number", "registration_value")}
    check = tenants.get_settings(db, viewer.scope).registration_check
    base_url = str(request.app.state.settings.base_url).rstrip("/")
    t = views.words(request, viewer)
    try:
        with transaction(db):
            payers.register(db, viewer.scope, account_number=values["account_number"],
                            proof_ok=portal_auth.proof_checker(db, check,
                                                               values["registration_value"]),
                            email="", name="", password=None, signed_in=viewer.user,
                            link=lambda path: base_url + path, biller=viewer.biller)
    except ValidationFailed:  # the one thing it checks for a signed-in payer: a number
        return _profile(request, db, viewer, values=values, status=422,
                        errors={"account_number": t("Enter the account number.")})
    return base.render(request, "message.html", {
        "title": t("Check your email"),
        "note": t("If the details you gave match our records, we have sent an email with a "
                  "link to finish. The link works for two days."),
        "link": (f"{request.scope.get('root_path', '')}/portal/profile", t("Back to your profile"))},
        viewer=viewer, t=t)


LANGUAGE_NAMES = {"en": "English", "es": "Español"}  # each in its own language


@router.post("/profile/language")
def choose_language(request: Request, db: DbSession, form: Form) -> Response:
    """The payer's own choice of language, over the account's and the browser's."""
    viewer = base.posted_by(request, db, form)
    if isinstance(viewer, Response):
        return viewer
    language = str(form.get("language") or "")
    if language not in LANGUAGE_NAMES:
        t = views.words(request, viewer)
        return _profile(request, db, viewer, status=422,
                        errors={"language": t("Choose one of the languages listed.")})
    with transaction(db):
        viewer.user.preferred_language = language
        viewer.user.updated_at = clock.utcnow()
    return base.redirect(request, "/portal/profile")
