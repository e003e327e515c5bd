"""The hosted payment page, ``/pay/{token}``: choose invoices, amounts and method; review
the fee and total; pay; see the receipt. Two steps because without JavaScript the total
can only be shown after a round trip.

A Cloud Payments V2 session with AllowViewStatement links each of its invoices that
Billfold rendered to that invoice's PDF, served under the page's own URL while the page
may be paid.

A session the portal made for a signed-in payer also offers the payer's saved methods
(charged by their gateway token, no details asked) and, with a new card or bank account,
a box to save it; it is saved once the gateway has taken the payment.

Every handler here touches the database, so each is a plain ``def`` run in the thread pool.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from billfold.core.db import transaction
from billfold.core.errors import BillfoldError, Conflict, NotFound, ValidationFailed
from billfold.core.filestore import FileStore
from billfold.payments import paying, sessions
from billfold.payments import saved as saved_methods
from billfold.payments.gateways.base import BankDetails, CardDetails, SavedInstrument
from billfold.payments.models import Payment
from billfold.web.pages import pay_forms as forms
from billfold.web.pages import pay_state, pay_views, rendering
from billfold.web.pages.i18n import Translator, negotiate
from billfold.web.pages.pay_forms import Choices, PageError
from billfold.web.routing import Router

router = Router(prefix="/pay", include_in_schema=False)
log = logging.getLogger(__name__)
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")


async def read_form(request: Request) -> FormData:
    # Two fields per invoice (its tick and its amount) at the most, and never a file.
    return await request.form(max_files=0, max_fields=2 * sessions.MAX_LINES + 50)


Form = Annotated[FormData, Depends(read_form)]


class Page:
    """One request's payment page: its session (None for a token that names none), the
    payer's language, and the responses it can give."""

    def __init__(self, request: Request, token: str) -> None:
        self.request, self.token = request, token
        try:
            self.state: pay_state.PageState | None = pay_state.load(request.app.state.sessions, token)
        except NotFound:
            self.state = None
        preferred = self.state.row.locale if self.state else None
        self.t = Translator(negotiate(preferred, request.headers.get("accept-language")))
        self.url = f"{request.scope.get('root_path', '')}/pay/{quote(token, safe='')}"

    @property
    def known(self) -> pay_state.PageState:
        assert self.state is not None
        return self.state

    # -- responses ----------------------------------------------------------------------
    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        state = self.state
        settings = self.request.app.state.settings
        return rendering.render(self.request, template, {
            "t": self.t, "lang": self.t.locale.tag, "page_url": self.url,
            "biller": state.biller if state else "Billfold",
            "css_url": state.row.css_url if state else None,
            "return_url": state.row.return_url if state else None, **context},
            status=status, policy=state.policy if state else rendering.FramePolicy(),
            secure=str(settings.base_url).startswith("https://"))

    def message(self, title: str, note: str, status: int, link: tuple[str, str] | None = None
                ) -> Response:
        return self.render("pay_message.html", status, title=title, note=note, link=link)

    def redirect(self, suffix: str = "") -> Response:
        policy = self.state.policy if self.state else rendering.FramePolicy()
        return RedirectResponse(self.url + suffix, status_code=303, headers=policy.headers())

    def not_found(self) -> Response:
        return self.message(self.t("not_found_title"), self.t("not_found_note"), 404)

    def forbidden(self) -> Response:
        return self.message(self.t("csrf_title"), self.t("csrf_note"), 403,
                            link=(self.url, self.t("reload")))

    def gone(self) -> Response:
        return self.message(self.t("expired_title"),
                            self.t("expired_note", biller=self.known.biller), 410)

    def unconfirmed(self) -> Response:
        return self.message(self.t("unknown_title"), self.t("unknown_note"), 200)

    def outcome(self, payment: Payment) -> Response:
        if payment.status == "processing":  # another request of this payer's is charging now
            return self.message(self.t("processing_title"), self.t("processing_note"), 200,
                                link=(self.url + "/receipt", self.t("view_receipt")))
        if payment.status == "unknown":
            return self.unconfirmed()
        return self.render("pay_receipt.html", receipt=pay_views.receipt_view(payment, self.t),
                           register_url=self.register_url())

    def register_url(self) -> str | None:
        """Where a payer who paid without a portal login may register (Cloud Payments V2's
        AllowRegisterAccount), with the first account Billfold keeps filled in."""
        state = self.state
        if state is None or state.payer_user_id \
                or not state.row.options.get("allow_register_account"):
            return None
        number = next((str(p["account_number"]) for p in state.row.payers
                       if p.get("billing_account_id") and p.get("account_number")), None)
        if number is None:  # invoices Billfold does not keep: no account to register
            return None
        root = self.request.scope.get("root_path", "")
        return (f"{root}/portal/b/{state.row.tenant_id}/{state.row.mode}/register"
                f"?account={quote(number, safe='')}")

    def choose(self, choices: Choices, errors: Sequence[PageError] = (), status: int = 200
               ) -> Response:
        state = self.known
        return self.render(
            "pay_choose.html", status,
            lines=pay_views.line_views(state, choices, self.t, self.url),
            accounts=pay_views.accounts(state, self.t),
            method_choices=pay_views.method_choices(state, self.t), choices=choices,
            allow_remove=state.allow_remove, errors=list(errors), by_field=forms.by_field(errors))

    def review(self, choices: Choices, plan: paying.Plan, *, errors: Sequence[PageError] = (),
               form: FormData | None = None, failure: str | None = None, status: int = 200
               ) -> Response:
        # A fresh nonce per rendering: a retry after a decline is a new payment, while the
        # same rendered form submitted twice names the first one.
        state = self.known
        saved = state.saved_method(choices.method)
        return self.render(
            "pay_review.html", status, method=state.kind_of(choices.method), failure=failure,
            saved=pay_views.saved_label(saved, self.t) if saved else None,
            can_save=saved is None and state.payer_user_id is not None,
            plan=pay_views.plan_view(plan, choices, self.known.row.currency, self.t),
            echo=forms.echo(form), nonce=secrets.token_urlsafe(24), errors=list(errors),
            by_field=forms.by_field(errors))

    # -- steps ----------------------------------------------------------------------------
    def settled(self) -> Response | None:
        """The page to show instead of the form when the session cannot be paid now."""
        if self.state is None:
            return self.not_found()
        row, payment = self.state.row, self.state.payment
        if row.status != "open" and payment is not None:
            return self.outcome(payment)
        if row.status != "open":
            return self.unconfirmed()
        if self.state.expired:
            return self.gone()
        return None

    def refused(self, form: FormData) -> Response | None:
        if self.state is None:
            return self.not_found()
        return None if rendering.csrf_ok(self.request, form) else self.forbidden()

    def check(self, choices: Choices) -> tuple[paying.Plan, dict[str, int]] | Response:
        state = self.known
        amounts, errors = forms.amounts_of(choices, state, self.t)
        if errors:
            return self.choose(choices, errors, 422)
        kind = state.kind_of(choices.method)  # "" for a method this page does not offer
        try:
            return paying.plan(state.row, state.lines, amounts, kind), amounts
        except ValidationFailed as error:
            return self.choose(choices, forms.explain(error.errors, state, amounts, self.t), 422)

    def details(self, choices: Choices, form: FormData
                ) -> tuple[CardDetails | BankDetails | SavedInstrument | None, list[PageError]]:
        """What to charge: the token of the saved method chosen, else what was typed."""
        saved = self.known.saved_method(choices.method)
        if saved is not None:
            return SavedInstrument(saved.token), []
        return forms.read_details(form, choices.method, self.t)

    def submit(self, choices: Choices, plan: paying.Plan, amounts: dict[str, int],
               details: CardDetails | BankDetails | SavedInstrument, nonce: str,
               form: FormData) -> Response:
        client = self.request.client
        submission = paying.Submission(nonce=nonce, amounts=amounts,
                                       method=self.known.kind_of(choices.method),
                                       details=details, remote_ip=client.host if client else None)
        app_state = self.request.app.state
        try:
            gateway = app_state.gateways(self.known.scope)
        except BillfoldError:  # live mode before a gateway is configured
            return self.message(self.t("unavailable_title"),
                                self.t("unavailable_note", biller=self.known.biller), 503)
        try:
            payment = paying.pay(app_state.sessions, gateway, self.token, submission)
        except sessions.SessionExpired:
            return self.gone()
        except ValidationFailed as error:
            return self.choose(choices, forms.explain(error.errors, self.known, amounts, self.t),
                               422)
        except Conflict:
            return self.redirect("/receipt")  # paid meanwhile, or an attempt still in flight
        if payment.status == "failed":
            failure = self.t.decline(payment.failure_code, payment.failure_message)
            return self.review(choices, plan, form=form, failure=failure)
        if not isinstance(details, SavedInstrument) and forms.wants_saved(form):
            self.keep(payment)
        return self.redirect("/receipt")

    def keep(self, payment: Payment) -> None:
        """Save the method just paid with for the session's payer user. The payment stands
        whatever happens here, so a refusal is logged rather than shown; a double submit
        saves the same method again, which changes nothing."""
        user_id = self.known.payer_user_id
        if user_id is None or payment.status not in saved_methods.SAVABLE_STATUSES:
            return
        try:
            with self.request.app.state.sessions() as session, transaction(session):
                saved_methods.save_from_payment(session, self.known.scope, payer_user_id=user_id,
                                                payment=payment)
        except BillfoldError as error:
            log.warning("payment %s: its method was not saved: %s", payment.id, error)


@router.get("/{token}")
def show(token: str, request: Request) -> Response:
    page = Page(request, token)
    return page.settled() or page.choose(forms.default_choices(page.known, page.t.locale.babel))


@router.post("/{token}/review")
def review(token: str, request: Request, form: Form) -> Response:
    page = Page(request, token)
    stop = page.refused(form) or page.settled()
    if stop is not None:
        return stop
    choices = forms.read_choices(form, page.known)
    if "edit" in form:
        return page.choose(choices)
    checked = page.check(choices)
    if isinstance(checked, Response):
        return checked
    return page.review(choices, checked[0])


@router.post("/{token}")
def pay(token: str, request: Request, form: Form) -> Response:
    page = Page(request, token)
    stop = page.refused(form) or page.settled()
    if stop is not None:
        return stop
    nonce = forms.nonce_of(form)
    if nonce is None:
        return page.forbidden()
    choices = forms.read_choices(form, page.known)
    checked = page.check(choices)
    if isinstance(checked, Response):
        return checked
    plan, amounts = checked
    details, errors = page.details(choices, form)
    if details is None:
        return page.review(choices, plan, errors=errors, form=form, status=422)
    return page.submit(choices, plan, amounts, details, nonce, form)


@router.get("/{token}/receipt")
def receipt(token: str, request: Request) -> Response:
    page = Page(request, token)
    if page.state is None:
        return page.not_found()
    payment = page.state.payment
    if payment is None or payment.status == "failed":
        # A declined attempt was shown by the response to it; here there is only the form.
        return page.gone() if page.state.expired else page.redirect()
    return page.outcome(payment)


@router.get("/{token}/invoices/{key}/pdf")
def statement(token: str, key: str, request: Request) -> Response:
    """The PDF of one of the session's invoices, as a download: only while the page may
    be paid, only when the session allows viewing statements, and only an invoice the
    session lists (``key`` names its line, never an invoice id)."""
    page = Page(request, token)
    if page.state is None:
        return page.not_found()
    if page.state.expired:
        return page.gone()
    found = page.state.statement_of(key) if page.state.row.status == "open" else None
    if found is None:
        return page.not_found()
    line, pdf_key = found
    store = FileStore(request.app.state.settings.data_dir)
    if not store.exists(pdf_key):
        return page.message(page.t("statement_missing_title"),
                            page.t("statement_missing_note"), 404,
                            link=(page.url, page.t("back_to_page")))
    name = _UNSAFE_IN_NAME.sub("_", str(line.get("invoice_number") or "invoice"))
    return Response(store.get(pdf_key), media_type="application/pdf", headers={
        **page.state.policy.headers(),
        "Content-Disposition": f'attachment; filename="{name}.pdf"'})


@router.api_route("/{token}/{rest:path}", methods=["GET", "POST"])
def no_such_page(token: str, rest: str, request: Request) -> Response:
    """A payer following a mangled link gets the page's own 404, not an API error."""
    return Page(request, token).not_found()
