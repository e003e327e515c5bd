"""Prove the ledger over the whole database: every entry balances, every posting agrees
with its account's currency, every stored balance equals the sum of its postings, and every
reversal exactly negates what it reverses."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from billfold.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting


@dataclass(frozen=True, slots=True)
class Problem:
    object_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.object_id}: {self.message}"


def verify(session: Session) -> list[Problem]:
    problems: list[Problem] = []
    p = LedgerPosting
    # Entries with fewer than two postings (including none at all).
    for entry_id, count in session.execute(
        select(LedgerEntry.id, func.count(p.id))
        .join(p, p.entry_id == LedgerEntry.id, isouter=True)
        .group_by(LedgerEntry.id).having(func.count(p.id) < 2)
    ):
        problems.append(Problem(entry_id, f"has {count} posting(s); an entry needs at least two"))
    for entry_id, currency, total in session.execute(
        select(p.entry_id, p.currency, func.sum(p.amount_minor))
        .group_by(p.entry_id, p.currency).having(func.sum(p.amount_minor) != 0)
    ):
        problems.append(Problem(entry_id, f"{currency} postings sum to {total}, not zero"))
    for posting_id, entry_id, posted, held in session.execute(
        select(p.id, p.entry_id, p.currency, LedgerAccount.currency)
        .join(LedgerAccount, LedgerAccount.id == p.ledger_account_id)
        .where(p.currency != LedgerAccount.currency)
    ):
        problems.append(Problem(entry_id, f"posting {posting_id} is in {posted} on a {held} account"))
    for posting_id, entry_id in session.execute(
        select(p.id, p.entry_id).join(LedgerEntry, LedgerEntry.id == p.entry_id)
        .where((p.tenant_id != LedgerEntry.tenant_id) | (p.mode != LedgerEntry.mode))
    ):
        problems.append(Problem(entry_id, f"posting {posting_id} belongs to another tenant or mode"))
    sums = (
        select(p.ledger_account_id.label("aid"), func.sum(p.amount_minor).label("total"))
        .group_by(p.ledger_account_id).subquery()
    )
    for account_id, stored, derived in session.execute(
        select(LedgerAccount.id, LedgerAccount.balance_minor, func.coalesce(sums.c.total, 0))
        .join(sums, sums.c.aid == LedgerAccount.id, isouter=True)
        .where(LedgerAccount.balance_minor != func.coalesce(sums.c.total, 0))
    ):
        problems.append(
            Problem(account_id, f"stored balance {stored} but its postings sum to {derived}")
        )
    problems.extend(_check_reversals(session))
    return problems


def _check_reversals(session: Session) -> list[Problem]:
    original = aliased(LedgerEntry)
    pairs = session.execute(
        select(LedgerEntry.id, original.id)
        .join(original, original.id == LedgerEntry.reverses_entry_id)
    ).all()
    if not pairs:
        return []
    wanted = {eid for pair in pairs for eid in pair}
    by_entry: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for entry_id, account_id, currency, amount in session.execute(
        select(LedgerPosting.entry_id, LedgerPosting.ledger_account_id, LedgerPosting.currency,
               LedgerPosting.amount_minor)
        .where(LedgerPosting.entry_id.in_(wanted))
    ):
        by_entry[entry_id][(account_id, currency)] += amount
    problems = []
    for reversal_id, original_id in pairs:
        negated = {k: -v for k, v in by_entry[original_id].items()}
        if dict(by_entry[reversal_id]) != negated:
            problems.append(Problem(reversal_id, f"does not exactly negate {original_id}"))
    return problems
