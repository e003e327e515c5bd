"""Durable jobs: one job per (kind, key), claims under a lease, retries with backoff, dead
after the last attempt, and a failing handler never leaves half its work.

The database is shared by the whole run and claims are not scoped to a tenant, so every
test works with job kinds of its own and removes its jobs when it ends."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, jobs
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.core.jobs import Job
from tests.services.conftest import frozen_at

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(NOON) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def kind(sessions: sessionmaker[Session]) -> Iterator[str]:
    """This test's job kind; its jobs (and those of kinds starting with it) are removed
    afterwards, so no other test's worker finds them."""
    name = f"test.{uuid.uuid4().hex[:12]}"
    yield name
    with sessions() as session, transaction(session):
        session.execute(delete(Job).where(Job.kind.startswith(name)))


def enqueue(sessions: sessionmaker[Session], kind: str, **options: Any) -> Job:
    payload = options.pop("payload", {})
    with sessions() as session, transaction(session):
        return jobs.enqueue(session, kind=kind, payload=payload, **options)


def fetch(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def claim(sessions: sessionmaker[Session], kind: str, worker_id: str = "w1", **options: Any
          ) -> list[Job]:
    with sessions() as session, transaction(session):
        return jobs.claim(session, worker_id=worker_id, kinds=[kind], **options)


def count_jobs(sessions: sessionmaker[Session], kind: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.kind == kind)) or 0


def run(sessions: sessionmaker[Session], kind: str, handler: Any, worker_id: str = "w1",
        **options: Any) -> int:
    return jobs.run_pending(sessions, {kind: handler}, worker_id=worker_id, kinds=[kind],
                            **options)


def failing(session: Session, job: Job) -> None:
    raise RuntimeError("the printer is on fire")


def succeeding(session: Session, job: Job) -> None:
    pass


class TestEnqueue:
    def test_a_new_job_is_queued_and_due_at_once(self, sessions, kind, frozen):
        job = enqueue(sessions, kind, payload={"n": 1})

        stored = fetch(sessions, job.id)
        assert job.id.startswith("job_")
        assert (stored.status, stored.attempts, stored.max_attempts) == ("queued", 0, 8)
        assert stored.run_after == NOON
        assert stored.payload == {"n": 1}
        assert stored.scope is None

    def test_the_same_kind_and_key_returns_the_existing_job(self, sessions, kind):
        first = enqueue(sessions, kind, key="inv_1", payload={"version": 1})
        second = enqueue(sessions, kind, key="inv_1", payload={"version": 2})

        assert second.id == first.id
        assert second.payload == {"version": 1}
        assert count_jobs(sessions, kind) == 1

    def test_the_same_key_twice_in_one_transaction_gives_one_job(self, sessions, kind):
        with sessions() as session, transaction(session):
            first = jobs.enqueue(session, kind=kind, key="k", payload={})
            second = jobs.enqueue(session, kind=kind, key="k", payload={})

        assert second is first
        assert count_jobs(sessions, kind) == 1

    def test_a_finished_job_still_holds_its_key(self, sessions, kind):
        job = enqueue(sessions, kind, key="once")
        run(sessions, kind, succeeding)

        assert enqueue(sessions, kind, key="once").id == job.id
        assert run(sessions, kind, succeeding) == 0

    def test_the_same_key_under_another_kind_is_another_job(self, sessions, kind):
        first = enqueue(sessions, kind, key="k")
        second = enqueue(sessions, f"{kind}.other", key="k")

        assert second.id != first.id

    def test_jobs_without_a_key_are_never_merged(self, sessions, kind):
        enqueue(sessions, kind)
        enqueue(sessions, kind)

        assert count_jobs(sessions, kind) == 2

    def test_records_the_tenant_and_mode_it_works_for(self, sessions, kind, scope):
        job = enqueue(sessions, kind, scope=scope)

        assert fetch(sessions, job.id).scope == scope

    def test_refuses_fewer_than_one_attempt(self, sessions, kind):
        with pytest.raises(ValidationFailed, match="max_attempts"):
            enqueue(sessions, kind, max_attempts=0)

    @pytest.mark.postgres_only
    def test_concurrent_enqueues_of_one_key_give_one_job(self, sessions, kind):
        results: list[str] = []
        with sessions() as first:
            mine = jobs.enqueue(first, kind=kind, key="race", payload={})
            first.flush()

            def enqueue_again() -> None:
                results.append(enqueue(sessions, kind, key="race").id)

            other = threading.Thread(target=enqueue_again)
            other.start()
            other.join(timeout=0.5)
            assert other.is_alive(), "the second enqueue should wait for the first to commit"
            first.commit()
            other.join(timeout=10)

        assert results == [mine.id]
        assert count_jobs(sessions, kind) == 1


class TestClaim:
    def test_leases_a_due_job_to_the_worker(self, sessions, kind, frozen):
        job = enqueue(sessions, kind)

        (claimed,) = claim(sessions, kind, "w1", lease_seconds=120)

        stored = fetch(sessions, job.id)
        assert claimed.id == job.id
        assert (stored.status, stored.locked_by, stored.attempts) == ("running", "w1", 1)
        assert stored.locked_until == NOON + timedelta(seconds=120)

    def test_leaves_a_job_until_its_run_after(self, sessions, kind, frozen):
        enqueue(sessions, kind, run_after=NOON + timedelta(hours=1))

        assert claim(sessions, kind) == []
        frozen.advance(timedelta(hours=1))
        assert len(claim(sessions, kind)) == 1

    def test_does_not_hand_a_leased_job_to_another_worker(self, sessions, kind, frozen):
        enqueue(sessions, kind)
        claim(sessions, kind, "w1")

        assert claim(sessions, kind, "w2") == []

    def test_an_expired_lease_lets_another_worker_take_the_job(self, sessions, kind, frozen):
        job = enqueue(sessions, kind)
        claim(sessions, kind, "w1", lease_seconds=60)

        frozen.advance(timedelta(seconds=60))
        assert claim(sessions, kind, "w2") == []
        frozen.advance(timedelta(seconds=1))
        (taken,) = claim(sessions, kind, "w2")

        assert taken.id == job.id
        assert (taken.locked_by, taken.attempts) == ("w2", 2)

    def test_claims_only_the_kinds_asked_for(self, sessions, kind):
        enqueue(sessions, f"{kind}.other")

        assert claim(sessions, kind) == []

    def test_a_job_whose_worker_died_goes_before_the_queue(self, sessions, kind, frozen):
        stranded = enqueue(sessions, kind)
        claim(sessions, kind, "w1", lease_seconds=60)
        frozen.advance(timedelta(seconds=30))
        enqueue(sessions, kind)
        frozen.advance(timedelta(seconds=31))

        first, second = claim(sessions, kind, "w2", limit=2)

        assert first.id == stranded.id
        assert second.id != stranded.id

    def test_a_claim_walks_an_index_in_its_order_and_sorts_nothing(self, sessions, kind,
                                                                     engine):
        # A claim that sorts the due jobs reads all of them: a bill run's queue of PDFs
        # would cost n² reads to work off.
        if engine.dialect.name != "sqlite":
            pytest.skip("SQLite's plans do not depend on statistics; PostgreSQL's do")
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM job" in statement:
                statements.append(statement)

        from sqlalchemy import event
        event.listen(engine, "before_cursor_execute", seen)
        try:
            for kinds in ([kind], None):
                with sessions() as session, transaction(session):
                    jobs.claim(session, worker_id="w1", kinds=kinds)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len(statements) == 4  # expired leases, then the queue; with and without kinds
        with engine.connect() as conn:
            for statement in statements:
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}",
                    ("running" if "running" in statement else "queued",) + ("x",) * (
                        statement.count("?") - 1)))
                assert "USING INDEX" in plan, plan
                assert "TEMP B-TREE" not in plan, plan

    def test_claims_the_longest_waiting_job_first(self, sessions, kind, frozen):
        later = enqueue(sessions, kind, run_after=NOON - timedelta(minutes=1))
        earlier = enqueue(sessions, kind, run_after=NOON - timedelta(minutes=5))

        assert [j.id for j in claim(sessions, kind, limit=2)] == [earlier.id, later.id]

    @pytest.mark.postgres_only
    def test_two_open_claims_take_different_jobs_without_waiting(self, sessions, kind):
        enqueue(sessions, kind)
        enqueue(sessions, kind)
        with sessions() as first, sessions() as second:
            (mine,) = jobs.claim(first, worker_id="w1", kinds=[kind])
            # ``first`` has not committed; a claim that waited on its row would time out.
            second.execute(text("SET lock_timeout = '1s'"))
            (theirs,) = jobs.claim(second, worker_id="w2", kinds=[kind])
            first.commit()
            second.commit()

        assert mine.id != theirs.id
        assert claim(sessions, kind, "w3") == []

    def test_concurrent_workers_run_every_job_exactly_once(self, sessions, kind):
        for n in range(20):
            enqueue(sessions, kind, payload={"n": n})
        seen: list[int] = []

        def handler(session: Session, job: Job) -> None:
            seen.append(job.payload["n"])
            time.sleep(0.005)

        workers = [threading.Thread(target=run, args=(sessions, kind, handler, f"w{i}"))
                   for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)

        assert sorted(seen) == list(range(20))


class TestRunPending:
    def test_runs_the_handler_and_marks_the_job_done(self, sessions, kind, frozen):
        job = enqueue(sessions, kind, payload={"n": 7})
        seen: list[Any] = []

        ran = run(sessions, kind, lambda session, job: seen.append(job.payload["n"]))

        stored = fetch(sessions, job.id)
        assert (ran, seen) == (1, [7])
        assert (stored.status, stored.finished_at, stored.locked_until) == ("done", NOON, None)

    def test_commits_the_handlers_writes_with_done(self, sessions, kind):
        enqueue(sessions, kind)

        def handler(session: Session, job: Job) -> None:
            jobs.enqueue(session, kind=f"{kind}.child", key=job.id, payload={})

        run(sessions, kind, handler)

        assert count_jobs(sessions, f"{kind}.child") == 1

    def test_a_failing_handler_leaves_none_of_its_writes(self, sessions, kind, frozen):
        job = enqueue(sessions, kind, payload={"n": 1})

        def handler(session: Session, job: Job) -> None:
            jobs.enqueue(session, kind=f"{kind}.child", key=job.id, payload={})
            job.payload = {"n": 2}
            session.flush()
            raise RuntimeError("half way")

        assert run(sessions, kind, handler) == 1

        stored = fetch(sessions, job.id)
        assert count_jobs(sessions, f"{kind}.child") == 0
        assert stored.payload == {"n": 1}
        assert stored.status == "queued"
        assert stored.last_error == "RuntimeError: half way"

    def test_stops_after_limit_jobs(self, sessions, kind):
        for _ in range(3):
            enqueue(sessions, kind)

        assert run(sessions, kind, succeeding, limit=2) == 2
        assert run(sessions, kind, succeeding, limit=2) == 1
        assert run(sessions, kind, succeeding, limit=2) == 0

    def test_fails_a_job_of_a_kind_without_a_handler(self, sessions, kind):
        job = enqueue(sessions, kind)

        assert jobs.run_pending(sessions, {}, worker_id="w1", kinds=[kind]) == 1

        stored = fetch(sessions, job.id)
        assert stored.status == "queued"
        assert stored.last_error == f"UnknownJobKind: no handler for job kind {kind!r} in this worker"


class TestRetries:
    def test_a_failed_job_waits_30_seconds_then_twice_as_long_each_time(self, sessions, kind,
                                                                         frozen):
        job = enqueue(sessions, kind)

        assert run(sessions, kind, failing) == 1
        assert fetch(sessions, job.id).run_after == NOON + timedelta(seconds=30)
        assert run(sessions, kind, failing) == 0
        frozen.advance(timedelta(seconds=29))
        assert run(sessions, kind, failing) == 0
        frozen.advance(timedelta(seconds=1))
        assert run(sessions, kind, failing) == 1

        stored = fetch(sessions, job.id)
        assert (stored.status, stored.attempts) == ("queued", 2)
        assert stored.run_after == NOON + timedelta(seconds=30 + 60)
        assert stored.locked_until is None

    def test_the_wait_doubles_up_to_an_hour(self):
        assert [jobs.retry_delay(n).total_seconds() for n in range(1, 10)] == [
            30, 60, 120, 240, 480, 960, 1920, 3600, 3600]

    def test_a_job_is_dead_after_its_last_attempt(self, sessions, kind, frozen):
        job = enqueue(sessions, kind, max_attempts=3)

        for _ in range(3):
            assert run(sessions, kind, failing) == 1
            frozen.advance(timedelta(hours=1))
        assert run(sessions, kind, failing) == 0

        stored = fetch(sessions, job.id)
        assert (stored.status, stored.attempts) == ("dead", 3)
        assert stored.finished_at == NOON + timedelta(hours=2)
        assert stored.last_error == "RuntimeError: the printer is on fire"

    def test_a_retry_that_succeeds_marks_the_job_done(self, sessions, kind, frozen):
        job = enqueue(sessions, kind)
        outcomes = iter([RuntimeError("flaky"), None])

        def handler(session: Session, job: Job) -> None:
            if (error := next(outcomes)) is not None:
                raise error

        run(sessions, kind, handler)
        frozen.advance(timedelta(seconds=30))
        run(sessions, kind, handler)

        stored = fetch(sessions, job.id)
        assert (stored.status, stored.attempts, stored.last_error) == ("done", 2,
                                                                        "RuntimeError: flaky")

    def test_a_handler_hears_of_its_failures_in_a_transaction_that_commits(self, sessions, kind,
                                                                            frozen):
        job = enqueue(sessions, kind, max_attempts=2)
        heard: list[tuple[str, str]] = []

        class Handler:
            def __call__(self, session: Session, job: Job) -> None:
                jobs.enqueue(session, kind=f"{kind}.work", key=str(job.attempts), payload={})
                raise RuntimeError("no")

            def on_failure(self, session: Session, job: Job, error: str) -> None:
                heard.append((job.status, error))
                jobs.enqueue(session, kind=f"{kind}.noted", key=str(job.attempts), payload={})

        run(sessions, kind, Handler())
        frozen.advance(timedelta(hours=1))
        run(sessions, kind, Handler())

        assert heard == [("queued", "RuntimeError: no"), ("dead", "RuntimeError: no")]
        assert count_jobs(sessions, f"{kind}.noted") == 2
        assert count_jobs(sessions, f"{kind}.work") == 0
        assert fetch(sessions, job.id).status == "dead"

    def test_a_job_whose_worker_stopped_on_the_last_attempt_is_dead_not_run_again(
            self, sessions, kind, frozen):
        job = enqueue(sessions, kind, max_attempts=1)
        claim(sessions, kind, "w1", lease_seconds=60)  # and w1 dies
        calls: list[str] = []

        frozen.advance(timedelta(seconds=61))
        run(sessions, kind, lambda session, job: calls.append(job.id), worker_id="w2")

        stored = fetch(sessions, job.id)
        assert calls == []
        assert stored.status == "dead"
        assert "stopped before finishing" in (stored.last_error or "")


class Batch:
    """A batched handler that records each call's jobs and fails any batch (or job) that
    holds a job whose payload says so."""

    def __init__(self, size: int) -> None:
        self.batch_size = size
        self.calls: list[list[int]] = []

    def __call__(self, session: Session, job: Job) -> None:
        self.run_batch(session, [job])

    def run_batch(self, session: Session, batch: list[Job]) -> None:
        self.calls.append([job.payload["n"] for job in batch])
        for job in batch:
            jobs.enqueue(session, kind=f"{job.kind}.child", key=job.id, payload={})
        if any(job.payload.get("bad") for job in batch):
            raise RuntimeError("bad job in the batch")


class TestBatches:
    def test_a_batched_handler_gets_its_jobs_together_and_all_are_done(self, sessions, kind,
                                                                       frozen):
        made = [enqueue(sessions, kind, payload={"n": n}) for n in range(7)]
        handler = Batch(3)

        assert run(sessions, kind, handler) == 7

        assert sorted(len(call) for call in handler.calls) == [1, 3, 3]
        assert sorted(n for call in handler.calls for n in call) == list(range(7))
        assert {fetch(sessions, job.id).status for job in made} == {"done"}
        assert count_jobs(sessions, f"{kind}.child") == 7

    def test_a_batch_never_takes_more_than_the_limit(self, sessions, kind):
        for n in range(5):
            enqueue(sessions, kind, payload={"n": n})
        handler = Batch(16)

        assert run(sessions, kind, handler, limit=2) == 2
        assert [len(call) for call in handler.calls] == [2]

    def test_a_failing_batch_runs_each_job_alone_and_fails_only_the_bad_one(self, sessions,
                                                                           kind, frozen):
        good = [enqueue(sessions, kind, payload={"n": n}) for n in range(3)]
        bad = enqueue(sessions, kind, payload={"n": 9, "bad": True})
        handler = Batch(8)

        assert run(sessions, kind, handler) == 4

        assert sorted(handler.calls[0]) == [0, 1, 2, 9]  # the batch, then each alone
        assert sorted(handler.calls[1:]) == [[0], [1], [2], [9]]
        assert {fetch(sessions, job.id).status for job in good} == {"done"}
        stored = fetch(sessions, bad.id)
        assert (stored.status, stored.attempts) == ("queued", 1)
        assert stored.last_error == "RuntimeError: bad job in the batch"
        # The failed batch's writes were rolled back; each good job's own run kept its.
        assert count_jobs(sessions, f"{kind}.child") == 3

    def test_a_batch_skips_a_job_whose_lease_was_taken_over(self, sessions, kind, frozen):
        for n in range(3):
            enqueue(sessions, kind, payload={"n": n})
        handler = Batch(3)

        with sessions() as session:
            with transaction(session):
                claimed = jobs.claim(session, worker_id="w1", kinds=[kind], limit=3)
            leases = [jobs._Lease(j.id, j.kind, "w1", j.attempts) for j in claimed]
            taken = min(j.id for j in claimed)
            with transaction(session):  # another worker took this one over meanwhile
                session.execute(text("UPDATE job SET locked_by = 'w2' WHERE id = :id"),
                                {"id": taken})
            jobs._run_batch(session, {kind: handler}, handler, leases)

        assert [len(call) for call in handler.calls] == [2]
        assert (fetch(sessions, taken).status, fetch(sessions, taken).locked_by) == (
            "running", "w2")
        assert count_jobs(sessions, f"{kind}.child") == 2
