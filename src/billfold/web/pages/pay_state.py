"""What the payment page needs to know about a session, read in one short transaction and
handed to the handlers as plain values (the rows come back detached)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.scope import Scope
from billfold.payments import sessions
from billfold.payments.models import Payment, PaySession
from billfold.tenants import service as tenants
from billfold.web.pages.rendering import FramePolicy

VIEW_FRAMED = 1  # Cloud Payments V2 ViewMode: shown inside the biller's own site


@dataclass(frozen=True, slots=True)
class PageState:
    token: str
    row: PaySession
    biller: str
    lines: list[dict[str, Any]]  # today's lines: balances as they stand now
    expired: bool
    payment: Payment | None  # the payment that paid the session, else its latest attempt
    policy: FramePolicy

    @property
    def scope(self) -> Scope:
        return Scope(self.row.tenant_id, self.row.mode)  # type: ignore[arg-type]

    @property
    def allow_remove(self) -> bool:
        return bool(self.row.options.get("allow_remove", True))

    @property
    def methods(self) -> list[str]:
        return [m for m, on in (("card", self.row.allow_card), ("ach", self.row.allow_ach)) if on]


def load(factory: sessionmaker[Session], token: str) -> PageState:
    """The session ``token`` names; NotFound for a token that names none."""
    with factory() as session:
        row = sessions.find(session, token)
        scope = Scope(row.tenant_id, row.mode)  # type: ignore[arg-type]
        state = PageState(
            token=token, row=row, biller=tenants.get_tenant(session, row.tenant_id).name,
            lines=sessions.current_lines(session, row), expired=sessions.is_expired(session, row),
            payment=_payment_of(session, row), policy=_policy(session, scope, row))
        session.expunge_all()
        return state


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
