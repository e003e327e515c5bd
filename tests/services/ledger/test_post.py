from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DatabaseError

from billfold.core import ids
from billfold.core.db import transaction
from billfold.core.errors import NotFound
from billfold.ledger import service as ledger
from billfold.ledger.models import LedgerEntry, LedgerPosting
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.ledger.verify import verify
from billfold.money import Money

DAY = date(2026, 3, 1)
DAY_AT = datetime(2026, 3, 1, tzinfo=UTC)


def invoice_lines(account_id: str, amount: int, tax: int = 0, currency: str = "USD"):
    lines = [PostingLine(AccountRef("receivable", account_id), Money(amount + tax, currency)),
             PostingLine(AccountRef("revenue"), Money(-amount, currency))]
    if tax:
        lines.append(PostingLine(AccountRef("tax_payable"), Money(-tax, currency)))
    return lines


def entry_count(session, scope) -> int:
    return session.scalar(select(func.count()).select_from(LedgerEntry)
                          .where(LedgerEntry.tenant_id == scope.tenant_id))


class TestPost:
    def test_posts_a_balanced_entry_and_moves_balances(self, session, scope):
        with transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_1"),
                        lines=invoice_lines("ba_1", 1000, 80), description="Invoice 1",
                        effective_date=DAY)
        balances = ledger.billing_account_balances(session, scope, "ba_1")
        assert balances["receivable"] == {"USD": 1080}
        revenue = ledger.ledger_account(session, scope, AccountRef("revenue"), "USD")
        assert revenue.balance_minor == -1000
        assert ledger.balance(session, revenue) == Money(-1000, "USD")

    def test_refuses_an_entry_that_does_not_sum_to_zero(self, session, scope):
        lines = [PostingLine(AccountRef("receivable", "ba_1"), Money(1000, "USD")),
                 PostingLine(AccountRef("revenue"), Money(-999, "USD"))]
        with pytest.raises(ledger.UnbalancedEntry, match="USD off by 1"), transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_2"), lines=lines,
                        description="x", effective_date=DAY)
        assert entry_count(session, scope) == 0

    def test_balances_each_currency_on_its_own(self, session, scope):
        lines = [PostingLine(AccountRef("receivable", "ba_1"), Money(1000, "USD")),
                 PostingLine(AccountRef("revenue"), Money(-1000, "MXN"))]
        with pytest.raises(ledger.UnbalancedEntry), transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_3"), lines=lines,
                        description="x", effective_date=DAY)

    def test_refuses_a_single_posting(self, session, scope):
        with pytest.raises(ledger.UnbalancedEntry, match="at least two"):
            ledger.check_balanced([PostingLine(AccountRef("revenue"), Money(0, "USD"))])

    def test_refuses_posting_the_same_source_twice(self, session, scope):
        with transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_4"),
                        lines=invoice_lines("ba_1", 500), description="x", effective_date=DAY)
        with pytest.raises(ledger.DuplicateSource), transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_4"),
                        lines=invoice_lines("ba_1", 500), description="x", effective_date=DAY)
        assert entry_count(session, scope) == 1
        assert ledger.billing_account_balances(session, scope, "ba_1")["receivable"] == {"USD": 500}

    def test_keeps_tenants_apart(self, session, make_scope):
        a, b = make_scope(), make_scope()
        with transaction(session):
            ledger.post(session, a, source=SourceRef("invoice", "same"),
                        lines=invoice_lines("ba_1", 500), description="x", effective_date=DAY)
            ledger.post(session, b, source=SourceRef("invoice", "same"),
                        lines=invoice_lines("ba_1", 700), description="x", effective_date=DAY)
        assert ledger.billing_account_balances(session, a, "ba_1")["receivable"] == {"USD": 500}
        assert ledger.billing_account_balances(session, b, "ba_1")["receivable"] == {"USD": 700}


    def test_an_account_made_in_a_savepoint_rolled_back_is_made_again(self, session, scope):
        # The ids of ledger accounts found are kept for the transaction; not those the
        # savepoint that made them took back.
        def entry(source: str) -> ledger.NewEntry:
            return ledger.NewEntry(SourceRef("invoice", source), invoice_lines("ba_sp", 400),
                                   "x", DAY)

        def post_then_roll_back() -> None:
            with session.begin_nested():
                ledger.post_many(session, scope, [entry("inv_sp1")])
                raise RuntimeError("rolled back")

        with transaction(session):
            with pytest.raises(RuntimeError):
                post_then_roll_back()
            ledger.post_many(session, scope, [entry("inv_sp2")])
            ledger.post_many(session, scope, [entry("inv_sp3")])
        assert ledger.billing_account_balances(session, scope, "ba_sp")["receivable"] == {
            "USD": 800}


class TestReverse:
    def test_reversal_negates_the_entry_exactly(self, session, scope):
        with transaction(session):
            entry = ledger.post(session, scope, source=SourceRef("invoice", "inv_5"),
                                lines=invoice_lines("ba_2", 1000, 50), description="x",
                                effective_date=DAY)
            reversal = ledger.reverse(session, scope, entry_id=entry.id)
        assert reversal.reverses_entry_id == entry.id
        assert ledger.billing_account_balances(session, scope, "ba_2")["receivable"] == {"USD": 0}

    def test_an_entry_is_reversed_at_most_once(self, session, scope):
        with transaction(session):
            entry = ledger.post(session, scope, source=SourceRef("invoice", "inv_6"),
                                lines=invoice_lines("ba_2", 1000), description="x",
                                effective_date=DAY)
            ledger.reverse(session, scope, entry_id=entry.id)
        with pytest.raises(ledger.DuplicateSource), transaction(session):
            ledger.reverse(session, scope, entry_id=entry.id)

    def test_a_reversal_is_not_itself_reversed(self, session, scope):
        with transaction(session):
            entry = ledger.post(session, scope, source=SourceRef("invoice", "inv_7"),
                                lines=invoice_lines("ba_2", 1000), description="x",
                                effective_date=DAY)
            reversal = ledger.reverse(session, scope, entry_id=entry.id)
        with pytest.raises(ledger.Conflict), transaction(session):
            ledger.reverse(session, scope, entry_id=reversal.id)

    def test_another_tenants_entry_is_not_found(self, session, make_scope):
        a, b = make_scope(), make_scope()
        with transaction(session):
            entry = ledger.post(session, a, source=SourceRef("invoice", "inv_8"),
                                lines=invoice_lines("ba_2", 1000), description="x",
                                effective_date=DAY)
        with pytest.raises(NotFound), transaction(session):
            ledger.reverse(session, b, entry_id=entry.id)


class TestAppendOnly:
    """The database itself refuses to change or remove ledger rows."""

    @pytest.mark.parametrize("statement", [
        "UPDATE ledger_posting SET amount_minor = amount_minor + 1",
        "DELETE FROM ledger_posting",
        "UPDATE ledger_entry SET description = 'changed'",
        "DELETE FROM ledger_entry",
    ])
    def test_refuses_updates_and_deletes(self, session, scope, statement):
        with transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_9"),
                        lines=invoice_lines("ba_3", 1000), description="x", effective_date=DAY)
        with pytest.raises(DatabaseError, match="append-only"), transaction(session):
            session.execute(text(f"{statement} WHERE tenant_id = :t"), {"t": scope.tenant_id})


@pytest.fixture
def own_db(fresh_database_url):
    """verify() reads the whole database, and these tests break it on purpose."""
    from billfold.core.db import make_engine, make_sessionmaker
    from billfold.core.scope import Scope
    from billfold.tenants import service as tenants

    engine = make_engine(fresh_database_url)
    with make_sessionmaker(engine)() as session:
        with transaction(session):
            tenant = tenants.create_tenant(session, name="Verify")
        yield session, Scope(tenant.id, "test")
    engine.dispose()


class TestVerify:
    def test_finds_nothing_wrong_in_a_clean_ledger(self, own_db):
        session, scope = own_db
        with transaction(session):
            entry = ledger.post(session, scope, source=SourceRef("invoice", "inv_0"),
                                lines=invoice_lines("ba_4", 1000, 10), description="x",
                                effective_date=DAY)
            ledger.reverse(session, scope, entry_id=entry.id)
        assert verify(session) == []

    def test_names_an_entry_that_does_not_balance(self, own_db):
        session, scope = own_db
        entry_id = ids.new_id("ledger_entry")
        with transaction(session):
            account = ledger.ledger_account(session, scope, AccountRef("revenue"), "USD")
            session.execute(insert(LedgerEntry).values(
                id=entry_id, tenant_id=scope.tenant_id, mode=scope.mode, source_type="bad",
                source_id=entry_id, description="written around post()", effective_date=DAY,
                posted_at=DAY_AT))
            for amount in (100, -90):
                session.execute(insert(LedgerPosting).values(
                    id=ids.new_id("ledger_posting"), tenant_id=scope.tenant_id, mode=scope.mode,
                    entry_id=entry_id, ledger_account_id=account.id, amount_minor=amount,
                    currency="USD"))
        problems = [str(p) for p in verify(session)]
        assert any(p.startswith(entry_id) and "sum to 10" in p for p in problems)
        # the stored balance was not moved by the raw insert, so the account disagrees too
        assert any(p.startswith(account.id) for p in problems)

    def test_names_a_stored_balance_that_disagrees(self, own_db):
        session, scope = own_db
        with transaction(session):
            ledger.post(session, scope, source=SourceRef("invoice", "inv_10"),
                        lines=invoice_lines("ba_4", 1000), description="x", effective_date=DAY)
            account = ledger.ledger_account(session, scope, AccountRef("receivable", "ba_4"), "USD")
            session.execute(text("UPDATE ledger_account SET balance_minor = 1 WHERE id = :i"),
                            {"i": account.id})
        assert [str(p) for p in verify(session)] == [
            f"{account.id}: stored balance 1 but its postings sum to 1000"]



def test_the_ledger_account_lookup_uses_the_whole_unique_index(engine):
    # By key alone it used only (tenant, mode) of an index and read every ledger account
    # of the tenant — one per billing account — on every payment and bill-run batch.
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans do not depend on statistics; PostgreSQL's do")
    from billfold.ledger.service import _LEDGER_ACCOUNTS

    sql = str(_LEDGER_ACCOUNTS.statement("sqlite", 2).compile(dialect=engine.dialect))
    with engine.connect() as conn:  # the keys are one parameter, JSON read by json_each
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}", ("t", "test", "USD", '["receivable:ba_1", "revenue"]')))
    assert "currency=? AND key=?" in plan, plan


def _receivable_accounts(session, scope, count: int) -> list[str]:
    """``count`` receivable ledger accounts of one tenant (as in a single biller's
    database), committed; their billing accounts' ids."""
    from billfold.core import bulk
    from billfold.ledger.models import LedgerAccount

    with transaction(session):
        accounts = [ids.new_id("billing_account") for _ in range(count)]
        bulk.insert_rows(session, LedgerAccount.__table__, [
            {"id": ids.new_id("ledger_account"), "tenant_id": scope.tenant_id,
             "mode": scope.mode, "kind": "receivable", "currency": "USD",
             "billing_account_id": account, "key": f"receivable:{account}",
             "balance_minor": 0, "created_at": DAY_AT} for account in accounts])
    return accounts


def test_the_ledger_account_lookups_generic_plan_uses_the_index(own_db):
    # PostgreSQL prepares a statement a connection runs often and may then plan it once
    # for any parameters, counting ten entries for each array it cannot see.
    session, scope = own_db
    engine = session.get_bind()
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL plan")
    import re

    from sqlalchemy.dialects import postgresql

    from billfold.ledger.service import _LEDGER_ACCOUNTS

    accounts = _receivable_accounts(session, scope, 2000)
    # The form for any number of keys (a bill-run batch's hundreds), the array.
    sql = str(_LEDGER_ACCOUNTS.statement("postgresql", 0).compile(dialect=postgresql.dialect()))
    names = re.findall(r"%\((\w+)\)s", sql)
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    values = {"tenant": scope.tenant_id, "mode": scope.mode, "currency": "USD",
              "keys": f"{{receivable:{accounts[0]},receivable:{accounts[1]}}}"}
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE ledger_account")
        conn.exec_driver_sql(f"PREPARE lookup AS {prepared}")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        arguments = ", ".join(f"'{values[name]}'" for name in names)
        plan = "\n".join(conn.exec_driver_sql(
            f"EXPLAIN EXECUTE lookup({arguments})").scalars())
        conn.rollback()
    assert "Index Scan using uq_ledger_account_tenant_id_mode_currency_key" in plan, plan
    # One currency a statement: the plan's cost then does not grow with the accounts
    # asked for in a second array (with it, on a bench tenant's 2,000 accounts, the generic
    # plan read the whole table: 0.55 ms against 0.02 ms, EXPLAIN ANALYZE).
    assert re.search(r"\(currency\)::text = \(\$\d\)::text", plan), plan


def test_postgresql_plans_a_payments_ledger_statements_once(own_db):
    # A payment's entry asks for two or three accounts and moves their balances. Sent as
    # arrays, PostgreSQL planned the account lookup and the balance update afresh on every
    # run (custom plans only: it costs an array it cannot see at ten values, more than
    # planning); as scalars (db.DirectAmong, bulk.update_rows) it plans each once.
    session, scope = own_db
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan cache")
    accounts = _receivable_accounts(session, scope, 2000)
    session.execute(text("ANALYZE ledger_account"))
    session.commit()
    # psycopg prepares a statement on its sixth run; PostgreSQL plans a prepared one five
    # times for its values before it weighs one plan for any values.
    with transaction(session):  # one entry a call, as a payment posts (post_many)
        for number, account in enumerate(accounts[:14]):
            ledger.post_many(session, scope, [ledger.NewEntry(
                SourceRef("invoice", f"inv_{number}"), invoice_lines(account, 1000), "x", DAY)])
    plans = {row[0]: row for row in session.execute(text(
        "SELECT split_part(statement, ' ', 1), generic_plans, custom_plans "
        "FROM pg_prepared_statements WHERE statement LIKE 'SELECT ledger_account.key%' "
        "OR statement LIKE 'UPDATE ledger_account SET balance_minor%'"))}
    session.rollback()
    assert plans.keys() == {"SELECT", "UPDATE"}, plans
    assert plans["SELECT"].generic_plans >= 2, plans
    assert plans["UPDATE"].generic_plans >= 2, plans
    assert verify(session) == []  # the balances moved are the postings' sums
