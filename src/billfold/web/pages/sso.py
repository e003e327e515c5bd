"""The SSO entry, ``/sso/{mode}/{client_guid}``: the biller's site sends the payer here
with ``token`` as a query or form parameter (GET or POST). An accepted token signs the
payer in and redirects to invoice history; every refusal gets the same page (and a
logged reason), so a prober learns nothing about which check failed.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.datastructures import FormData
from starlette.responses import Response

from billfold.access import sso
from billfold.core.db import transaction
from billfold.web.deps import DbSession
from billfold.web.pages import limits
from billfold.web.pages import portal_base as base
from billfold.web.routing import Router

router = Router(prefix="/sso", include_in_schema=False)
log = logging.getLogger(__name__)
_ATTEMPTS = 3


async def _form(request: Request) -> FormData:
    if request.method != "POST":
        return FormData()
    return await request.form(max_files=0, max_fields=20)


@router.api_route("/{mode}/{client_guid}", methods=["GET", "POST"])
def enter(mode: str, client_guid: str, request: Request, db: DbSession,
          form: Annotated[FormData, Depends(_form)]) -> Response:
    if not limits.SSO.allow(base.client_address(request)):
        return base.too_many(request)
    token = form.get("token") or request.query_params.get("token") or ""
    settings = request.app.state.settings
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with transaction(db):
                claims = sso.read(db, mode=mode, client_guid=client_guid[:64],
                                  token=str(token), base_url=str(settings.base_url))
                _, cookie = sso.sign_in(db, claims)
            break
        except sso.Refused as refused:
            log.warning("SSO refused at /sso/%s/%s: %s", mode[:8], client_guid[:64],
                        refused.reason)
            return _refused(request)
        except OperationalError:  # a lock wait given up on SQLite: as good as a refusal
            log.warning("SSO refused at /sso/%s/%s: database busy", mode[:8], client_guid[:64])
            return _refused(request)
        except IntegrityError:
            # Another sign-in of the same payer (a second tab, with a token of its own)
            # committed the user or a grant this one was inserting. Everything here was
            # rolled back, the jti included; the next attempt finds those rows and
            # updates them. (A reused jti is refused inside sign_in, never retried.)
            if attempt == _ATTEMPTS:
                log.warning("SSO refused at /sso/%s/%s: concurrent sign-ins kept colliding",
                            mode[:8], client_guid[:64])
                return _refused(request)
    response = base.redirect(request, "/portal/invoices")
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak onwards
    base.set_session_cookie(request, response, cookie)
    return response


def _refused(request: Request) -> Response:
    t = base.translator(request)
    return base.render(request, "message.html", {
        "title": t("We could not sign you in"),
        "note": t("The sign-in link is not valid or has expired. Go back to the website you "
                  "came from and open your bills again.")}, status=403, t=t)
