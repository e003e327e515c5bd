"""Durable jobs (DESIGN.md decision 9): work that outlives a request, kept in the database
and shared by every ``billfold worker``, on one machine or many.

A worker claims a job by writing a lease (``locked_by``, ``locked_until``) in a short
transaction of its own, then runs the handler in a second transaction that also marks the
job done, so the handler's writes and "done" commit together or not at all. If the handler
raises, that transaction is rolled back and the failure is recorded in a third; the job is
retried with exponential backoff until ``max_attempts``, then it is ``dead``. A worker
that dies mid-job leaves its lease to run out and the next claim takes the job over, so a
job may run more than once: handlers must make a second run harmless.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast, runtime_checkable

from sqlalchemy import Index, Integer, String, Table, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from billfold.core import clock
from billfold.core.db import Base, Direct, is_postgres, transaction
from billfold.core.errors import BillfoldError, invalid
from billfold.core.ids import new_id
from billfold.core.scope import Mode, Scope

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "dead")
FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        # What claim() walks, in its order: due jobs of any kind, and of one kind.
        Index(None, "status", "run_after", "id"),
        Index(None, "status", "kind", "run_after", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Both empty for system jobs, which belong to no tenant.
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    mode: Mapped[str | None] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(80))
    # Enqueueing a (kind, key) that exists returns the existing job: a natural key such as
    # a message id makes enqueueing safe to repeat.
    key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(8))
    # Claims so far, including the one running now.
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime]
    # The worker holding the lease, or the last one that held it.
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    @property
    def scope(self) -> Scope | None:
        if self.tenant_id is None or self.mode is None:
            return None
        return Scope(self.tenant_id, cast(Mode, self.mode))


Handler = Callable[[Session, Job], None]


@runtime_checkable
class RecordsFailures(Protocol):
    """A handler that also wants to hear of its failures, e.g. to mirror them on the row
    it works for. ``on_failure`` runs in the transaction that records the failure, after
    ``job.status`` says whether the job will be retried (``queued``) or not (``dead``)."""

    def on_failure(self, session: Session, job: Job, error: str) -> None: ...


@runtime_checkable
class Batched(Protocol):
    """A handler that does several jobs of its kind in one transaction. ``run_batch`` gets
    the jobs leased and locked; a handler does one job as a batch of one, so both ways
    share one implementation."""

    batch_size: int

    def run_batch(self, session: Session, jobs: list[Job]) -> None: ...


def enqueue(session: Session, *, kind: str, payload: dict[str, Any], key: str | None = None,
            scope: Scope | None = None, run_after: datetime | None = None,
            max_attempts: int = 8) -> Job:
    """Add a job in the caller's transaction, or return the job with the same (kind, key)."""
    if max_attempts < 1:
        raise invalid("max_attempts", "must be at least 1")
    if key is not None and (existing := _by_key(session, kind, key)) is not None:
        return existing
    now = clock.utcnow()
    job = Job(
        id=new_id("job"), tenant_id=scope.tenant_id if scope else None,
        mode=scope.mode if scope else None, kind=kind, key=key, payload=payload,
        status="queued", attempts=0, max_attempts=max_attempts, run_after=run_after or now,
        created_at=now,
    )
    if key is None:
        session.add(job)
        return job
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # A concurrent transaction enqueued the same key and committed first.
        existing = _by_key(session, kind, key)
        if existing is None:
            raise
        return existing
    return job


def enqueue_many(session: Session, *, kind: str,
                 items: Sequence[tuple[str | None, dict[str, Any]]],
                 scope: Scope | None = None, max_attempts: int = 8) -> None:
    """Add one job per (key, payload) with a single insert, for keys that cannot exist yet
    (ids of rows created in this transaction) or no key (None). A key that does exist
    fails the insert."""
    if not items:
        return
    now = clock.utcnow()
    rows = [
        {"id": new_id("job"), "tenant_id": scope.tenant_id if scope else None,
         "mode": scope.mode if scope else None, "kind": kind, "key": key, "payload": payload,
         "status": "queued", "attempts": 0, "max_attempts": max_attempts, "run_after": now,
         "locked_by": None, "locked_until": None, "last_error": None, "created_at": now,
         "finished_at": None}
        for key, payload in items]
    _INSERT_JOB.run_many(session, rows)


_INSERT_JOB = Direct(cast(Table, Job.__table__).insert())  # an email enqueues one


def _by_key(session: Session, kind: str, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.kind == kind, Job.key == key)).one_or_none()


def claim(session: Session, *, worker_id: str, kinds: Collection[str] | None = None,
          lease_seconds: int = 300, limit: int = 1) -> list[Job]:
    """Lease up to ``limit`` due jobs to ``worker_id``: running ones whose lease ran out
    (their worker died) first, then queued ones whose time has come, earliest first.
    Commit promptly so other workers see the lease.

    Each of the two is one walk down an index in the order wanted, stopping at ``limit``:
    asked as one statement (either kind of due, ordered together), the database read and
    sorted every due job for each claim, so working off a queue of n jobs (the PDFs of a
    bill run) cost n² reads."""
    now = clock.utcnow()
    expired = select(Job).where(Job.status == "running", Job.locked_until < now)
    queued = select(Job).where(Job.status == "queued", Job.run_after <= now)
    jobs: list[Job] = []
    for query in (expired, queued):
        if kinds is not None:
            query = query.where(Job.kind.in_(list(kinds)))
        query = (query.order_by(Job.run_after, Job.id).limit(limit - len(jobs))
                 .execution_options(populate_existing=True))
        if is_postgres(session):
            # Concurrent claimers pass over each other's rows instead of queueing on them.
            # SQLite needs nothing: every transaction there begins IMMEDIATE, one at a time.
            query = query.with_for_update(skip_locked=True)
        jobs += session.scalars(query)
        if len(jobs) >= limit:
            break
    for job in jobs:
        job.status = "running"
        job.locked_by = worker_id
        job.locked_until = now + timedelta(seconds=lease_seconds)
        job.attempts += 1
    session.flush()
    return jobs


def complete(session: Session, job: Job) -> None:
    job.status = "done"
    job.locked_until = None
    job.finished_at = clock.utcnow()


def retry_delay(attempts: int) -> timedelta:
    """How long a job waits after its ``attempts``-th failure: 30 s, 1 min, 2 min, … 1 h."""
    exponent = min(max(attempts, 1) - 1, 16)
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2**exponent, LONGEST_RETRY_SECONDS))


def fail(session: Session, job: Job, error: str) -> None:
    """Record a failed attempt: back to the queue after a backoff, or dead if that was
    the last attempt."""
    now = clock.utcnow()
    job.last_error = error
    job.locked_until = None
    if job.attempts >= job.max_attempts:
        job.status = "dead"
        job.finished_at = now
    else:
        job.status = "queued"
        job.run_after = now + retry_delay(job.attempts)


@dataclass(frozen=True, slots=True)
class _Lease:
    job_id: str
    kind: str
    worker_id: str
    attempt: int


def run_pending(sessions: sessionmaker[Session], handlers: Mapping[str, Handler], *,
                worker_id: str, limit: int = 100, kinds: Collection[str] | None = None,
                lease_seconds: int = 300) -> int:
    """Run due jobs one at a time (a batch at a time for a ``Batched`` handler) until none
    is due or ``limit`` have run; return how many ran, failed ones included. A job of a
    kind ``handlers`` lacks fails like any other; ``kinds`` restricts which kinds are
    claimed at all."""
    ran = 0
    while ran < limit:
        with sessions() as session:
            with transaction(session):
                claimed = claim(session, worker_id=worker_id, kinds=kinds,
                                lease_seconds=lease_seconds)
                handler = handlers.get(claimed[0].kind) if claimed else None
                more = min(handler.batch_size, limit - ran) - 1 \
                    if isinstance(handler, Batched) else 0
                if more > 0:
                    claimed += claim(session, worker_id=worker_id, kinds=[claimed[0].kind],
                                     lease_seconds=lease_seconds, limit=more)
            if not claimed:
                break
            leases = [_Lease(job.id, job.kind, worker_id, job.attempts) for job in claimed]
            if len(leases) == 1:
                _run(session, handlers, leases[0])
            else:
                _run_batch(session, handlers, cast(Batched, handler), leases)
        ran += len(leases)
    return ran


def _run_batch(session: Session, handlers: Mapping[str, Handler], handler: Batched,
               leases: list[_Lease]) -> None:
    """Run the leased jobs as one batch; if that fails, each on its own (``_run``), so
    the failure is recorded against the job at fault alone."""
    alone = []
    try:
        with transaction(session):
            held = _held_all(session, leases)
            # Only a lease that ran out on the last attempt gets here; _run says so.
            alone = [job.id for job in held if job.attempts > job.max_attempts]
            batch = [job for job in held if job.id not in alone]
            if batch:
                handler.run_batch(session, batch)
                for job in batch:
                    complete(session, job)
    except Exception as exc:
        log.info("batch of %d %s jobs failed (%s: %s); running each on its own",
                 len(leases), leases[0].kind, type(exc).__name__, exc)
        alone = [lease.job_id for lease in leases]
    for lease in leases:
        if lease.job_id in alone:
            _run(session, handlers, lease)


def _run(session: Session, handlers: Mapping[str, Handler], lease: _Lease) -> None:
    handler = handlers.get(lease.kind)
    try:
        with transaction(session):
            job = _held(session, lease)
            if job is None:
                return
            if handler is None:
                raise UnknownJobKind(lease.kind)
            if job.attempts > job.max_attempts:
                # Only a lease that ran out on the last attempt gets here.
                raise GaveUp(f"the worker running attempt {job.max_attempts} stopped before "
                             "finishing it")
            handler(session, job)
            complete(session, job)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        with transaction(session):
            job = _held(session, lease)
            if job is None:
                return
            fail(session, job, error)
            log.log(logging.ERROR if job.status == "dead" else logging.WARNING,
                    "job %s (%s) attempt %d failed%s: %s", job.id, job.kind, job.attempts,
                    "; giving up" if job.status == "dead" else "", error)
            if isinstance(handler, RecordsFailures):
                _tell(session, handler, job, error)


def _tell(session: Session, handler: RecordsFailures, job: Job, error: str) -> None:
    # The job's failure is recorded even if the handler cannot record its own.
    try:
        with session.begin_nested():
            handler.on_failure(session, job, error)
    except Exception:
        log.exception("on_failure of job %s (%s) failed", job.id, job.kind)


def _held(session: Session, lease: _Lease) -> Job | None:
    """The job, locked, if this worker's lease on it still holds."""
    job = session.get(Job, lease.job_id, with_for_update=True)
    if (job is None or job.status != "running" or job.locked_by != lease.worker_id
            or job.attempts != lease.attempt):
        log.warning("job %s: lease of %s was taken over; not finishing it", lease.job_id,
                    lease.worker_id)
        return None
    return job


def _held_all(session: Session, leases: Sequence[_Lease]) -> list[Job]:
    """The jobs, locked in id order (so two batches cannot deadlock), whose leases by this
    worker still hold."""
    wanted = {lease.job_id: lease for lease in leases}
    held = []
    for job in session.scalars(select(Job).where(Job.id.in_(sorted(wanted)))
                               .order_by(Job.id).with_for_update()):
        lease = wanted[job.id]
        if job.status == "running" and job.locked_by == lease.worker_id \
                and job.attempts == lease.attempt:
            held.append(job)
        else:
            log.warning("job %s: lease of %s was taken over; not finishing it", job.id,
                        lease.worker_id)
    return held


class UnknownJobKind(BillfoldError):
    def __init__(self, kind: str) -> None:
        super().__init__(detail=f"no handler for job kind {kind!r} in this worker",
                         code="unknown_job_kind", status=500, title="Unknown job kind")


class GaveUp(BillfoldError):
    """The job used up its attempts without a handler reporting a failure."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, code="job_gave_up", status=500, title="Job gave up")


def default_worker_id() -> str:
    """host:pid:thread, unique among live workers and readable in ``locked_by``."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
