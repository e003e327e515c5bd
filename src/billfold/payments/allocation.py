"""Where a payment's money goes: a pure function of the amount, the invoices still open
and what the payer chose. Tested without a database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Payable:
    """An open invoice as allocation sees it, with what it still owes right now."""

    invoice_id: str
    billing_account_id: str
    amount_due_minor: int
    due_date: date | None
    number: str | None


@dataclass(frozen=True, slots=True)
class Share:
    """Money put on an invoice, or held as unapplied cash of a billing account when
    ``invoice_id`` is None."""

    invoice_id: str | None
    billing_account_id: str
    amount_minor: int


def allocate(amount_minor: int, payables: Sequence[Payable], *, holder_account_id: str,
             wanted: Mapping[str, int] | None = None) -> list[Share]:
    """Split ``amount_minor`` over invoices: those in ``wanted`` (invoice id -> amount the
    payer chose), each capped at what it still owes; without ``wanted``, the oldest due
    first. What no invoice takes is unapplied cash of ``holder_account_id``. The shares
    always sum to ``amount_minor``: nothing is lost or invented."""
    if amount_minor < 0:
        raise ValueError("a payment allocates a positive amount")
    left = amount_minor
    shares: list[Share] = []
    if wanted is not None:
        by_id = {p.invoice_id: p for p in payables}
        order = [(by_id[i], want) for i, want in wanted.items() if i in by_id]
    else:
        order = [(p, p.amount_due_minor) for p in sorted(payables, key=_oldest_first)]
    for payable, want in order:
        take = min(left, want, max(payable.amount_due_minor, 0))
        if take > 0:
            shares.append(Share(payable.invoice_id, payable.billing_account_id, take))
            left -= take
    if left:
        shares.append(Share(None, holder_account_id, left))
    return shares


def _oldest_first(payable: Payable) -> tuple[date, str, str]:
    return (payable.due_date or date.max, payable.number or "", payable.invoice_id)


def take_back(amount_minor: int, applied: Sequence[Share]) -> list[Share]:
    """Which shares a refund of ``amount_minor`` reverses: unapplied cash first, then the
    invoices in the reverse order they were paid — the last invoice paid is the first to
    reopen. Returns negative shares summing to ``-amount_minor``."""
    if amount_minor < 0 or amount_minor > sum(s.amount_minor for s in applied):
        raise ValueError("cannot take back more than was applied")
    left = amount_minor
    order = [s for s in applied if s.invoice_id is None] + \
        [s for s in reversed(applied) if s.invoice_id is not None]
    result: list[Share] = []
    for share in order:
        take = min(left, share.amount_minor)
        if take > 0:
            result.append(Share(share.invoice_id, share.billing_account_id, -take))
            left -= take
    return result
