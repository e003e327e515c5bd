"""Number series: gap-free ones hold their counter until commit; the others do not."""

import threading

import pytest
from sqlalchemy import event, text
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
            # End the backend of the counters' pooled connection (it is back in its pool).
            with sequences._counters(sessions.kw["bind"]).connect() as counter:
                pid = counter.scalar(text("SELECT pg_backend_pid()"))
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
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

    @pytest.mark.postgres_only
    def test_concurrent_reservations_reuse_the_counters_connections(self, sessions, scope):
        """Eight threads numbering at once, round after round, open at most eight
        connections: none is closed on return and opened again for the next number."""
        engine = sessions.kw["bind"]
        counters = sequences._counters(engine)
        opened = []
        event.listen(counters, "connect", lambda *_: opened.append(1))
        rounds, threads = 10, 8
        start = threading.Barrier(threads)
        failures = []

        def number() -> None:
            try:
                with sessions() as session:
                    for _ in range(rounds):
                        start.wait(timeout=30)
                        sequences.next_values(session, scope, "customer", gap_free=False)
                    session.rollback()
            except Exception as exc:  # reported below; a thread's exception is lost
                failures.append(exc)

        workers = [threading.Thread(target=number) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not failures
        assert len(opened) <= threads
        with sessions() as session:
            (last,) = sequences.next_values(session, scope, "customer", gap_free=False)
            session.rollback()
        assert last == rounds * threads + 1
