"""What every portal page shares: who is signed in (the ``bf_portal`` session cookie), the
payer's language, rendering with the security headers and a CSRF token, and the answers
for a missing sign-in, a failed CSRF check and a rate limit.

The session cookie is ``HttpOnly; SameSite=Lax`` and ``Secure`` whenever Billfold is served
over HTTPS (``BILLFOLD_BASE_URL``); it holds a random token whose digest names a
``payer_session`` row. Forms carry a double-submit CSRF token from a second, strict cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from billfold.access import payers
from billfold.access.models import PayerSession, PayerUser
from billfold.core.scope import Mode, Scope
from billfold.tenants import service as tenants
from billfold.web.pages import rendering
from billfold.web.pages.portal_i18n import PortalTranslator, choose

SESSION_COOKIE = "bf_portal"
CSRF_COOKIE = "bf_portal_csrf"
COOKIE_PATH = "/"  # the SSO entry (/sso/…) sets it for the portal (/portal/…)
POLICY = rendering.FramePolicy()  # portal pages are never framed


def secure(request: Request) -> bool:
    return str(request.app.state.settings.base_url).startswith("https://")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Viewer:
    """The signed-in payer user of one request."""

    user: PayerUser
    session_row: PayerSession
    scope: Scope
    biller: str
    _grants: list[payers.Granted] | None = field(default=None, repr=False)

    def grants(self, db: Session) -> list[payers.Granted]:
        if self._grants is None:
            self._grants = payers.grants_of(db, self.user)
        return self._grants

    def granted(self, db: Session, account_id: str) -> payers.Granted | None:
        return next((g for g in self.grants(db) if g.account.id == account_id), None)


def viewer_of(request: Request, db: Session) -> Viewer | None:
    """The signed-in payer user, or None. Finding the session may move its last-seen time
    (once a minute); that is committed at once, or a payer who only reads pages would be
    signed out as idle after two hours."""
    found = payers.session_of(db, request.cookies.get(SESSION_COOKIE))
    if found is None:
        return None
    if db.dirty:
        db.commit()
    row, user = found
    scope = Scope(user.tenant_id, cast(Mode, user.mode))
    return Viewer(user=user, session_row=row, scope=scope,
                  biller=tenants.get_tenant(db, scope.tenant_id).name)


def translator(request: Request, preferred: str | None = None) -> PortalTranslator:
    return PortalTranslator(choose(preferred, request.headers.get("accept-language")))


def render(request: Request, template: str, context: Mapping[str, Any], *,
           viewer: Viewer | None = None, biller: str | None = None, status: int = 200,
           t: PortalTranslator | None = None) -> HTMLResponse:
    """A portal page: ``template`` under ``web/templates/portal/``, with the words (``t``),
    the signed-in user and the CSRF token every form must carry."""
    t = t or translator(request, viewer.user.preferred_language if viewer else None)
    root = request.scope.get("root_path", "")
    return rendering.render(request, f"portal/{template}", {
        "t": t, "lang": t.locale.tag, "viewer": viewer, "portal": f"{root}/portal",
        "biller": biller or (viewer.biller if viewer else "Billfold"), **context},
        status=status, policy=POLICY, secure=secure(request), cookie=CSRF_COOKIE,
        cookie_path=COOKIE_PATH)


def csrf_ok(request: Request, form: FormData) -> bool:
    return rendering.csrf_ok(request, form, CSRF_COOKIE)


def posted_by(request: Request, db: Session, form: FormData) -> Viewer | Response:
    """The signed-in payer user who posted ``form`` with a good CSRF token, or the page
    to answer with instead (sign in; the form has expired)."""
    viewer = viewer_of(request, db)
    if viewer is None:
        return to_sign_in(request)
    if not csrf_ok(request, form):
        return forbidden(request, viewer)
    return viewer


def redirect(request: Request, path: str) -> Response:
    """303 to a portal path (``/portal/...``), so a POST is never repeated by reload."""
    root = request.scope.get("root_path", "")
    return RedirectResponse(root + path, status_code=303, headers=POLICY.headers())


def to_sign_in(request: Request) -> Response:
    """A page that needs a signed-in user, asked for without one."""
    t = translator(request)
    return render(request, "message.html", {
        "title": t("Please sign in"),
        "note": t("Your session has ended or you have not signed in yet. Sign in again "
                  "from the biller's website or with the sign-in link you were sent.")},
        status=401, t=t)


def forbidden(request: Request, viewer: Viewer | None = None) -> Response:
    t = translator(request, viewer.user.preferred_language if viewer else None)
    return render(request, "message.html", {
        "title": t("This form has expired"),
        "note": t("For your security the form could not be accepted. Go back, reload the "
                  "page and try again.")}, viewer=viewer, status=403, t=t)


def not_found(request: Request, viewer: Viewer | None = None) -> Response:
    t = translator(request, viewer.user.preferred_language if viewer else None)
    return render(request, "message.html", {
        "title": t("Not found"),
        "note": t("There is nothing here, or it is not yours to see.")},
        viewer=viewer, status=404, t=t)


def too_many(request: Request) -> Response:
    t = translator(request)
    response = render(request, "message.html", {
        "title": t("Too many attempts"),
        "note": t("Please wait a few minutes before trying again.")}, status=429, t=t)
    response.headers["Retry-After"] = "300"
    return response


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    root = request.scope.get("root_path", "")
    response.set_cookie(SESSION_COOKIE, value, path=root + COOKIE_PATH, httponly=True,
                        secure=secure(request), samesite="lax",
                        max_age=int(payers.SESSION_LIFETIME.total_seconds()))


def clear_session_cookie(request: Request, response: Response) -> None:
    root = request.scope.get("root_path", "")
    response.delete_cookie(SESSION_COOKIE, path=root + COOKIE_PATH, httponly=True,
                           secure=secure(request), samesite="lax")


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=1000)
