"""Number series: gap-free ones hold their counter until commit; the others do not."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from billfold.core import sequences


class TestNextValues:
    def test_values_follow_each_other(self, session, scope):
        assert list(sequences.next_values(session, scope, "things", 3)) == [1, 2, 3]
        assert list(sequences.next_values(session, scope, "things")) == [4]
        session.commit()

    @pytest.mark.postgres_only
    def test_a_series_that_may_have_gaps_does_not_wait_for_other_transactions(
            self, sessions, scope):
        with sessions() as first, sessions() as second:
            first.execute(text("SELECT 1"))
            sequences.next_values(first, scope, "customer", gap_free=False)
            second.execute(text("SET lock_timeout = '2s'"))
            # ``first`` is still open; a gap-free reservation there would block this one.
            (value,) = sequences.next_values(second, scope, "customer", gap_free=False)
            assert value == 2
            first.rollback()  # the value it took stays used: a gap, not a duplicate
            (value,) = sequences.next_values(second, scope, "customer", gap_free=False)
            assert value == 3
            second.commit()

    @pytest.mark.postgres_only
    def test_a_gap_free_series_waits_for_the_holder_to_finish(self, sessions, scope):
        with sessions() as first, sessions() as second:
            sequences.next_values(first, scope, "invoice")
            first.commit()
            sequences.next_values(first, scope, "invoice")
            second.execute(text("SET lock_timeout = '500ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                sequences.next_values(second, scope, "invoice")
            second.rollback()
            first.rollback()
            assert list(sequences.next_values(second, scope, "invoice")) == [2]
            second.commit()

    @pytest.mark.postgres_only
    def test_a_dropped_counter_connection_is_replaced(self, sessions, scope):
        with sessions() as session:
            (first,) = sequences.next_values(session, scope, "customer", gap_free=False)
            # Kill every backend but this one: the counters' pooled connection among them.
            session.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            (second,) = sequences.next_values(session, scope, "customer", gap_free=False)
            assert second == first + 1
            session.rollback()

    @pytest.mark.postgres_only
    def test_the_counters_pool_goes_with_its_engine(self, sessions, scope):
        engine = sessions.kw["bind"]
        with sessions() as session:
            sequences.next_values(session, scope, "customer", gap_free=False)
            session.rollback()
        counters = sequences._counters(engine)
        assert counters.pool.checkedin() == 1
        engine.dispose()
        assert counters.pool.checkedin() == 0
