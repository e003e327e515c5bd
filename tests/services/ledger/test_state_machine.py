"""Random sequences of postings, reversals and refused posts; after every step the ledger's
invariants hold: every entry balances, stored balances equal their postings, each account's
balance equals a model kept beside it, and the whole ledger nets to zero per currency."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.core.scope import Scope
from billfold.ledger import service as ledger
from billfold.ledger.models import LedgerAccount
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.ledger.verify import verify
from billfold.money import Money
from billfold.tenants import service as tenants

ACCOUNTS = [AccountRef("receivable", "ba_a"), AccountRef("receivable", "ba_b"),
            AccountRef("unapplied_cash", "ba_a"), AccountRef("cash_clearing"),
            AccountRef("revenue"), AccountRef("tax_payable"), AccountRef("fee_revenue"),
            AccountRef("write_off")]
CURRENCIES = ["USD", "JPY", "BHD"]

amounts = st.integers(min_value=1, max_value=10**9)


@st.composite
def balanced_lines(draw: st.DrawFn) -> list[tuple[int, str, int]]:
    """(account index, currency, amount) triples that sum to zero per currency."""
    currency = draw(st.sampled_from(CURRENCIES))
    debits = draw(st.lists(amounts, min_size=1, max_size=3))
    credit_split = draw(st.integers(min_value=1, max_value=3))
    total = sum(debits)
    credits = Money(total, currency).allocate([1] * credit_split)
    lines = [(draw(st.integers(0, len(ACCOUNTS) - 1)), currency, d) for d in debits]
    lines += [(draw(st.integers(0, len(ACCOUNTS) - 1)), currency, -c.minor)
              for c in credits if c.minor]
    return lines


@pytest.mark.slow
def test_ledger_invariants_hold_under_random_postings(fresh_database_url):
    engine = make_engine(fresh_database_url)
    sessions = make_sessionmaker(engine)

    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.session = sessions()
            with transaction(self.session):
                tenant = tenants.create_tenant(self.session, name="Machine")
            self.scope = Scope(tenant.id, "test")
            self.expected: dict[tuple[str, str], int] = defaultdict(int)
            self.entries: dict[str, list[tuple[int, str, int]]] = {}
            self.reversed: set[str] = set()
            self.counter = 0

        def teardown(self) -> None:
            if hasattr(self, "session"):
                self.session.close()

        def _source(self) -> SourceRef:
            self.counter += 1
            return SourceRef("test", f"s{self.counter}")

        @rule(lines=balanced_lines())
        def post_balanced(self, lines: list[tuple[int, str, int]]) -> None:
            postings = [PostingLine(ACCOUNTS[i], Money(a, c)) for i, c, a in lines]
            with transaction(self.session):
                entry = ledger.post(self.session, self.scope, source=self._source(),
                                    lines=postings, description="random",
                                    effective_date=date(2026, 1, 1))
            self.entries[entry.id] = lines
            for i, c, a in lines:
                self.expected[(ACCOUNTS[i].key, c)] += a

        @rule(lines=balanced_lines(), skew=st.integers(min_value=1, max_value=100))
        def post_unbalanced_is_refused(self, lines: list[tuple[int, str, int]], skew: int) -> None:
            postings = [PostingLine(ACCOUNTS[i], Money(a, c)) for i, c, a in lines]
            first = postings[0]
            postings[0] = PostingLine(first.account, Money(first.amount.minor + skew,
                                                           first.amount.currency))
            with pytest.raises(ledger.UnbalancedEntry), transaction(self.session):
                ledger.post(self.session, self.scope, source=self._source(), lines=postings,
                            description="refused", effective_date=date(2026, 1, 1))

        @precondition(lambda self: bool(self.entries))
        @rule(data=st.data())
        def repost_same_source_is_refused(self, data: st.DataObject) -> None:
            entry_id = data.draw(st.sampled_from(sorted(self.entries)))
            entry = ledger.get_entry(self.session, self.scope, entry_id)
            lines = self.entries[entry_id]
            with pytest.raises(ledger.DuplicateSource), transaction(self.session):
                ledger.post(self.session, self.scope,
                            source=SourceRef(entry.source_type, entry.source_id),
                            lines=[PostingLine(ACCOUNTS[i], Money(a, c)) for i, c, a in lines],
                            description="again", effective_date=date(2026, 1, 1))

        @precondition(lambda self: bool(set(self.entries) - self.reversed))
        @rule(data=st.data())
        def reverse_an_entry(self, data: st.DataObject) -> None:
            entry_id = data.draw(st.sampled_from(sorted(set(self.entries) - self.reversed)))
            with transaction(self.session):
                reversal = ledger.reverse(self.session, self.scope, entry_id=entry_id)
            self.reversed.add(entry_id)
            self.reversed.add(reversal.id)  # reversals are not reversed again
            lines = [(i, c, -a) for i, c, a in self.entries[entry_id]]
            self.entries[reversal.id] = lines
            for i, c, a in lines:
                self.expected[(ACCOUNTS[i].key, c)] += a

        @invariant()
        def ledger_verifies(self) -> None:
            if hasattr(self, "session"):
                assert verify(self.session) == []

        @invariant()
        def balances_match_the_model(self) -> None:
            if not hasattr(self, "session"):
                return
            rows = self.session.execute(
                select(LedgerAccount.key, LedgerAccount.currency, LedgerAccount.balance_minor)
                .where(LedgerAccount.tenant_id == self.scope.tenant_id)).all()
            actual = {(k, c): b for k, c, b in rows}
            assert {k: v for k, v in actual.items() if v} == \
                {k: v for k, v in self.expected.items() if v}

        @invariant()
        def ledger_nets_to_zero_per_currency(self) -> None:
            if not hasattr(self, "session"):
                return
            totals = self.session.execute(
                select(LedgerAccount.currency, func.sum(LedgerAccount.balance_minor))
                .where(LedgerAccount.tenant_id == self.scope.tenant_id)
                .group_by(LedgerAccount.currency)).all()
            assert all(total == 0 for _, total in totals)

    try:
        run_state_machine_as_test(LedgerMachine, settings=settings(
            max_examples=25, stateful_step_count=15, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        engine.dispose()
