"""A billing account's delivery preferences as a payer sees them: paperless, the
new-invoice email (email notify) and payment confirmation emails — set by the payer in the
portal, or by SSO from the biller's settings and token (billtrust-invoice-sso.txt).

Paperless moves ``invoice_type`` from ``paper`` or ``paper_and_email`` to ``email`` unless
the tenant's ``paper_bill`` setting keeps paper; turning paperless off puts paper back
(``paper_and_email``). Every change is written to the account's change history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from billfold.core.scope import Scope
from billfold.customers import history
from billfold.customers.models import BillingAccount
from billfold.tenants import service as tenants

_FIELDS = ("invoice_type", "email_notify", "email_confirmations")


@dataclass(frozen=True, slots=True)
class Preferences:
    paperless: bool
    email_notify: bool
    email_confirmations: bool


def of(account: BillingAccount) -> Preferences:
    return Preferences(paperless=account.invoice_type not in ("paper", "paper_and_email"),
                       email_notify=account.email_notify,
                       email_confirmations=account.email_confirmations)


def apply(session: Session, scope: Scope, account: BillingAccount, *, actor: str,
          paperless: bool | None = None, email_notify: bool | None = None,
          email_confirmations: bool | None = None, keep_paper: bool | None = None
          ) -> Preferences:
    """Change what is given; ``None`` leaves a preference as it is. ``keep_paper`` says
    whether going paperless still keeps paper; ``None`` means the tenant's ``paper_bill``
    (an SSO token's own ``paper_bill`` claim overrides it)."""
    settings = tenants.get_settings(session, scope)
    before = history.snapshot(account, _FIELDS)
    options = settings.invoice_distribution_options
    if keep_paper is None:
        keep_paper = settings.paper_bill
    if paperless is True and not keep_paper and "email" in options:
        if account.invoice_type in ("paper", "paper_and_email"):
            account.invoice_type = "email"
    elif paperless is False and account.invoice_type in ("email", "none"):
        wanted = "paper_and_email" if "paper_and_email" in options else "paper"
        if wanted in options:
            account.invoice_type = wanted
    if email_notify is not None:
        account.email_notify = email_notify
    if email_confirmations is not None:
        account.email_confirmations = email_confirmations
    history.record(session, scope, object_type="billing_account", object_id=account.id,
                   action="update", actor=actor, before=before,
                   after=history.snapshot(account, _FIELDS))
    return of(account)
