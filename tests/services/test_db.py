"""How Billfold's engines talk to the database."""

import secrets
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import cast

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    ForeignKey,
    Table,
    bindparam,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from billfold.core import bulk, db, ids
from billfold.core.db import transaction
from billfold.ledger.models import LedgerAccount
from billfold.payments.models import Payment, PaySession
from billfold.tenants import service as tenants
from billfold.tenants.models import TenantSettings


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


def _ledger_accounts_keyed_awkwardly(session, scope):
    """A ledger account of the scope for each of the AWKWARD keys."""
    with transaction(session):
        bulk.insert_rows(session, cast(Table, LedgerAccount.__table__), [
            {"id": ids.new_id("ledger_account"), "tenant_id": scope.tenant_id,
             "mode": scope.mode, "kind": "revenue", "currency": "USD",
             "billing_account_id": None, "key": key, "balance_minor": 0,
             "created_at": datetime.now(UTC)}
            for key in AWKWARD])


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
        _ledger_accounts_keyed_awkwardly(session, scope)
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


class TestDirect:
    """db.Direct runs a statement on the driver's cursor: what it writes and reads must be
    exactly what SQLAlchemy would write and read."""

    INSERT = db.Direct(cast(Table, PaySession.__table__).insert())
    BY_ID = db.Direct(select(PaySession.id, PaySession.lines, PaySession.options,
                             PaySession.allow_card, PaySession.expires_at,
                             PaySession.paid_at, PaySession.view_mode)
                      .where(PaySession.id == bindparam("id")))

    def values(self, scope, **changes):
        row = {"id": ids.new_id("pay_session"), "tenant_id": scope.tenant_id,
               "mode": scope.mode, "token_hash": secrets.token_hex(32), "kind": "native",
               "status": "open", "currency": "USD",
               "lines": [{"key": "1", "amount": 12_500, "note": "Ünïcode \"quoted\""}],
               "payers": [], "create_customer_record": False, "allow_card": True,
               "allow_ach": False, "options": {"allow_remove": True, "nested": {"a": None}},
               "return_url": None, "postback_url": None, "css_url": None,
               "biller_reference": None, "view_mode": 1, "page_load_override": None,
               "locale": None, "entry_id": None, "payment_id": None,
               "expires_at": datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
               "created_at": datetime(2026, 12, 6, 0, 0, tzinfo=UTC), "paid_at": None}
        return row | changes

    def test_a_row_written_directly_reads_back_the_same_through_the_orm(self, session, scope):
        row = self.values(scope)
        with transaction(session):
            assert self.INSERT.run(session, row) == []
        session.expunge_all()
        loaded = session.get(PaySession, row["id"])
        assert loaded is not None
        for name, value in row.items():
            assert getattr(loaded, name) == value, name

    def test_a_row_written_by_the_orm_reads_back_the_same_directly(self, session, scope):
        row = self.values(scope)
        with transaction(session):
            session.add(PaySession(**row))  # pending: flushed before the statement runs
            found = self.BY_ID.run(session, {"id": row["id"]})
        assert len(found) == 1
        assert found[0]._asdict() == {name: row[name] for name in found[0]._fields}
        assert found[0].expires_at.tzinfo is not None

    def test_run_many_writes_one_row_or_several(self, session, scope):
        one = self.values(scope)
        several = [self.values(scope, view_mode=0), self.values(scope, allow_card=False)]
        with transaction(session):
            self.INSERT.run_many(session, [one])  # directly
            self.INSERT.run_many(session, several)  # one executemany through the session
            self.INSERT.run_many(session, [])
        session.expunge_all()
        for row in [one, *several]:
            found = self.BY_ID.run(session, {"id": row["id"]})
            assert found[0]._asdict() == {name: row[name] for name in found[0]._fields}
        session.rollback()

    def test_it_runs_in_the_sessions_transaction(self, session, scope):
        row = self.values(scope)
        self.INSERT.run(session, row)
        session.rollback()
        assert self.BY_ID.run(session, {"id": row["id"]}) == []

    def test_driver_errors_come_back_as_sqlalchemys(self, session, scope):
        row = self.values(scope)
        self.INSERT.run(session, row)
        with pytest.raises(IntegrityError):
            self.INSERT.run(session, row)  # the same id again
        session.rollback()

    @pytest.mark.postgres_only
    def test_a_connection_found_dead_is_given_up_as_sqlalchemy_would(self, engine):
        with engine.connect() as doomed:
            pid = doomed.scalar(text("SELECT pg_backend_pid()"))
            with engine.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                killer.commit()
            with pytest.raises(OperationalError) as lost:
                self.BY_ID.run_on(doomed, {"id": "ps_x"})
            assert lost.value.connection_invalidated  # callers may retry on a new one
            assert doomed.invalidated  # the pool does not lend it again

    def test_one_cursor_serves_a_connection_and_a_new_connection_gets_its_own(self, engine,
                                                                             scope):
        """Direct statements reuse one cursor per driver connection; when the pool replaces
        a connection (invalidated, as when it is found dead), the new one gets its own."""
        pooled = db.make_engine(engine.url.render_as_string(hide_password=False),
                                pool_size=1, max_overflow=0)
        try:
            row = self.values(scope)
            with pooled.connect() as connection:
                with connection.begin():
                    self.INSERT.run_on(connection, row)
                first = connection.connection.driver_connection
                kept = db._cursor_of(connection)
                assert self.BY_ID.run_on(connection, {"id": row["id"]})[0].id == row["id"]
                assert db._cursor_of(connection) is kept
                connection.invalidate()
            with pooled.connect() as connection:
                assert connection.connection.driver_connection is not first
                found = self.BY_ID.run_on(connection, {"id": row["id"]})
                assert found[0]._asdict() == {name: row[name] for name in found[0]._fields}
                assert db._cursor_of(connection) is not kept
                assert db._cursor_of(connection).connection \
                    is connection.connection.driver_connection
                with connection.begin():
                    connection.execute(delete(PaySession).where(PaySession.id == row["id"]))
        finally:
            pooled.dispose()

    def test_a_parameter_left_out_is_an_error_not_a_null(self, session, scope):
        row = self.values(scope)
        del row["currency"]  # its column is then left out of the INSERT: NOT NULL refuses
        with pytest.raises(IntegrityError):
            self.INSERT.run(session, row)
        session.rollback()
        with pytest.raises(InvalidRequestError, match="id"):
            self.BY_ID.run(session, {"ident": "ps_x"})
        session.rollback()

    def test_what_it_cannot_run_exactly_is_refused(self, session):
        in_list = db.Direct(select(PaySession.id).where(
            PaySession.id.in_(bindparam("ids", expanding=True))))
        with pytest.raises(ValueError, match="expanding"):
            in_list.run(session, {"ids": ["a"]})
        session.rollback()

    def test_a_list_parameter_finds_exactly_the_keys_given(self, session, scope):
        # among_parameter(one_parameter=True): the list is one parameter on either database
        # (json_each on SQLite), so Direct can run the statement whatever its length.
        _ledger_accounts_keyed_awkwardly(session, scope)
        by_keys = db.Direct(lambda dialect: select(LedgerAccount.key).where(
            LedgerAccount.tenant_id == bindparam("tenant"),
            db.among_parameter(dialect, LedgerAccount.key, "keys", one_parameter=True)))
        for wanted in ([k for k in AWKWARD if k != "plain"] + ["not there", '"', "\\"],
                       ["NULL"], [], ["plain", "plain"]):
            found = by_keys.run(session, {"tenant": scope.tenant_id, "keys": wanted})
            assert sorted(row.key for row in found) == sorted(set(wanted) & set(AWKWARD))
        session.rollback()



class TestLoaded:
    """db.loaded: instances from a row read directly, as a query would load them."""

    BY_ID = db.Direct(select(*db.columns_of(PaySession, Payment))
                      .join_from(PaySession, Payment, Payment.pay_session_id == PaySession.id)
                      .where(PaySession.id == bindparam("id"))
                      .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL))

    def made(self, sessions, scope):
        row = TestDirect.values(None, scope)
        payment = Payment(
            id=ids.new_id("payment"), tenant_id=scope.tenant_id, mode=scope.mode,
            submission_key=ids.new_id("payment"), pay_session_id=row["id"], entry_id=None,
            billing_account_id=None, method="card", status="succeeded", amount_minor=12_500,
            fee_minor=100, refunded_minor=0, currency="USD", gateway="test",
            description="Ünïcode", payment_date=date(2026, 12, 6),
            created_at=datetime(2026, 12, 6, tzinfo=UTC), updated_at=datetime(2026, 12, 6, tzinfo=UTC),
            lines=[{"key": "1", "pay_minor": 12_500}])
        with sessions() as session, transaction(session):
            session.add(PaySession(**row))
            session.flush()
            session.add(payment)
        return row["id"], payment.id

    def test_the_instances_are_those_a_query_loads_and_belong_to_the_session(self, sessions,
                                                                             scope):
        session_id, payment_id = self.made(sessions, scope)
        with sessions() as queried:  # (on SQLite a transaction holds the writer's lock)
            expected = [queried.get(PaySession, session_id), queried.get(Payment, payment_id)]
            queried.expunge_all()
        with sessions() as session:
            (row,) = self.BY_ID.run(session, {"id": session_id})
            made = db.loaded(session, (PaySession, Payment), row)
            for instance, reference in zip(made, expected, strict=True):
                for attribute in inspect(type(instance)).column_attrs:
                    assert getattr(instance, attribute.key) == getattr(reference, attribute.key), \
                        attribute.key
            # In the session as loaded: found by identity, changed and written as usual.
            assert session.get(Payment, payment_id) is made[1]
            assert not session.dirty
            made[1].status = "refunded"
            session.commit()
        with sessions() as session:
            assert session.scalar(select(Payment.status).where(Payment.id == payment_id)) \
                == "refunded"

    def test_an_instance_the_session_holds_is_given_as_it_is(self, sessions, scope):
        session_id, payment_id = self.made(sessions, scope)
        with sessions() as session:
            held = session.get(Payment, payment_id)
            held.status = "failed"  # changed, not written: a query would not refresh it
            (row,) = self.BY_ID.run(session, {"id": session_id})
            assert db.loaded(session, (PaySession, Payment), row)[1] is held
            assert held.status == "failed"
            assert db.holds_any(session, Payment, ["nope", payment_id])
            assert not db.holds_any(session, Payment, ["nope"])
            session.rollback()


@pytest.mark.postgres_only
class TestWritesSentTogether:
    """db.send_writes_together: a transaction's Direct writes (and bulk's few rows) wait
    on the connection and go out with the next statement, in one pipeline; nothing about
    what the transaction reads or commits changes, only when a failing write says so."""

    INSERT = TestDirect.INSERT
    BY_ID = TestDirect.BY_ID
    values = TestDirect.values

    def count(self, session, row_id):
        return session.scalar(select(func.count()).select_from(PaySession)
                              .where(PaySession.id == row_id))

    def test_a_write_waits_for_the_next_statement(self, session, scope):
        row = self.values(scope)
        with transaction(session):
            db.send_writes_together(session)
            self.INSERT.run(session, row)
            # A duplicate key fails the statement it goes out with, not the call.
            self.INSERT.run(session, self.values(scope, id=row["id"]))
            with pytest.raises(IntegrityError):
                self.BY_ID.run(session, {"id": row["id"]})
            session.rollback()
        assert self.count(session, row["id"]) == 0  # nothing of the transaction was kept

    def test_the_transaction_reads_its_waiting_writes(self, session, scope):
        first, second, third = self.values(scope), self.values(scope), self.values(scope)
        with transaction(session):
            db.send_writes_together(session)
            self.INSERT.run(session, first)
            assert [r.id for r in self.BY_ID.run(session, {"id": first["id"]})] == [first["id"]]
            self.INSERT.run_many(session, [second, third])
            assert self.count(session, second["id"]) == 1  # a query through SQLAlchemy
            fourth = self.values(scope)
            self.INSERT.run(session, fourth)
            loaded = session.get(PaySession, fourth["id"])  # the unit of work's read
            assert loaded is not None
            assert loaded.lines == first["lines"]
        with db.make_sessionmaker(session.get_bind())() as other:
            assert {r for (r,) in other.execute(select(PaySession.id).where(PaySession.id.in_(
                [first["id"], second["id"], third["id"]])))} == {
                    first["id"], second["id"], third["id"]}

    def test_the_commit_sends_what_waits_and_a_failure_there_commits_nothing(self, session,
                                                                            scope):
        row, after = self.values(scope), self.values(scope)
        with transaction(session):
            db.send_writes_together(session)
            self.INSERT.run(session, row)  # sent with the commit
        assert self.count(session, row["id"]) == 1
        session.rollback()

        def doomed():
            with transaction(session):
                db.send_writes_together(session)
                self.INSERT.run(session, after)
                self.INSERT.run(session, self.values(scope, id=row["id"]))  # taken

        with pytest.raises(IntegrityError):
            doomed()  # at the commit
        assert self.count(session, after["id"]) == 0
        session.rollback()

    def test_a_rollback_drops_what_waits_and_the_connection_forgets_it(self, engine, scope):
        row = self.values(scope)
        with engine.connect() as connection, Session(bind=connection) as session:
            db.send_writes_together(session)
            self.INSERT.run(session, row)
            session.rollback()
            # The next transaction on the same connection neither sends it nor waits.
            assert self.count(session, row["id"]) == 0
            self.INSERT.run(session, self.values(scope, id=row["id"]))
            session.commit()
            assert self.count(session, row["id"]) == 1
            session.rollback()

    def test_only_the_transaction_that_asked_waits(self, session, scope):
        with transaction(session):
            db.send_writes_together(session)
        taken = self.values(scope)
        with transaction(session):
            self.INSERT.run(session, taken)
        with pytest.raises(IntegrityError):  # at once: the next transaction did not ask
            self.INSERT.run(session, self.values(scope, id=taken["id"]))
        session.rollback()

    def test_a_savepoint_sends_what_waits_and_its_failure_is_not_the_savepoints(self, session,
                                                                                scope):
        # Code that catches IntegrityError from its savepoint (a duplicate it expects) must
        # not take an earlier write's failure for its own.
        taken = self.values(scope)
        with transaction(session):
            self.INSERT.run(session, taken)

        def savepoint_after_a_failing_write():
            with transaction(session):
                db.send_writes_together(session)
                self.INSERT.run(session, self.values(scope, id=taken["id"]))
                try:
                    with session.begin_nested():  # begun at its first statement
                        session.add(PaySession(**self.values(scope)))
                        session.flush()
                        raise AssertionError("the savepoint's own work is not reached")
                except IntegrityError:
                    pytest.fail("an earlier write's failure was taken for the savepoint's")

        with pytest.raises(DBAPIError) as failed:
            savepoint_after_a_failing_write()
        assert not isinstance(failed.value, IntegrityError)
        session.rollback()

    def test_inside_a_savepoint_writes_go_at_once(self, session, scope):
        taken = self.values(scope)
        with transaction(session):
            self.INSERT.run(session, taken)
        with transaction(session):
            db.send_writes_together(session)
            with pytest.raises(IntegrityError), session.begin_nested():
                self.INSERT.run(session, self.values(scope, id=taken["id"]))
            kept = self.values(scope)
            self.INSERT.run(session, kept)
        assert self.count(session, kept["id"]) == 1

    def test_bulk_rows_wait_too_and_land_as_written(self, session, scope):
        table = cast(Table, LedgerAccount.__table__)
        now = datetime(2026, 12, 6, tzinfo=UTC)
        rows = [{"id": ids.new_id("ledger_account"), "tenant_id": scope.tenant_id,
                 "mode": scope.mode, "kind": "unapplied_cash", "currency": "USD",
                 "billing_account_id": None, "key": f"bulk:{i}", "balance_minor": 0,
                 "created_at": now} for i in range(3)]
        with transaction(session):
            db.send_writes_together(session)
            bulk.insert_rows(session, table, rows[:1])
            bulk.insert_rows(session, table, rows[1:])
            bulk.update_rows(session, table, "balance_minor",
                             [(rows[0]["id"], 250), (rows[2]["id"], -40)], add=True)
            bulk.update_rows(session, table, "balance_minor", [(rows[0]["id"], 5)], add=True)
        balances = dict(session.execute(select(LedgerAccount.key, LedgerAccount.balance_minor)
                                        .where(LedgerAccount.tenant_id == scope.tenant_id,
                                               LedgerAccount.key.like("bulk:%"))).all())
        assert balances == {"bulk:0": 255, "bulk:1": 0, "bulk:2": -40}
        session.rollback()


class TestReadTogether:
    """db.read_together: several Direct reads, each given its own rows as it would get
    them alone; on PostgreSQL in one pipeline, with what writes wait before them."""

    INSERT = TestDirect.INSERT
    BY_ID = TestDirect.BY_ID
    values = TestDirect.values
    BY_KEYS = db.DirectAmong(lambda _dialect, among: select(LedgerAccount.key).where(
        LedgerAccount.tenant_id == bindparam("tenant"), among(LedgerAccount.key)), "keys")

    def test_each_read_gets_the_rows_it_gets_alone_in_order(self, session, scope):
        _ledger_accounts_keyed_awkwardly(session, scope)
        first, second = self.values(scope), self.values(scope, view_mode=0)
        with transaction(session):
            self.INSERT.run_many(session, [first, second])
        reads = [(self.BY_ID, {"id": second["id"]}), (self.BY_ID, {"id": "nope"}),
                 (self.BY_KEYS, {"tenant": scope.tenant_id, "keys": ["NULL", "plain"]}),
                 (self.BY_KEYS, {"tenant": scope.tenant_id, "keys": AWKWARD}),
                 (self.BY_ID, {"id": first["id"]})]
        with transaction(session):
            together = db.read_together(session, reads)
        with transaction(session):
            alone = [statement.run(session, params) for statement, params in reads]
        assert together == alone
        assert [len(rows) for rows in together] == [1, 0, 2, len(AWKWARD), 1]
        assert together[4][0].expires_at == first["expires_at"]  # converted by its type
        assert together[4][0].lines == first["lines"]

    @pytest.mark.postgres_only
    def test_writes_waiting_go_first_in_the_same_round_trip(self, session, scope, monkeypatch):
        sent = []
        pipelined = db._pipelined

        def watched(connection, waiting, reads, **options):
            sent.append((len(waiting), len(reads)))
            return pipelined(connection, waiting, reads, **options)

        monkeypatch.setattr(db, "_pipelined", watched)
        row, other = self.values(scope), self.values(scope)
        with transaction(session):
            db.send_writes_together(session)
            self.INSERT.run_many(session, [row, other])
            self.INSERT.run(session, self.values(scope))
            found = db.read_together(session, [(self.BY_ID, {"id": row["id"]}),
                                               (self.BY_ID, {"id": other["id"]})])
        assert sent == [(2, 2)]  # the two writes (one of them an executemany), two reads
        assert [rows[0].id for rows in found] == [row["id"], other["id"]]

    @pytest.mark.postgres_only
    def test_a_waiting_write_that_fails_fails_the_call(self, session, scope):
        taken = self.values(scope)
        with transaction(session):
            self.INSERT.run(session, taken)

        def read_after_a_failing_write() -> None:
            with transaction(session):
                db.send_writes_together(session)
                self.INSERT.run(session, self.values(scope, id=taken["id"]))
                db.read_together(session, [(self.BY_ID, {"id": taken["id"]}),
                                           (self.BY_ID, {"id": "nope"})])

        with pytest.raises(IntegrityError):
            read_after_a_failing_write()
        session.rollback()


class TestOneWrite:
    """db.one_write: on PostgreSQL the session's statements run with no transaction around
    them, its one write committing as it runs; a second write or a locking read is refused
    before it is sent; the connection goes back to the pool transactional again."""

    INSERT = TestDirect.INSERT
    BY_ID = TestDirect.BY_ID
    LOCKED = db.Direct(select(PaySession.id).where(PaySession.id == bindparam("id"))
                       .with_for_update())
    values = TestDirect.values

    def count(self, sessions, row_id):
        with sessions() as other:
            return other.scalar(select(func.count()).select_from(PaySession)
                                .where(PaySession.id == row_id))

    @staticmethod
    def driver(session):
        return session.connection().connection.driver_connection

    @pytest.mark.postgres_only
    def test_the_write_is_committed_as_it_runs(self, sessions, scope):
        row = self.values(scope)
        with sessions() as session:
            db.one_write(session)
            assert self.BY_ID.run(session, {"id": row["id"]}) == []
            assert self.driver(session).info.transaction_status == TransactionStatus.IDLE
            self.INSERT.run(session, row)
            # Seen from another connection before this session commits: no BEGIN was sent.
            assert self.count(sessions, row["id"]) == 1
            session.commit()  # nothing left to commit, and no error
        assert self.count(sessions, row["id"]) == 1

    @pytest.mark.postgres_only
    @pytest.mark.parametrize("second", ["direct", "flush", "locking read", "orm locking read",
                                        "core update"])
    def test_a_second_write_or_a_lock_is_refused_before_it_is_sent(self, sessions, scope,
                                                                    second):
        first, other = self.values(scope), self.values(scope)
        with sessions() as session:
            writes = {
                "direct": lambda: self.INSERT.run(session, other),
                "flush": lambda: (session.add(PaySession(**other)), session.flush()),
                "locking read": lambda: self.LOCKED.run(session, {"id": first["id"]}),
                "orm locking read": lambda: session.get(PaySession, first["id"],
                                                        with_for_update=True),
                "core update": lambda: session.execute(
                    update(PaySession).where(PaySession.id == first["id"])
                    .values(status="paid"))}
            db.one_write(session)
            self.INSERT.run(session, first)
            with pytest.raises(db.SecondWrite):
                writes[second]()
            session.rollback()
        assert self.count(sessions, other["id"]) == 0
        with sessions() as session:
            assert session.get(PaySession, first["id"]).status == "open"

    @pytest.mark.postgres_only
    def test_a_locking_read_is_refused_even_first(self, sessions, scope):
        with sessions() as session:
            db.one_write(session)
            with pytest.raises(db.SecondWrite):
                self.LOCKED.run(session, {"id": "nope"})

    @pytest.mark.postgres_only
    def test_autocommit_alone_commits_every_write_as_it_runs(self, sessions, scope):
        first, second = self.values(scope), self.values(scope)
        with sessions() as session:
            db.autocommit(session)
            self.INSERT.run(session, first)
            self.INSERT.run(session, second)  # no SecondWrite: nothing is counted
            assert self.count(sessions, second["id"]) == 1
            session.rollback()  # nothing left to roll back
        assert self.count(sessions, first["id"]) == 1

    @pytest.mark.postgres_only
    def test_a_flush_may_be_the_one_write(self, sessions, scope):
        row = self.values(scope)
        with sessions() as session:
            db.one_write(session)
            session.add(PaySession(**row))
            session.flush()
        assert self.count(sessions, row["id"]) == 1

    @pytest.mark.postgres_only
    def test_the_connection_goes_back_to_the_pool_transactional(self, engine, scope):
        # make_engine's engine with a pool of one connection: the next session gets it
        pooled = db.make_engine(engine.url.render_as_string(hide_password=False),
                                pool_size=1, max_overflow=0)
        one = db.make_sessionmaker(pooled)
        try:
            with one() as session:
                db.one_write(session)
                self.INSERT.run(session, self.values(scope))
                first = self.driver(session)
            row = self.values(scope)
            with one() as session:
                assert self.driver(session) is first
                assert not first.autocommit
                self.INSERT.run(session, row)
                self.INSERT.run(session, self.values(scope))  # a second write is fine now
                assert first.info.transaction_status == TransactionStatus.INTRANS
                session.rollback()
            with one() as session:
                assert self.BY_ID.run(session, {"id": row["id"]}) == []
        finally:
            pooled.dispose()

    def test_elsewhere_the_session_keeps_its_transaction(self, engine, sessions, scope):
        if engine.dialect.name == "postgresql":
            pytest.skip("SQLite's behaviour")
        row = self.values(scope)
        with sessions() as session:
            db.one_write(session)
            self.INSERT.run(session, row)
            self.INSERT.run(session, self.values(scope))
            session.rollback()
        assert self.count(sessions, row["id"]) == 0


class TestLockedReads:
    """A locking read loads what it locked over what the session already holds: the
    session's instance has the values the lock protects, not those of an earlier read."""

    @staticmethod
    def bump_elsewhere(sessions, scope, days):
        with sessions() as other, transaction(other):
            other.execute(update(TenantSettings)
                          .where(TenantSettings.tenant_id == scope.tenant_id,
                                 TenantSettings.mode == scope.mode)
                          .values(clock_offset_days=TenantSettings.clock_offset_days + days))

    def test_a_locking_get_reads_over_what_the_session_holds(self, sessions, scope):
        with sessions() as session:
            held = tenants.get_settings(session, scope)
            before = held.clock_offset_days
            session.commit()  # the instance stays in the session with what it read
            self.bump_elsewhere(sessions, scope, 5)
            with transaction(session):
                locked = session.get(TenantSettings, (scope.tenant_id, scope.mode),
                                     with_for_update=True)
                assert locked is held
                assert locked.clock_offset_days == before + 5

    def test_a_locking_select_reads_over_what_the_session_holds(self, sessions, scope):
        with sessions() as session:
            held = tenants.get_settings(session, scope)
            before = held.clock_offset_days
            session.commit()
            self.bump_elsewhere(sessions, scope, 3)
            with transaction(session):
                locked = session.scalars(select(TenantSettings).where(
                    TenantSettings.tenant_id == scope.tenant_id,
                    TenantSettings.mode == scope.mode).with_for_update()).one()
                assert locked is held
                assert locked.clock_offset_days == before + 3
                plain = session.scalars(select(TenantSettings).where(
                    TenantSettings.tenant_id == scope.tenant_id,
                    TenantSettings.mode == scope.mode)).one()
                assert plain is held

    def test_each_advance_of_the_test_clock_counts(self, sessions, scope):
        """The request's key lookup loads the settings before the advance locks them (here
        a read in an earlier transaction of the session, as an idempotent request's claim
        does); another advance committing in between still counts."""
        with sessions() as session:
            held = tenants.get_settings(session, scope)  # held, as the request's cache does
            start = held.clock_offset_days
            session.commit()
            with sessions() as other, transaction(other):
                tenants.advance_test_clock(other, scope, days=1)
            with transaction(session):
                assert tenants.advance_test_clock(session, scope, days=1) is held
                assert held.clock_offset_days == start + 2
        with sessions() as fresh:
            assert tenants.get_settings(fresh, scope).clock_offset_days == start + 2


class TestDirectAmong:
    """db.DirectAmong: a short list as scalars on PostgreSQL, a longer one as one
    parameter; the same rows either way."""

    BY_KEYS = db.DirectAmong(lambda _dialect, among: select(LedgerAccount.key).where(
        LedgerAccount.tenant_id == bindparam("tenant"), among(LedgerAccount.key)), "keys")

    def test_every_count_finds_exactly_the_keys_given(self, session, scope):
        _ledger_accounts_keyed_awkwardly(session, scope)
        present = [k for k in AWKWARD if k != "plain"]
        for wanted in ([], ["NULL"], ["plain", "plain"], present[:1], present[:2],
                       [*present[:3], "not there"], [*present[:4], '"', "\\"],
                       [*present, "not there"]):
            found = self.BY_KEYS.run(session, {"tenant": scope.tenant_id, "keys": wanted})
            assert sorted(row.key for row in found) == sorted(set(wanted) & set(AWKWARD)), \
                wanted
        session.rollback()


class TestWriterTurns:
    """A SQLite engine's transactions take turns in the order they asked for one."""

    def test_the_turn_passes_to_the_longest_waiter(self):
        turns = db._WriterTurns(timeout_seconds=10)
        holder: dict[str, bool] = {}
        turns.take(holder)
        order: list[int] = []

        def wait_for_turn(number: int) -> None:
            info: dict[str, bool] = {}
            turns.take(info)
            order.append(number)
            turns.give_back(info)

        threads = []
        for number in range(6):
            thread = threading.Thread(target=wait_for_turn, args=(number,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 5
            while len(turns._waiting) <= number and time.monotonic() < deadline:
                time.sleep(0.001)  # queued before the next one asks
        turns.give_back(holder)
        for thread in threads:
            thread.join()
        assert order == list(range(6))

    def test_a_wait_that_runs_out_leaves_the_queue(self):
        turns = db._WriterTurns(timeout_seconds=10)
        holder: dict[str, bool] = {}
        turns.take(holder)
        with turns.held(0.05) as taken:
            assert not taken
        assert not turns._waiting
        turns.give_back(holder)
        with turns.held(0.05) as taken:  # free again, and nobody is handed it twice
            assert taken
        assert not turns._busy


class TestCheckpointsInBackground:
    """A server's SQLite connections leave checkpoints of the write-ahead log to a thread
    of its own, so that no request's commit waits for one."""

    @pytest.fixture
    def database(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'own.db'}"
        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE blob (b BLOB)")
        yield engine, tmp_path / "own.db"
        engine.dispose()

    def test_the_thread_copies_the_log_into_the_database(self, database):
        engine, path = database
        checkpointer = db.checkpoint_in_background(engine)
        assert checkpointer is not None
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == \
                    db.FALLBACK_CHECKPOINT_PAGES  # no commit of theirs checkpoints
                assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == \
                    db.LOG_SIZE_LIMIT_BYTES
                before = path.stat().st_size
                conn.exec_driver_sql("INSERT INTO blob VALUES (zeroblob(4000000))")
                conn.commit()  # into the log; no commit copies it back at this size
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                    checkpointer.checkpoints and path.stat().st_size >= before + 4_000_000):
                time.sleep(0.05)
            assert path.stat().st_size >= before + 4_000_000
        finally:
            checkpointer.stop()
        assert not checkpointer.thread.is_alive()

    def test_the_log_starts_over_under_a_steady_stream_of_commits(self, database):
        # With commits one after another some page of the log is always newer than the
        # last checkpoint, so SQLite never starts it over by itself (without the restart,
        # this log grew by ~220 pages a quarter second, past 8,000 in ten seconds): the
        # checkpointer finishes it in the writers' turn, and the next writer starts over.
        engine, _ = database
        checkpointer = db.checkpoint_in_background(engine)
        assert checkpointer is not None
        stop, seen = threading.Event(), []

        def write() -> None:
            while not stop.is_set():
                with engine.begin() as conn:
                    conn.exec_driver_sql("INSERT INTO blob VALUES (randomblob(100))")
                time.sleep(0.001)  # a few hundred pages a quarter second

        writer = threading.Thread(target=write)
        writer.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                    checkpointer.restarts and seen and min(seen) < db.RESTART_PAGES
                    and max(seen) >= db.RESTART_PAGES):
                seen.append(checkpointer.log_pages)
                time.sleep(0.02)
        finally:
            stop.set()
            writer.join()
            checkpointer.stop()
        assert checkpointer.restarts >= 1
        assert max(seen) >= db.RESTART_PAGES > min(p for p in seen if p)

    def test_other_engines_keep_sqlites_own_checkpoints(self, database):
        engine, _ = database
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000

    def test_nothing_to_do_on_postgresql_or_in_memory(self):
        assert db.checkpoint_in_background(db.make_engine("sqlite://")) is None
        assert db.checkpoint_in_background(
            db.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")) is None



class TestPersisted:
    """db.persisted (db.attach_as_loaded) puts a row just written with Core in the session
    as a query would load it: persistent, unchanged, read without SQL, its changes
    written as UPDATEs; what it was not given loads on first use."""

    def row(self, scope):
        return TestDirect().values(scope)

    def test_it_is_persistent_unchanged_and_its_changes_are_updates(self, sessions, scope):
        row = self.row(scope)
        with sessions() as session, transaction(session):
            TestDirect.INSERT.run(session, row)
            instance = db.persisted(session, PaySession, row)
            state = inspect(instance)
            assert state.persistent
            assert instance in session
            assert not session.dirty
            assert session.get(PaySession, row["id"]) is instance  # no SQL: the same object
            seen = _statements_during(session, lambda: setattr(instance, "status", "paid"))
            assert seen == []
            seen = _statements_during(session, session.flush)
            assert len(seen) == 1
            assert seen[0].startswith("UPDATE pay_session")
        with sessions() as session:
            assert session.get(PaySession, row["id"]).status == "paid"

    def test_what_it_was_not_given_loads_on_first_use(self, sessions, scope):
        row = self.row(scope)
        with sessions() as session, transaction(session):
            TestDirect.INSERT.run(session, row)
            partial = {k: v for k, v in row.items() if k not in ("lines", "view_mode")}
            instance = db.persisted(session, PaySession, partial)
            assert inspect(instance).expired_attributes == {"lines", "view_mode"}
            assert (instance.view_mode, instance.lines) == (1, row["lines"])  # loaded

    def test_an_identity_already_in_the_session_is_refused(self, sessions, scope):
        row = self.row(scope)
        with sessions() as session, transaction(session):
            TestDirect.INSERT.run(session, row)
            first = db.persisted(session, PaySession, row)  # held: the map's refs are weak
            with pytest.raises(InvalidRequestError, match="already present"):
                db.persisted(session, PaySession, row)
            assert session.get(PaySession, row["id"]) is first
            session.rollback()

    def test_a_session_not_yet_in_a_transaction_begins_one(self, sessions, scope):
        row = self.row(scope)
        with sessions() as session:
            instance = db.persisted(session, PaySession, row)  # as add() would, it begins
            assert session.in_transaction()
            assert inspect(instance).persistent
            session.rollback()


def _statements_during(session, action) -> list[str]:
    seen: list[str] = []
    engine = session.get_bind()

    def listener(*args):
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return seen

class TestInsertNow:
    """db.insert_now writes a pending instance with one statement and keeps it in the
    session as loaded: the row must be what a flush would have written."""

    def payment(self, scope, **changes):
        values = {"id": ids.new_id("payment"), "tenant_id": scope.tenant_id, "mode": scope.mode,
                  "submission_key": secrets.token_hex(8), "pay_session_id": None,
                  "entry_id": None, "billing_account_id": None, "method": "check",
                  "status": "succeeded", "amount_minor": 12_500, "fee_minor": 0,
                  "currency": "USD", "gateway": "none", "description": "Chèque «7»",
                  "lines": [{"key": "account", "pay_minor": 12_500, "oldest_first": True}],
                  "payment_date": date(2026, 12, 6),
                  "created_at": datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC),
                  "updated_at": datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC)}
        return Payment(**(values | changes))  # refunded_minor left to its default, 0

    def test_the_row_is_what_a_flush_writes(self, sessions, scope):
        direct, flushed = self.payment(scope), self.payment(scope)
        with sessions() as session, transaction(session):
            session.add_all([direct, flushed])
            db.insert_now(session, direct)
            assert direct not in session.new
            assert direct in session
            assert flushed not in session.new  # what else was pending went in first
        with sessions() as session:
            rows = {p.id: p for p in session.scalars(
                select(Payment).where(Payment.id.in_([direct.id, flushed.id])))}
            columns = [c.key for c in inspect(Payment).column_attrs
                       if c.key not in ("id", "submission_key")]  # unique per payment
            assert {c: getattr(rows[direct.id], c) for c in columns} == \
                {c: getattr(rows[flushed.id], c) for c in columns}
            assert rows[direct.id].refunded_minor == 0
            assert rows[direct.id].brand is None

    def test_the_instance_reads_without_sql_and_its_changes_are_updates(self, sessions, scope):
        payment = self.payment(scope)
        with sessions() as session, transaction(session):
            session.add(payment)
            db.insert_now(session, payment)
            seen = []
            engine = session.get_bind()
            listener = lambda *args: seen.append(args[2])  # noqa: E731
            event.listen(engine, "before_cursor_execute", listener)
            try:
                assert (payment.brand, payment.refunded_minor) == (None, 0)  # no lazy load
                payment.status = "refunded"
                session.flush()
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert len(seen) == 1
            assert seen[0].startswith("UPDATE payment")
        with sessions() as session:
            assert session.get(Payment, payment.id).status == "refunded"

    def test_in_a_savepoint_rolled_back_it_is_gone_from_the_session_too(self, sessions, scope):
        payment = self.payment(scope)

        def insert_then_roll_back(session) -> None:
            with session.begin_nested():
                session.add(payment)
                db.insert_now(session, payment)
                raise RuntimeError("savepoint rolled back")

        with sessions() as session, transaction(session):
            with pytest.raises(RuntimeError):
                insert_then_roll_back(session)
            assert payment not in session
            assert session.get(Payment, payment.id) is None

    def test_a_column_left_to_a_computed_default_is_refused(self, session, scope):
        from billfold.tenants.models import TenantSettings

        unset = TenantSettings(tenant_id=scope.tenant_id, mode=scope.mode)  # allowed_origins
        session.add(unset)
        with pytest.raises(ValueError, match="allowed_origins has a computed default"):
            db.insert_now(session, unset)
        session.rollback()

    def test_a_model_with_relationships_is_refused(self, session):
        class Base(DeclarativeBase):
            pass

        class Parent(Base):
            __tablename__ = "parent"
            id: Mapped[int] = mapped_column(primary_key=True)
            kids: Mapped[list["Kid"]] = relationship()

        class Kid(Base):
            __tablename__ = "kid"
            id: Mapped[int] = mapped_column(primary_key=True)
            parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))

        with pytest.raises(ValueError, match="relationships"):
            db.insert_now(session, Parent(id=1))
