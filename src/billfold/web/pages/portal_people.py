"""Who may see an account: its owners invite others by email (``/portal/accounts/{id}/people``)
with a role — owner, can pay, can view — and take access away again; the invitee follows
the emailed link (``/portal/invitation``), setting a password if they have no login yet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.access import invitations, payers
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.tenants import service as tenants
from billfold.web.deps import DbSession
from billfold.web.pages import limits
from billfold.web.pages import portal_base as base
from billfold.web.pages import portal_views as views
from billfold.web.routing import Router

router = Router(prefix="/portal", include_in_schema=False)
Form = Annotated[FormData, Depends(base.read_form)]


def _owned(request: Request, db: Session, account_id: str, form: FormData | None = None
           ) -> tuple[base.Viewer, payers.Granted] | Response:
    """The signed-in owner of the account (who posted ``form`` with a good CSRF token,
    when one is given), or the page to answer with."""
    viewer = base.viewer_of(request, db) if form is None else base.posted_by(request, db, form)
    if viewer is None:
        return base.to_sign_in(request)
    if isinstance(viewer, Response):
        return viewer
    granted = viewer.granted(db, account_id)
    if granted is None or not granted.is_owner:  # only owners see who else has access
        return base.not_found(request, viewer)
    return viewer, granted


def _people(request: Request, db: Session, viewer: base.Viewer, granted: payers.Granted, *,
            errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
            notice: str | None = None, status: int = 200) -> Response:
    t = views.words(request, viewer)
    rows = [{"grant_id": g.id, "name": u.name, "email": u.email, "role": views.role(t, g.role),
             "you": u.id == viewer.user.id}
            for g, u in invitations.people_of(db, granted.account)]
    return base.render(request, "people.html", {
        "account": granted.account, "rows": rows, "errors": errors or {},
        "values": values or {"role": "payer"}, "notice": notice}, viewer=viewer, status=status,
        t=t)


@router.get("/accounts/{account_id}/people")
def people(account_id: str, request: Request, db: DbSession) -> Response:
    found = _owned(request, db, account_id)
    return found if isinstance(found, Response) else _people(request, db, *found)


@router.post("/accounts/{account_id}/people")
def invite(account_id: str, request: Request, db: DbSession, form: Form) -> Response:
    found = _owned(request, db, account_id, form)
    if isinstance(found, Response):
        return found
    viewer, granted = found
    if not limits.INVITE.allow(viewer.user.id):
        return base.too_many(request)
    values = {"email": str(form.get("email") or "")[:254], "role": str(form.get("role") or "")}
    t = views.words(request, viewer)
    base_url = str(request.app.state.settings.base_url).rstrip("/")
    try:
        with transaction(db):
            invitations.invite(db, viewer.scope, inviter=viewer.user, account=granted.account,
                          email=values["email"], role=values["role"],
                          link=lambda path: base_url + path,
                          biller=tenants.get_tenant(db, viewer.scope.tenant_id).name)
    except ValidationFailed as failed:
        return _people(request, db, viewer, granted, values=values, status=422,
                       errors={e.field: e.message for e in failed.errors})
    return _people(request, db, viewer, granted, notice=t(
        "We have emailed an invitation to {email}. It works for seven days.",
        email=values["email"].strip()))


@router.post("/accounts/{account_id}/people/{grant_id}/remove")
def remove(account_id: str, grant_id: str, request: Request, db: DbSession, form: Form
           ) -> Response:
    found = _owned(request, db, account_id, form)
    if isinstance(found, Response):
        return found
    viewer, granted = found
    with transaction(db):
        removed = invitations.revoke(db, owner=viewer.user, account=granted.account,
                                grant_id=grant_id[:40])
    if not removed:
        return base.not_found(request, viewer)
    return base.redirect(request, f"/portal/accounts/{account_id}/people")


# -- the invitee's side ---------------------------------------------------------------------


def _invitation_page(request: Request, db: Session, token: str, *,
                     errors: dict[str, str] | None = None, status: int = 200) -> Response:
    scope = payers.token_scope(db, token, "invitation") if token else None
    found = invitations.invitation_of(db, scope, token) if scope else None
    if scope is None or found is None:
        t = base.translator(request)
        return base.render(request, "message.html", {
            "title": t("This link does not work"),
            "note": t("The link has expired or was used already. Ask for a new one.")},
            status=410, t=t)
    row, user, account = found
    t = base.translator(request, account.preferred_language)
    context: dict[str, Any] = {
        "token": token, "account": account, "inviter": row.data.get("invited_by", ""),
        "role": views.role(t, str(row.data.get("role", ""))), "email": user.email,
        "needs_password": invitations.needs_password(user), "errors": errors or {}}
    return base.render(request, "invitation.html", context, status=status, t=t,
                       biller=tenants.get_tenant(db, scope.tenant_id).name)


@router.get("/invitation")
def invitation(request: Request, db: DbSession, token: str = "") -> Response:
    # A GET only shows the page: mail scanners that fetch links must not spend it.
    return _invitation_page(request, db, token[:100])


@router.post("/invitation")
def accept(request: Request, db: DbSession, form: Form) -> Response:
    if not base.csrf_ok(request, form):
        return base.forbidden(request)
    token = str(form.get("token") or "")[:100]
    scope = payers.token_scope(db, token, "invitation") if token else None
    if scope is None:
        return _invitation_page(request, db, token)
    try:
        with transaction(db):
            user = invitations.accept_invitation(db, scope, token, name=str(form.get("name") or ""),
                                            password=str(form.get("password") or "") or None)
            if user is None:
                return _invitation_page(request, db, token)
            _, cookie = payers.start_session(db, user, method="password")
    except ValidationFailed as failed:
        return _invitation_page(request, db, token, status=422,
                                errors={e.field: e.message for e in failed.errors})
    response = base.redirect(request, "/portal/accounts")
    base.set_session_cookie(request, response, cookie)
    return response
