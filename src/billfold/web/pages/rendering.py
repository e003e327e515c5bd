"""Rendering a page: the Jinja2 environment, the security headers every page carries, and
the double-submit CSRF token.

The CSP has no script source at all, so an injected ``<script>`` cannot run even if
escaping were ever missed; ``frame-ancestors`` decides who may frame the page.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

CSRF_COOKIE = "bf_pay_csrf"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/pay/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

_env = Environment(
    loader=PackageLoader("billfold.web", "templates"),
    autoescape=select_autoescape(("html",)),
    undefined=StrictUndefined,  # a misspelt name fails the tests instead of rendering ""
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class FramePolicy:
    """Who may frame a page (no one unless ``ancestors``) and the one outside stylesheet
    origin a page may load."""

    ancestors: tuple[str, ...] = ()
    css_origin: str | None = None
    framed: bool = False  # the session's ViewMode 1: made to be shown inside the biller's site

    def headers(self) -> dict[str, str]:
        style = "'self'" + (f" {self.css_origin}" if self.css_origin else "")
        ancestors = " ".join(self.ancestors) if self.framed and self.ancestors else "'none'"
        headers = {
            "Content-Security-Policy": (
                f"default-src 'none'; style-src {style}; img-src 'self'; form-action 'self'; "
                f"base-uri 'none'; frame-ancestors {ancestors}"),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        if not self.framed:
            headers["X-Frame-Options"] = "DENY"
        return headers


def csrf_token(request: Request, cookie: str = CSRF_COOKIE) -> str:
    """The browser's CSRF token: the one its cookie holds, or a new one."""
    current = request.cookies.get(cookie, "")
    return current if _TOKEN.fullmatch(current) else secrets.token_urlsafe(32)


def csrf_ok(request: Request, form: FormData, cookie_name: str = CSRF_COOKIE) -> bool:
    cookie = request.cookies.get(cookie_name, "")
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not _TOKEN.fullmatch(cookie):
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode())


def render(request: Request, template: str, context: Mapping[str, Any], *, status: int = 200,
           policy: FramePolicy, secure: bool, cookie: str = CSRF_COOKIE,
           cookie_path: str = COOKIE_PATH) -> HTMLResponse:
    """``template`` as an HTML response carrying the security headers and the CSRF cookie
    whose value ``context["csrf"]`` puts in the page's forms."""
    token = str(context.get("csrf") or csrf_token(request, cookie))
    body = _env.get_template(template).render({**context, "csrf": token,
                                               "root": request.scope.get("root_path", "")})
    response = HTMLResponse(body, status_code=status, headers=policy.headers())
    # A framed page lives in the biller's site: its cookie must travel cross-site, which
    # browsers allow only with SameSite=None on a Secure cookie.
    same_site: Literal["strict", "lax", "none"] = "strict"
    if policy.framed:
        same_site = "none" if secure else "lax"
    response.set_cookie(cookie, token, path=request.scope.get("root_path", "") + cookie_path,
                        httponly=True, secure=secure, samesite=same_site)
    return response
