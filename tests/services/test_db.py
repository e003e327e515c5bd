"""How Billfold's engines talk to the database."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import cast

import pytest
from sqlalchemy import Table, select, text

from billfold.core import bulk, db, ids
from billfold.core.db import transaction
from billfold.ledger.models import LedgerAccount


@pytest.mark.postgres_only
class TestPlans:
    def test_requests_let_postgresql_keep_generic_plans(self, session):
        assert session.scalar(text("SHOW plan_cache_mode")) == "auto"

    def test_batch_work_plans_each_statement_with_its_values(self, sessions):
        # A generic plan of a prepared array lookup read whole freshly filled tables.
        with sessions() as session:
            session.execute(text("SELECT 1"))
            db.plan_with_values(session)  # inside a transaction: from now on
            assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
            session.commit()
            # ...and in each later transaction of the session
            assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
            session.rollback()
        with sessions() as other:  # the setting was local: the pooled connection forgot it
            assert other.scalar(text("SHOW plan_cache_mode")) == "auto"


@pytest.mark.postgres_only
class TestIdlePing:
    @pytest.fixture
    def one_connection(self, database_url):
        engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
        yield engine
        engine.dispose()

    @pytest.fixture
    def pings(self, one_connection, monkeypatch):
        counted = []
        real = one_connection.dialect.do_ping
        monkeypatch.setattr(one_connection.dialect, "do_ping",
                            lambda connection: counted.append(1) or real(connection))
        return counted

    def test_a_connection_back_a_moment_ago_is_lent_without_a_round_trip(
            self, one_connection, pings):
        for _ in range(5):
            with one_connection.connect() as connection:
                connection.execute(text("SELECT 1"))
        assert pings == []

    def test_an_idle_connection_that_died_is_replaced(self, one_connection, engine, pings,
                                                      monkeypatch):
        with one_connection.connect() as connection:
            before = connection.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
            killer.commit()
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # the pooled one counts as idle
        with one_connection.connect() as connection:
            after = connection.scalar(text("SELECT pg_backend_pid()"))
        assert pings == [1]
        assert after != before


AWKWARD = ["plain", "", "NULL", "with space", 'quote " inside', "back\\slash", "comma,brace{}",
           "tab\tnewline\n", "ünïcödé €", "trailing\\"]


@pytest.mark.postgres_only
class TestArrayText:
    """Arrays go to PostgreSQL as text where db.pg_array can write them: what arrives must
    be exactly the list, whatever its strings hold."""

    def round_trip(self, session, values, array_type: str):
        literal = db.pg_array(values)
        assert literal is not None
        return session.scalar(text(f"SELECT CAST(:a AS {array_type})"), {"a": literal})

    def test_strings_arrive_exactly(self, session):
        assert self.round_trip(session, [*AWKWARD, None], "varchar[]") == [*AWKWARD, None]

    def test_numbers_dates_and_flags_arrive_exactly(self, session):
        assert self.round_trip(session, [1, -2, 10**15, None], "bigint[]") == [1, -2, 10**15, None]
        assert self.round_trip(session, [date(2026, 2, 28), None], "date[]") == [
            date(2026, 2, 28), None]
        assert self.round_trip(session, [True, False], "boolean[]") == [True, False]
        assert self.round_trip(session, [Decimal("8.25"), Decimal("-0.001")], "numeric[]") == [
            Decimal("8.25"), Decimal("-0.001")]
        moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
        assert self.round_trip(session, [moment], "timestamptz[]") == [moment]

    def test_other_values_are_left_to_the_driver(self):
        assert db.pg_array([{"a": 1}]) is None
        assert db.pg_array([datetime(2026, 3, 1, 12, 0)]) is None  # no time zone: ambiguous

    def test_among_finds_exactly_the_keys_given(self, session, scope):
        accounts = {key: ids.new_id("ledger_account") for key in AWKWARD}
        with transaction(session):
            bulk.insert_rows(session, cast(Table, LedgerAccount.__table__), [
                {"id": account_id, "tenant_id": scope.tenant_id, "mode": scope.mode,
                 "kind": "revenue", "currency": "USD", "billing_account_id": None,
                 "key": key, "balance_minor": 0, "created_at": datetime.now(UTC)}
                for key, account_id in accounts.items()])
        wanted = [k for k in AWKWARD if k != "plain"] + ["not there", '"', "\\"]
        found = session.scalars(select(LedgerAccount.key).where(
            LedgerAccount.tenant_id == scope.tenant_id,
            db.among(session, LedgerAccount.key, wanted)))
        assert sorted(found) == sorted(k for k in AWKWARD if k != "plain")
        # The same through a statement built once, its keys given at each run
        statement = select(LedgerAccount.key).where(
            LedgerAccount.tenant_id == scope.tenant_id,
            db.among_parameter("postgresql", LedgerAccount.key, "keys"))
        assert sorted(session.scalars(statement, {"keys": ["NULL", "comma,brace{}"]})) == [
            "NULL", "comma,brace{}"]
