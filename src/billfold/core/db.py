"""Engine, sessions and the one way to commit: ``with transaction(session): ...``.

SQLite runs with WAL and foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of failing
when a reader upgrades to a writer. PostgreSQL runs through psycopg 3.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections import deque, namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Executable,
    MetaData,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidRequestError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    make_transient_to_detached,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.types import UserDefinedType

from billfold.core.errors import NotFound
from billfold.core.scope import Scope

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def search_key_type(length: int) -> String:
    """A lowercased copy of a searchable value. Binary ("C") collation on PostgreSQL so a
    prefix becomes an index range scan whatever the database's own collation is."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        int: BigInteger(),
    }


class TenantScoped:
    """Every tenant-owned row records its tenant and mode (DESIGN.md decisions 3 and 4)."""

    tenant_id: Mapped[str] = mapped_column(String(40), index=False)
    mode: Mapped[str] = mapped_column(String(4))


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


POOL_SIZE = 10
POOL_OVERFLOW = 20


def _is_file_database(url: str) -> bool:
    database = make_url(url).database
    return bool(database) and database != ":memory:" and "mode=memory" not in url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if _is_file_database(url):
            # As many pooled connections as PostgreSQL gets: with SQLAlchemy's default of
            # five, eight concurrent requests opened and closed connections (and ran the
            # pragmas of each new one) all the time: 5-8% of a pay session's profile,
            # though no throughput change was measurable on its own.
            kwargs.setdefault("pool_size", POOL_SIZE)
            kwargs.setdefault("max_overflow", POOL_OVERFLOW)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    _send_writes_before_the_rest(engine)
    return engine


# A pooled PostgreSQL connection idle for longer than this is checked with a round trip
# before it is lent out (one that died meanwhile is replaced). A connection back from
# work moments ago is lent as it is: under load, pinging at every checkout cost a round
# trip per transaction, a tenth of the database work of creating a customer.
IDLE_PING_SECONDS = 1.0
_IDLE_SINCE = "billfold.idle_since"


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @sa_event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @sa_event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= IDLE_PING_SECONDS:
            return  # new, or busy a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            # The pool drops this connection and lends a new one.
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


PLAN_WITH_VALUES = "billfold.plan_with_values"


def plan_with_values(session: Session) -> None:
    """Have PostgreSQL plan each of this session's statements with its parameters' values,
    in this transaction and every later one of the session.

    For batch work over tables it is filling (an import). PostgreSQL otherwise switches a
    statement prepared on a connection to a generic plan after a few runs, and for a lookup
    by an array of keys in a table filled moments ago (no statistics yet) the generic plan
    read the whole table for every batch of an import: 77 ms a lookup instead of 4.
    Requests keep the generic plans: planning again at every statement cost PostgreSQL a
    third of its work for recording a payment. So do bill runs, which refresh the
    statistics of the tables they read and fill at each chunk (``refresh_statistics``):
    with plans made for each statement's values they were a quarter slower."""
    session.info[PLAN_WITH_VALUES] = True
    if session.in_transaction():
        _plan_with_values(session.connection())


@sa_event.listens_for(Session, "after_begin")
def _on_session_begin(session: Session, _transaction: Any, connection: Any) -> None:
    if session.info.get(PLAN_WITH_VALUES):
        _plan_with_values(connection)


def _plan_with_values(connection: Any) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


class _WriterTurns:
    """This process's SQLite transactions take turns on a lock, not on SQLite's busy
    handler. Every transaction begins with BEGIN IMMEDIATE, so they ran one at a time
    already; but the busy handler polls with sleeps of up to 100 ms, which under eight
    concurrent requests made p99 latency half a second. A lock hands the turn over as soon
    as the holder's connection returns to the pool. Other processes still queue on
    busy_timeout, and a wait that outlasts it falls through to SQLite, as before.

    Turns are taken in the order they were asked for: the turn passes straight to the
    longest waiter. With a plain lock, whichever thread got to it first after a release
    took it, so a request could be passed over several times in a row.
    """

    def __init__(self, timeout_seconds: float) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        self._waiting: deque[threading.Lock] = deque()
        self._timeout = timeout_seconds

    def take(self, connection_info: dict[str, Any]) -> None:
        if not connection_info.get("billfold.writer_turn") and self._acquire(self._timeout):
            connection_info["billfold.writer_turn"] = True

    def give_back(self, connection_info: dict[str, Any]) -> None:
        if connection_info.pop("billfold.writer_turn", False):
            self._release()

    @contextmanager
    def held(self, timeout_seconds: float) -> Iterator[bool]:
        """Hold the turn (no transaction of this process runs meanwhile) if it comes
        within ``timeout_seconds``; yields whether it did."""
        taken = self._acquire(timeout_seconds)
        try:
            yield taken
        finally:
            if taken:
                self._release()

    def _acquire(self, timeout_seconds: float) -> bool:
        with self._mutex:
            if not self._busy:
                self._busy = True
                return True
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        if handed.acquire(timeout=timeout_seconds):
            return True
        with self._mutex:
            if handed in self._waiting:
                self._waiting.remove(handed)
                return False
        return True  # handed over just as the wait ran out

    def _release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # the turn stays taken, by the next
            else:
                self._busy = False


# Each SQLite engine's writer turns, for its Checkpointer.
_TURNS: weakref.WeakKeyDictionary[Engine, _WriterTurns] = weakref.WeakKeyDictionary()


def _configure_sqlite(engine: Engine) -> None:
    turns = _TURNS[engine] = _WriterTurns(timeout_seconds=30)  # the busy timeout

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        turns.take(connection.info)

    # The transaction itself begins on the driver's connection, where SQLAlchemy begins
    # one (pysqlite's own do_begin does nothing), so a failure is wrapped as any other
    # statement's is (OperationalError: a 503). Sent as a statement through SQLAlchemy it
    # cost 110,000 of the 3.6 million instructions of a pay session (callgrind).
    setattr(engine.dialect, "do_begin", _begin_immediate)  # noqa: B010 (a method, per engine)

    @sa_event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        turns.give_back(record.info)


def _begin_immediate(dbapi_connection: Any) -> None:
    dbapi_connection.execute("BEGIN IMMEDIATE")


# SQLite copies its write-ahead log back into the database file (a checkpoint) in
# whichever commit takes the log past 1,000 pages, and that commit waits for the copy and
# its fsync: recording payments one after another, 3-6% took over twice the
# median for it (p99 9.6 ms; 5.8 ms with no checkpoint in any commit). A server therefore
# checkpoints on a thread of its own, its connections only once the log passes
# FALLBACK_CHECKPOINT_PAGES (should that thread ever fall behind), and a log grown large
# is cut back to LOG_SIZE_LIMIT_BYTES once copied.
#
# Copied back is not started over, though: SQLite writes the log from its beginning again
# only for a writer that begins when every page of it has been copied, and under a steady
# stream of commits some page is always newer than the last checkpoint. The log grew to
# the fallback (recording payments from eight clients, by 3,000 pages every quarter
# second), whose checkpoint then ran in a request's commit while every other request
# waited for its turn: clusters of requests all 60-80 ms late, every second or two, the
# benchmark's slowest 1%. And the longer the log, the slower every read (a page is looked
# up in the log's index before the file). So once the log holds RESTART_PAGES, the thread
# copies the log again until a pass takes under QUICK_PASS_SECONDS, then copies what came
# in during that pass while holding the writers' turn, and the next writer starts the log
# over. (Holding the turn right after one pass held the writers for 40-100 ms when they
# wrote 50 MB a quarter second: the pass had taken that long, and as much came in.)
CHECKPOINT_SECONDS = 0.25
FALLBACK_CHECKPOINT_PAGES = 25_000  # 100 MB of 4 KiB pages
RESTART_PAGES = 1_000
QUICK_PASS_SECONDS = 0.002
QUICK_PASS_TRIES = 3
LOG_SIZE_LIMIT_BYTES = 64 * 2**20


class Checkpointer:
    """Checkpoints a SQLite database's write-ahead log every CHECKPOINT_SECONDS on a
    daemon thread, on a connection of its own (PASSIVE: it never waits for SQLite's lock
    nor makes a writer wait for one), until ``stop`` or until its engine is gone. A log
    past RESTART_PAGES is finished while this process's writers wait their turn, so that
    it starts over (see above)."""

    def __init__(self, engine: Engine) -> None:
        self.path = str(engine.url.database)
        self.checkpoints = 0  # made so far, for tests and curiosity
        self.restarts = 0  # of those, finished in the writers' turn
        self.log_pages = 0  # the log's length at the last checkpoint
        self._stop = threading.Event()
        self._engine = weakref.ref(engine)
        self.thread = threading.Thread(target=self._run, name="billfold-sqlite-checkpoints",
                                       daemon=True)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                engine = self._engine()
                if engine is None:
                    return
                turns = _TURNS.get(engine)
                del engine  # the loop must not keep it alive
                try:
                    self._checkpoint(connection, turns)
                except sqlite3.Error as exc:  # the next turn tries again
                    # Busy: another process's checkpointer (serve --processes N) has it.
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        log.warning("checkpoint of %s failed: %s", self.path, exc)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection, turns: _WriterTurns | None) -> None:
        pages = self._copy(connection)
        if pages < RESTART_PAGES or turns is None:
            return
        # Copy again, alongside the writers, until a pass is quick: little came in during
        # it, so copying that while the writers wait is quick too. Writers faster than
        # that are left alone until the next turn (and the fallback).
        for _ in range(QUICK_PASS_TRIES):
            started = time.monotonic()
            self._copy(connection)
            if time.monotonic() - started <= QUICK_PASS_SECONDS:
                break
        else:
            return
        with turns.held(CHECKPOINT_SECONDS) as taken:
            if taken:
                self._copy(connection)
                self.restarts += 1

    def _copy(self, connection: sqlite3.Connection) -> int:
        """One PASSIVE checkpoint; the log's length in pages."""
        _busy, pages, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        self.log_pages = pages
        return int(pages)


def checkpoint_in_background(engine: Engine) -> Checkpointer | None:
    """For a long-running process on a SQLite file: its connections leave checkpoints to a
    ``Checkpointer``, started here (None on PostgreSQL and in-memory databases)."""
    if engine.dialect.name != "sqlite" or not _is_file_database(str(engine.url)):
        return None

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_CHECKPOINT_PAGES}")
        dbapi_connection.execute(f"PRAGMA journal_size_limit={LOG_SIZE_LIMIT_BYTES}")

    engine.dispose()  # connections pooled before this get the settings too
    checkpointer = Checkpointer(engine)
    checkpointer.thread.start()
    return checkpointer


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False, autoflush=True)
    sa_event.listen(factory, "do_orm_execute", _locked_rows_read_afresh)
    return factory


def _locked_rows_read_afresh(state: ORMExecuteState) -> None:
    """A locking read (``FOR UPDATE``, ``session.get(..., with_for_update=True)``) loads
    what it locked over whatever the session already holds of those rows. Without this,
    an instance loaded before the lock keeps its earlier values — the tenant's settings,
    which every request's key lookup loads, among them — and work that reads, locks and
    changes a row would change what it read before another transaction's commit (two
    test-clock advances at once moved the clock one day)."""
    if state.is_select and _locks(state.statement):
        state.update_execution_options(populate_existing=True)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit what the block did, or roll all of it back if the block raises."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def get_scoped(session: Session, model: Any, object_id: str, scope: Scope, kind: str, *,
               for_update: bool = False) -> Any:
    """The row of ``model`` with this id in the caller's tenant and mode. Another tenant's
    or mode's row answers NotFound exactly like a missing one (DESIGN.md decision 3)."""
    row = session.get(model, object_id, with_for_update=for_update or None)
    if row is None or row.tenant_id != scope.tenant_id or row.mode != scope.mode:
        raise NotFound(kind, object_id)
    return row


# -- writes sent together (PostgreSQL) -----------------------------------------------
#
# A recorded payment writes eight times (the payment, its allocation, the invoice, the
# events, the receipt job, the ledger entry, its postings, the balances) and reads in
# between; one round trip each cost the server about 100 µs of its own CPU and PostgreSQL
# about 30 (a ``SELECT 1`` through SQLAlchemy, 5,000 times), and eight inserts sent in one
# pipeline cost psycopg 276 µs against 410-470 one by one, PostgreSQL 160 against 340-360.
# So in a transaction that asks for it (``send_writes_together``), a ``Direct`` write with
# no result, and a few rows from ``bulk``, wait on the connection and go out in one
# pipeline with the next statement: a ``Direct`` read rides along (its rows come back
# with the writes' outcome), anything else through SQLAlchemy (a flush, a query, a
# savepoint, the commit) sends them first. A rollback drops them. What changes: a write
# that fails (a duplicate key) fails the statement it went out with, still in the same
# transaction; before a savepoint it fails as a plain DBAPIError, so that code catching
# IntegrityError from its savepoint never takes an earlier write's failure for its own.
# Inside a savepoint writes go at once (a savepoint rolled back must take them with it).

_WRITES_TOGETHER = "billfold.send_writes_together"
_WAITING = "billfold.writes_waiting"


def send_writes_together(session: Session) -> None:
    """Let this transaction's ``Direct`` writes wait for the next statement (PostgreSQL;
    on SQLite every statement is a call into the library, nothing to save). Ends with the
    transaction."""
    if is_postgres(session):
        session.info[_WRITES_TOGETHER] = True


def writes_wait(session: Session) -> Connection | None:
    """The connection to queue a write on, when this transaction's writes may wait."""
    if not session.info.get(_WRITES_TOGETHER) or session.in_nested_transaction():
        return None
    return session.connection()


def write_later(connection: Connection, sql: str, parameters: Any, *,
                many: bool = False) -> None:
    """Queue ``sql`` (the driver's form, parameters converted) on the connection: sent
    with the next statement."""
    connection.info.setdefault(_WAITING, []).append((sql, parameters, many))


def send_waiting(connection: Connection, then: tuple[str, Any] | None = None, *,
                 before_savepoint: bool = False, commit: bool = False) -> Any:
    """Send the writes waiting on ``connection`` in one pipeline, with ``then`` (sql,
    parameters) last: returns its cursor, read (None without it). With ``commit``, the
    pipeline ends with the COMMIT (the driver's own commit then finds no transaction)."""
    waiting = connection.info.pop(_WAITING, None)
    if not waiting:
        assert then is None, "a read with nothing waiting runs on its own"
        return None
    cursors = _pipelined(connection, waiting, [then] if then else [],
                         before_savepoint=before_savepoint, commit=commit)
    return cursors[0] if then else None


def _pipelined(connection: Connection, waiting: Sequence[tuple[str, Any, bool]],
               reads: Sequence[tuple[str, Any]], *, before_savepoint: bool = False,
               commit: bool = False) -> list[Any]:
    """Writes, then reads (their cursors returned, read), then perhaps the COMMIT, in one
    pipeline: one round trip."""
    driver = cast(Any, connection.connection.driver_connection)
    dialect = connection.dialect
    try:
        with driver.pipeline(), driver.cursor() as cursor:
            for sql, parameters, many in waiting:
                if many:
                    cursor.executemany(sql, parameters)
                else:
                    cursor.execute(sql, parameters)
            results = [driver.execute(sql, parameters) for sql, parameters in reads]
            if commit:
                # As a statement: the driver's commit() in a pipeline syncs at once, and
                # the pipeline's end syncs again, a round trip of its own (seen in strace).
                cursor.execute("COMMIT")
        return results
    except dialect.loaded_dbapi.Error as exc:
        gone = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
        if gone:
            connection.invalidate(exc)
        statements = "; ".join([sql for sql, _, _ in waiting] + [sql for sql, _ in reads])
        if before_savepoint:
            raise DBAPIError(statements, None, exc, connection_invalidated=gone) from exc
        raise DBAPIError.instance(statements, None, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=gone, dialect=dialect) from exc


def read_together(session: Session, reads: Sequence[tuple[Direct | DirectAmong, Mapping[str, Any]]]
                  ) -> list[list[Any]]:
    """The rows of several ``Direct`` reads, in their order, pending changes flushed
    first. On PostgreSQL they go in one pipeline, with any writes waiting before them: one
    round trip for the lot, where each would take one (with the statements themselves, the
    cost a request that must read several things up front can save; locks are taken in
    the order given). Elsewhere they run one after another."""
    if not is_postgres(session) or len(reads) == 1:
        return [statement.run(session, params) for statement, params in reads]
    session.flush()
    connection = session.connection()
    bound = [statement.bound(connection.dialect, params) for statement, params in reads]
    if _ONE_WRITE in connection.info:
        for form, _ in bound:
            _one_write_allows(connection, form.writes, form.locks)
    cursors = _pipelined(connection, connection.info.pop(_WAITING, None) or [],
                         [(form.sql, values) for form, values in bound])
    return [[form.make(row) for row in cursor.fetchall()]
            for (form, _), cursor in zip(bound, cursors, strict=True)]


def _send_writes_before_the_rest(engine: Engine) -> None:
    @sa_event.listens_for(engine, "before_cursor_execute")
    def _before_statement(connection: Connection, _cursor: Any, _statement: Any,
                          _parameters: Any, context: Any, _many: Any) -> None:
        info = connection.info
        if info.get(_WAITING):
            send_waiting(connection)
        if _ONE_WRITE in info and context is not None:
            _one_write_allows(connection, context.isinsert or context.isupdate
                              or context.isdelete,
                              _locks(getattr(context.compiled, "statement", None)))

    @sa_event.listens_for(engine, "savepoint")
    def _before_savepoint(connection: Connection, _name: Any) -> None:
        if connection.info.get(_WAITING):
            send_waiting(connection, before_savepoint=True)

    @sa_event.listens_for(engine, "commit")
    def _before_commit(connection: Connection) -> None:
        # The last writes of a payment update balance rows every payment updates (cash
        # clearing), locked until the commit: sent with it, the lock is held for one
        # round trip instead of two.
        if connection.info.get(_WAITING):
            send_waiting(connection, commit=True)

    @sa_event.listens_for(engine, "rollback")
    def _on_rollback(connection: Connection) -> None:
        if not connection.invalidated:  # else its info goes with it
            connection.info.pop(_WAITING, None)

    @sa_event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_WAITING, None)  # after a rollback by the pool, say

    @sa_event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, _state: Any) -> None:
        if record is not None and record.info.pop(_AUTOCOMMIT, None):
            dbapi_connection.autocommit = False  # before the pool's rollback
            record.info.pop(_ONE_WRITE, None)


@sa_event.listens_for(Session, "after_transaction_end")
def _writes_together_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_WRITES_TOGETHER, None)


# -- work whose one write is one statement (PostgreSQL) -------------------------------
#
# Creating a pay session reads the caller's key and the invoices, then inserts one row.
# In a transaction that is five round trips — BEGIN, the two reads, the insert, COMMIT —
# and the BEGIN and COMMIT bought nothing: at READ COMMITTED every statement reads what
# was committed when it began, in a transaction or not, and one statement is whole by
# itself. Without them a pay session cost the server 0.75-0.84 ms of CPU against
# 0.82-0.90 and PostgreSQL 0.26-0.31 against 0.32-0.35 (over HTTP, three pairs).

_ONE_WRITE = "billfold.one_write"
_AUTOCOMMIT = "billfold.autocommit"


class SecondWrite(RuntimeError):
    """A session declared ``one_write`` wrote (or locked rows) twice."""


def autocommit(session: Session) -> None:
    """Run this session's statements each on its own, with no transaction around them
    (PostgreSQL's autocommit), until its connection goes back to the pool: for work made
    of statements that each stand alone, and commit one by one in any case (claiming an
    idempotency key). Reads see what they would in a READ COMMITTED transaction. Call it
    before the session's first statement. On SQLite nothing changes: the session's
    transaction goes on holding the writer's lock until it commits."""
    if not is_postgres(session):
        return
    connection = session.connection()
    # On the driver's connection, which then sends no BEGIN. SQLAlchemy's own
    # isolation_level="AUTOCOMMIT" does the same for 16-36 µs more CPU a request (it sets
    # and resets the connection's characteristics). The pool's reset turns it off again.
    cast(Any, connection.connection.driver_connection).autocommit = True
    connection.info[_AUTOCOMMIT] = True


def one_write(session: Session) -> None:
    """``autocommit``, for work that reads and then writes with at most one statement: the
    write commits as it runs.

    A second write (a ``Direct`` one, or an INSERT, UPDATE or DELETE sent through
    SQLAlchemy, a flush's included) or any locking read raises ``SecondWrite`` before it
    is sent: such work needs a transaction, and what ran before has committed already, so
    the mistake must show in the tests of the work that makes it. On SQLite nothing
    changes: there authentication's transaction takes the writer's lock the work needs."""
    if not is_postgres(session):
        return
    autocommit(session)
    session.connection().info[_ONE_WRITE] = False


def _locks(statement: Any) -> bool:
    return getattr(statement, "_for_update_arg", None) is not None


def _one_write_allows(connection: Connection, writes: bool, locks: bool) -> None:
    """Count a statement of work declared ``one_write``; SecondWrite if it may not run."""
    if locks or (writes and connection.info[_ONE_WRITE]):
        raise SecondWrite("this work was declared to write with one statement (db.one_write)"
                          " but writes again or locks rows: give it a transaction")
    if writes:
        connection.info[_ONE_WRITE] = True


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)`` with the values as one
    array parameter, so a statement's text is the same however many values it gets and
    is compiled, parsed and planned once (a batch job asks with hundreds of ids)."""
    if is_postgres(session):
        listed = list(values)
        literal = pg_array(listed)
        if literal is not None:
            return cast(ColumnElement[bool], column == any_(bindparam(
                None, literal, type_=_array_text(session.get_bind().dialect, column.type))))
        return cast(ColumnElement[bool], column == any_(bindparam(
            None, listed, type_=ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(list(values)))


def pg_array(values: Sequence[Any]) -> str | None:
    """PostgreSQL's text form of a one-dimensional array of ``values`` (``{"a","b"}``), or
    None if one of them is of a type this does not write (pass the list to the driver).

    For arrays of hundreds of keys (a bill-run batch's services, a lookup by ids): psycopg
    adapts a list element by element in Python, three times slower than joining the text
    here (1.8 ms against 0.6 ms for 750 ids, round trip included), and a bill run sends
    dozens of such arrays per batch. The statement casts the parameter to the array type."""
    parts: list[str] = []
    for value in values:
        kind = type(value)
        if kind is str:
            parts.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif value is None:
            parts.append("NULL")
        elif kind is int or kind is date or kind is Decimal:
            parts.append(str(value))
        elif kind is bool:
            parts.append("t" if value else "f")
        elif kind is datetime and value.tzinfo is not None:
            parts.append('"' + value.isoformat() + '"')
        else:
            return None
    return "{" + ",".join(parts) + "}"


CHUNK = 500  # values one statement asks ``among`` at most (SQLite bounds its parameters)


def chunks(values: Iterable[str]) -> Iterator[list[str]]:
    """``values`` sorted, without repeats, in lists of at most ``CHUNK``."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


def by_ids(session: Session, model: Any, ids: Iterable[str]) -> list[Any]:
    """The rows of ``model`` with these ids (those that exist), a statement per CHUNK."""
    found: list[Any] = []
    for chunk in chunks(ids):
        found += session.scalars(select(model).where(among(session, model.id, chunk)))
    return found


def among_parameter(dialect: str, column: Any, name: str, *,
                    one_parameter: bool = False) -> ColumnElement[bool]:
    """``among`` for a statement built once per dialect, the values given at each run as
    the parameter ``name``. ``one_parameter``: on SQLite too the list is one parameter
    (JSON, read by ``json_each``) rather than one per value, so the statement's text is
    the same for any number of values (what ``Direct`` needs)."""
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column == any_(bindparam(
            name, type_=_array_text(_POSTGRESQL, column.type))))
    if one_parameter:
        listed = func.json_each(bindparam(name, type_=JSON)).table_valued("value")
        return cast(ColumnElement[bool], column.in_(select(listed.c.value)))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))


class ArrayText(UserDefinedType[Any]):
    """An array parameter sent in PostgreSQL's text form (``pg_array``): the statement
    reads ``$1::VARCHAR(40)[]`` exactly as for a list, and PostgreSQL parses the text as
    that array type. Its values must be of the kinds pg_array writes, or be that text
    already."""

    cache_ok = True
    render_bind_cast = True

    def __init__(self, spec: str) -> None:
        self.spec = spec  # the array type, e.g. "VARCHAR(40)[]"

    def get_col_spec(self, **_kw: Any) -> str:
        return self.spec

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            if value is None or isinstance(value, str):
                return value
            literal = pg_array(value)
            if literal is None:
                raise TypeError(f"cannot send {value!r} as an array's text")
            return literal
        return process


_POSTGRESQL: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=256)
def _array_text(dialect: Dialect, item_type: Any) -> ArrayText:
    item = item_type.dialect_impl(dialect)
    if getattr(item, "collation", None):  # a search key's: not part of a cast's type
        item = item.copy()
        item.collation = None
    return ArrayText(f"{item.compile(dialect=dialect)}[]")


STATISTICS_GROWTH = 4


def refresh_statistics(session: Session, tables: Sequence[str]) -> list[str]:
    """On PostgreSQL, ANALYZE those of ``tables`` that hold more than 1,000 rows plus
    ``STATISTICS_GROWTH`` times the rows of their last statistics (or have none), and
    return their names; elsewhere do nothing.

    A bill run can grow the invoice and ledger tables many times over within minutes of a
    fresh start. Until the statistics catch up, the planner takes them for the few pages
    they were, and foreign-key checks against rows just inserted keep their cached
    sequential-scan plans: every invoice line scans the invoices. ANALYZE also discards
    those plans. Call it outside the caller's own work: it commits.

    Growth is rows now (``n_live_tup``) against rows at the last statistics (``reltuples``),
    not changes since: a run updates every service and account it bills, which moves no
    statistic the planner uses; counting those updates had a run of 20,000 accounts
    analyze the service and account tables four times each (1.2 s of PostgreSQL's 15).

    What matters is the first statistics of a table that was empty or tiny, and dropping
    the plans made then; later, the planner scales the rows it expects by the table's
    current size on its own. Refreshing at every half again (growth 1.5) analyzed a run's
    invoice lines seven times in 20,000 accounts (0.9 s); at four times, twice (0.06 s)."""
    if not is_postgres(session) or not tables:
        return []
    stale = list(session.scalars(text(
        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables) "
        "AND s.n_live_tup > 1000 + :growth * greatest(c.reltuples, 0)"),
        {"tables": list(tables), "growth": STATISTICS_GROWTH}))
    session.commit()
    for table in sorted(stale):
        try:
            if not session.scalar(_ANALYZING, {"table": table}):
                # Another chunk is analyzing it this moment (a run's threads and workers
                # start together and find the same tables stale): its statistics serve.
                session.rollback()
                stale.remove(table)
                continue
            session.execute(text(f'ANALYZE "{table}"'))
            session.commit()
        except DBAPIError:  # not the table's owner: leave it to autovacuum
            session.rollback()
            stale.remove(table)
    return stale


# Held by whoever analyzes a table, until its transaction ends.
_ANALYZING = text("SELECT pg_try_advisory_xact_lock(hashtext('billfold.analyze'), "
                  "hashtext(current_schema() || '.' || :table))")


__all__ = [
    "STATISTICS_GROWTH",
    "Base",
    "BigInteger",
    "TenantScoped",
    "UTCDateTime",
    "among",
    "get_scoped",
    "is_postgres",
    "make_engine",
    "make_sessionmaker",
    "refresh_statistics",
    "search_key_type",
    "transaction",
]


class Direct:
    """A Core statement run on the driver's own cursor, for the few statements every
    request of a kind runs (a key's lookup, a pay session's reads and insert, a recorded
    payment's writes):
    compiled once per dialect (the statement, or a function building it for a dialect's
    name) and set of parameter names, its parameters and results converted by its types, as
    SQLAlchemy would, but without its execution pipeline, which cost 2-3 times what the
    driver does for such a statement (a select of 29 columns by key: 69 µs against 14 µs on
    SQLite). In the session's transaction, pending changes flushed first, as
    ``session.execute`` would.
    Driver errors come back wrapped as SQLAlchemy's (IntegrityError, OperationalError).
    What it skips: SQLAlchemy's statement events and echo, and expanding parameters
    (``IN`` lists), which it refuses."""

    def __init__(self, statement: Executable | Callable[[str], Executable]) -> None:
        self.statement = statement  # or what builds it for a dialect, by its name
        self._compiled: dict[tuple[Dialect, frozenset[str]], _DirectForm] = {}

    def run(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        """The rows (named tuples; none for a statement without rows). In a transaction
        that sends its writes together, a statement without rows waits for the next."""
        session.flush()
        if (connection := writes_wait(session)) is not None:
            form = self._form(connection.dialect, params)
            if form.row is None:
                write_later(connection, form.sql, form.parameters(params))
                return []
        return self.run_on(session.connection(), params)

    def run_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run this statement (an INSERT or UPDATE) for each of ``rows``, pending changes
        flushed first: one row directly, several through the session as one executemany
        (whose cost is then spread over them)."""
        if len(rows) == 1:
            self.run(session, rows[0])
        elif rows:
            assert isinstance(self.statement, Executable)
            session.flush()
            if (connection := writes_wait(session)) is not None:
                form = self._form(connection.dialect, rows[0])
                write_later(connection, form.sql, [form.parameters(row) for row in rows],
                            many=True)
                return
            session.execute(self.statement, list(rows))

    def bound(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[_DirectForm, Any]:
        """The statement as the driver takes it for ``dialect``, and ``params`` converted."""
        form = self._form(dialect, params)
        return form, form.parameters(params)

    def run_on(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """``run`` on a connection of one's own, in whatever transaction it is in."""
        dialect = connection.dialect
        form, values = self.bound(dialect, params)
        info = connection.info
        if _ONE_WRITE in info:
            _one_write_allows(connection, form.writes, form.locks)
        try:
            if info.get(_WAITING):  # writes waiting: they go first, together
                cursor = send_waiting(connection, (form.sql, values))
            else:
                cursor = _cursor_of(connection).execute(form.sql, values)
            rows = cursor.fetchall() if form.row is not None else []
        except dialect.loaded_dbapi.Error as exc:
            # As SQLAlchemy does: a connection found dead is invalidated (the pool opens a
            # new one), and the error says so.
            gone = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
            if gone:
                connection.invalidate(exc)
            raise DBAPIError.instance(form.sql, values, exc, dialect.loaded_dbapi.Error,
                                      connection_invalidated=gone, dialect=dialect) from exc
        return [form.make(row) for row in rows]

    def _form(self, dialect: Dialect, params: Mapping[str, Any]) -> _DirectForm:
        key = (dialect, frozenset(params))
        return self._compiled.get(key) or self._compile(key, dialect, params)

    def _compile(self, key: tuple[Dialect, frozenset[str]], dialect: Dialect,
                 params: Mapping[str, Any]) -> _DirectForm:
        statement = self.statement if isinstance(self.statement, Executable) \
            else self.statement(dialect.name)
        form = _DirectForm(statement, dialect, list(params))
        self._compiled[key] = form
        return form


_CURSOR = "billfold.cursor"


def _cursor_of(connection: Connection) -> Any:
    """The cursor ``Direct`` statements run on, one for each driver connection, kept in
    the connection's ``info`` (which SQLAlchemy empties when it replaces the driver's
    connection). A new cursor starts without the conversions a used one has looked up:
    reading the 29 columns of a key and its settings cost 62 µs on a new cursor, 48 on a
    used one."""
    cursor = connection.info.get(_CURSOR)
    if cursor is None:
        cursor = connection.info[_CURSOR] = cast(
            Any, connection.connection.driver_connection).cursor()
    return cursor


# A list of up to this many values is sent to PostgreSQL as scalar parameters (DirectAmong).
SCALAR_LIST = 4


class DirectAmong:
    """A ``Direct`` statement with one list parameter, ``name``, built by
    ``build(dialect_name, among)``, where ``among(column)`` is the condition "the column's
    value is in the list".

    On PostgreSQL a list of one to ``SCALAR_LIST`` values goes as that many scalar
    parameters, one statement per count; a longer list, and any list on SQLite, as one
    parameter (``among_parameter``). PostgreSQL reuses a prepared statement's generic plan
    only when it costs no more than planning afresh, and it costs a list it cannot see at
    ten values: for a short list it planned every run again. A pay session's invoice read
    (three tables, ten indexes on the invoice) spent 0.76 ms in the planner and 0.05 ms
    running — three quarters of what PostgreSQL did for the whole session. With scalars
    the generic plan is the custom one, made once per connection."""

    def __init__(self, build: Callable[[str, Callable[[Any], ColumnElement[bool]]], Executable],
                 name: str) -> None:
        self._build, self.name = build, name
        self._forms: dict[int, Direct] = {}

    def run(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        dialect = (session.bind or session.get_bind()).dialect
        form, params = self._resolved(dialect.name, params)
        return form.run(session, params)

    def bound(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[_DirectForm, Any]:
        form, params = self._resolved(dialect.name, params)
        return form.bound(dialect, params)

    def _resolved(self, dialect_name: str, params: Mapping[str, Any]
                  ) -> tuple[Direct, Mapping[str, Any]]:
        """The statement for this many values, and the parameters it takes."""
        values = params[self.name]
        count = len(values) if dialect_name == "postgresql" and 0 < len(values) <= SCALAR_LIST \
            else 0
        form = self._forms.get(count)
        if form is None:
            form = self._forms[count] = Direct(lambda dialect: self.statement(dialect, count))
        if count:
            params = {**params, **{f"{self.name}_{i}": value for i, value in enumerate(values)}}
        return form, params

    def statement(self, dialect: str, count: int) -> Executable:
        """The statement for ``count`` values (0: for any number, as one parameter)."""
        name = self.name

        def among(column: Any) -> ColumnElement[bool]:
            if dialect != "postgresql" or not count:
                return among_parameter(dialect, column, name, one_parameter=True)
            if count == 1:
                return cast(ColumnElement[bool], column == bindparam(f"{name}_0", type_=column.type))
            return cast(ColumnElement[bool], column.in_(
                [bindparam(f"{name}_{i}", type_=column.type) for i in range(count)]))

        return self._build(dialect, among)


class _DirectForm:
    """A statement compiled for one dialect and one set of parameter names (an insert's
    columns are those it is given)."""

    def __init__(self, statement: Executable, dialect: Dialect, names: list[str]) -> None:
        compiled = cast(Any, statement).compile(dialect=dialect, column_keys=names)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a Direct statement takes no expanding (IN list) parameters")
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a Direct statement runs no column defaults: give every "
                             "column a value")
        if compiled.escaped_bind_names:
            raise ValueError("a Direct statement's parameters need plain names")
        self.sql = str(compiled)
        self.writes, self.locks = bool(cast(Any, statement).is_dml), _locks(statement)
        self._defaults = {name: param.value for name, param in compiled.binds.items()
                          if not param.required}
        self._required = frozenset(name for name, param in compiled.binds.items()
                                   if param.required)
        self._order = tuple(compiled.positiontup) if compiled.positional else None
        self._binds = dict(compiled._bind_processors)
        columns = compiled._result_columns
        self.row: Any = None
        self._results: tuple[Any, ...] = ()
        if columns:
            self.row = namedtuple("Row", [c[0] for c in columns], rename=True)  # type: ignore[misc]
            self._results = tuple(c[3]._cached_result_processor(dialect, None)
                                  for c in columns)
            if not any(self._results):
                self._results = ()

    def parameters(self, params: Mapping[str, Any]) -> Any:
        if not self._required <= params.keys():
            missing = ", ".join(sorted(self._required - params.keys()))
            raise InvalidRequestError(f"A value is required for bind parameter {missing}")
        values = {**self._defaults, **params}
        for name, process in self._binds.items():
            if name in values:
                values[name] = process(values[name])
        if self._order is not None:
            return tuple(values[name] for name in self._order)
        return values

    def make(self, row: Sequence[Any]) -> Any:
        if self._results:
            row = [value if process is None or value is None else process(value)
                   for process, value in zip(self._results, row, strict=True)]
        return self.row._make(row)


def constant_default(column: Any) -> Any:
    """A column's constant Python-side default, for a row inserted past the unit of work
    that leaves the column out; a callable default cannot be applied there, so leaving
    such a column out is a programming error."""
    default = column.default
    if not getattr(default, "is_scalar", False):
        raise ValueError(f"{column.table.name}.{column.name} has a computed default: give it")
    return default.arg


def insert_now(session: Session, instance: Any) -> None:
    """Insert a pending instance with one ``Direct`` statement (what else is pending
    flushed first) and keep it in the session as if loaded from its row: for an object
    made on a path run at a rate, whose flush by the unit of work cost four times the
    statement. Each column takes the instance's value, else its constant default, else
    NULL; a model with relationships, or a column with a computed default left unset, is
    refused. No ORM events run (none are used). In a savepoint the session flushes it
    instead: a savepoint rolled back forgets only what the unit of work wrote."""
    mapper = inspect(type(instance))
    if mapper.relationships:
        raise ValueError(f"{mapper.class_.__name__} has relationships: flush it instead")
    if session.in_nested_transaction():
        session.flush()
        return
    table = mapper.local_table
    direct = _INSERT_NOW.get(table)
    if direct is None:
        direct = _INSERT_NOW.setdefault(table, Direct(cast(Table, table).insert()))
    values = instance.__dict__
    row: dict[str, Any] = {}
    for column in table.columns:  # each column's value, also in the instance as loaded
        key = mapper.get_property_by_column(column).key
        if key in values:
            row[column.name] = values[key]
        elif column.default is None:
            row[column.name] = values[key] = None
        else:
            row[column.name] = values[key] = constant_default(column)
    session.expunge(instance)
    direct.run(session, row)
    attach_as_loaded(session, instance)


_INSERT_NOW: dict[Any, Direct] = {}


def persisted(session: Session, model: Any, row: Any) -> Any:
    """The model instance of a row just inserted with Core, in the session as if loaded
    from it (no further SQL), so callers in the same transaction see and may change it.
    Built the way a query builds what it loads: the values go straight into the
    instance's dict. ``row`` is a mapping or an object with the columns as attributes."""
    instance = inspect(model).class_manager.new_instance()
    instance.__dict__.update(row if isinstance(row, dict) else vars(row))
    attach_as_loaded(session, instance)
    return instance


def columns_of(*models: Any) -> list[Any]:
    """Every column of each model's table, in order: what ``loaded`` takes a row of.
    Select them with ``LABEL_STYLE_TABLENAME_PLUS_COL`` (two tables' ``id`` columns)."""
    return [column for model in models for column in inspect(model).local_table.columns]


def loaded(session: Session, models: Sequence[Any], row: Sequence[Any]) -> list[Any]:
    """The instances of ``models`` whose columns (``columns_of``) ``row`` holds, one after
    another, in the session as a query would put them: an instance the session holds
    already is returned as it is (as a query without populate_existing does), else the
    row's values go straight into a new one (``persisted``). For a row read with a
    ``Direct`` statement on a path run at a rate: a recorded payment's account (with its
    customer and tenant) and invoices read this way instead of by ORM queries cost the
    server 8.80 -> 7.19 million instructions on PostgreSQL, 8.25 -> 7.72 on SQLite."""
    made, start = [], 0
    for model in models:
        keys = _attribute_keys(model)
        values = dict(zip(keys, row[start:start + len(keys)], strict=True))
        start += len(keys)
        mapper = inspect(model)
        identity = mapper.identity_key_from_primary_key(
            [values[key] for key in _primary_keys(model)])
        held = session.identity_map.get(identity)
        made.append(held if held is not None else persisted(session, model, values))
    return made


def holds_any(session: Session, model: Any, ids: Iterable[Any]) -> bool:
    """Whether the session holds an instance of ``model`` with one of these ids."""
    mapper = inspect(model)
    return any(mapper.identity_key_from_primary_key([i]) in session.identity_map for i in ids)


@cache
def _attribute_keys(model: Any) -> tuple[str, ...]:
    mapper = inspect(model)
    return tuple(mapper.get_property_by_column(column).key for column in mapper.local_table.columns)


@cache
def _primary_keys(model: Any) -> tuple[str, ...]:
    mapper = inspect(model)
    return tuple(mapper.get_property_by_column(column).key for column in mapper.primary_key)


def attach_as_loaded(session: Session, instance: Any) -> None:
    """Make a transient ``instance`` persistent in ``session``, its attributes' values
    those of its row (the rest expired, loaded on first use): what
    ``make_transient_to_detached`` and ``session.add`` do, done the way SQLAlchemy's
    loading attaches a row it reads. The two calls cost 120,000 instructions an object,
    mostly ``add``'s walk of every mapped attribute for cascades, which a loaded row never
    takes (a pay session makes two such objects: 2.67 -> 2.52 million instructions). Where ``add`` does
    more — an instance with that identity already in the session (its error), attach
    events listened to, or no transaction begun yet — it is left to them."""
    state = inspect(instance)
    if state.session_id or state.key:
        raise InvalidRequestError("Given object must be transient")
    key = state.mapper._identity_key_from_state(state)
    events = session.dispatch
    if key in session.identity_map or not session.in_transaction() or events.before_attach \
            or events.after_attach or events.detached_to_persistent:
        make_transient_to_detached(instance)
        session.add(instance)
        return
    state.key, state.identity_token = key, key[2]
    values = state.dict
    if state.modified or state.committed_state:  # values set through its attributes
        state._commit_all(values)
    if len(values) <= len(state.manager):  # some attribute has no value (the dict also
        state._expire_attributes(values, state.unloaded)  # holds the state itself)
    state.session_id = session.hash_key
    session.identity_map._add_unpresent(state, key)
