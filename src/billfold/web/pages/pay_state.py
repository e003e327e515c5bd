"""What the payment page needs to know about a session, read in one short transaction and
handed to the handlers as plain values (the rows come back detached).

A session the portal made for a signed-in payer names that payer user; the page then
offers the user's saved payment methods (of the kinds the session takes, cards not yet
expired) beside a new card or bank account. A saved method is chosen as the method value
``saved:<id>``, and only one the state holds is accepted: the value comes from the form.

A Cloud Payments V2 session with ``AllowViewStatement`` offers the PDF Billfold rendered
of each of its invoices that has one (``statements``, read only for such a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.db import among
from billfold.core.scope import Scope
from billfold.invoicing.models import Invoice
from billfold.payments import saved as saved_methods
from billfold.payments import sessions
from billfold.payments.models import Payment, PaySession, SavedMethod
from billfold.tenants import service as tenants
from billfold.web.pages.rendering import FramePolicy

VIEW_FRAMED = 1  # Cloud Payments V2 ViewMode: shown inside the biller's own site
SAVED_PREFIX = "saved:"


@dataclass(frozen=True, slots=True)
class PageState:
    token: str
    row: PaySession
    biller: str
    lines: list[dict[str, Any]]  # today's lines: balances as they stand now
    expired: bool
    payment: Payment | None  # the payment that paid the session, else its latest attempt
    policy: FramePolicy
    saved: tuple[SavedMethod, ...] = ()  # the payer user's methods this page may charge
    statements: dict[str, str] = field(default_factory=dict)  # invoice id -> its PDF's key

    @property
    def scope(self) -> Scope:
        return Scope(self.row.tenant_id, self.row.mode)  # type: ignore[arg-type]

    @property
    def allow_remove(self) -> bool:
        return bool(self.row.options.get("allow_remove", True))

    @property
    def methods(self) -> list[str]:
        return [m for m, on in (("card", self.row.allow_card), ("ach", self.row.allow_ach)) if on]

    @property
    def payer_user_id(self) -> str | None:
        value = self.row.options.get("payer_user_id")
        return str(value) if value else None

    @property
    def choices(self) -> list[str]:
        """Every method value the form may send: saved methods first, then new ones."""
        return [SAVED_PREFIX + m.id for m in self.saved] + self.methods

    def saved_method(self, choice: str) -> SavedMethod | None:
        """The saved method a method value names, if it is one this page offers."""
        if not choice.startswith(SAVED_PREFIX):
            return None
        wanted = choice.removeprefix(SAVED_PREFIX)
        return next((m for m in self.saved if m.id == wanted), None)

    def kind_of(self, choice: str) -> str:
        """"card" or "ach" for a method value; "" for one this page does not offer (the
        payment check then refuses it)."""
        method = self.saved_method(choice)
        if method is not None:
            return method.kind
        return choice if choice in self.methods else ""

    def statement_of(self, key: str) -> tuple[dict[str, Any], str] | None:
        """The line ``key`` names and its invoice's PDF key, if the page offers that PDF:
        a line still payable here whose invoice has one. The key comes from the URL, so
        only the session's own lines are looked in."""
        line = next((line for line in self.lines if line["key"] == key), None)
        pdf_key = self.statements.get(str(line.get("invoice_id"))) if line else None
        return (line, pdf_key) if line is not None and pdf_key else None


def load(factory: sessionmaker[Session], token: str) -> PageState:
    """The session ``token`` names; NotFound for a token that names none."""
    with factory() as session:
        row = sessions.find(session, token)
        scope = Scope(row.tenant_id, row.mode)  # type: ignore[arg-type]
        state = PageState(
            token=token, row=row, biller=tenants.get_tenant(session, row.tenant_id).name,
            lines=sessions.current_lines(session, row), expired=sessions.is_expired(session, row),
            payment=_payment_of(session, row), policy=_policy(session, scope, row),
            saved=_saved(session, scope, row), statements=_statements(session, row))
        session.expunge_all()
        return state


def _saved(session: Session, scope: Scope, row: PaySession) -> tuple[SavedMethod, ...]:
    user_id = row.options.get("payer_user_id")
    if not user_id:
        return ()
    allowed = {m for m, on in (("card", row.allow_card), ("ach", row.allow_ach)) if on}
    today = tenants.today(session, scope)
    return tuple(m for m in saved_methods.list_for(session, scope, str(user_id))
                 if m.kind in allowed and not saved_methods.is_expired(m, today))


def _statements(session: Session, row: PaySession) -> dict[str, str]:
    if not row.options.get("allow_view_statement"):
        return {}
    wanted = [str(line["invoice_id"]) for line in row.lines if line.get("invoice_id")]
    if not wanted:
        return {}
    # Scoped to the session's tenant and mode as well: whatever a stored line holds, the
    # page never serves another tenant's file.
    return {str(invoice_id): str(key) for invoice_id, key in session.execute(
        select(Invoice.id, Invoice.pdf_key).where(
            Invoice.tenant_id == row.tenant_id, Invoice.mode == row.mode,
            among(session, Invoice.id, wanted), Invoice.pdf_key.is_not(None)))}


def _payment_of(session: Session, row: PaySession) -> Payment | None:
    if row.payment_id is not None:
        return session.get(Payment, row.payment_id)
    return session.scalars(select(Payment).where(Payment.pay_session_id == row.id)
                           .order_by(Payment.created_at.desc(), Payment.id.desc())
                           .limit(1)).first()


def _policy(session: Session, scope: Scope, row: PaySession) -> FramePolicy:
    framed = row.view_mode == VIEW_FRAMED
    ancestors = tuple(tenants.get_settings(session, scope).allowed_origins) if framed else ()
    css_origin = tenants.normalize_origin(row.css_url) if row.css_url else None
    return FramePolicy(ancestors=ancestors, css_origin=css_origin, framed=framed)
