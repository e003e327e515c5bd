"""How Billfold's engines talk to the database."""

import pytest
from sqlalchemy import text

from billfold.core import db


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
