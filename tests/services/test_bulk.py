"""core.bulk writes what an ORM insert or update would, through COPY on PostgreSQL and one
executemany on SQLite; core.db.refresh_statistics analyzes tables a batch job has grown."""

import time
from datetime import UTC, date, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.exc import IntegrityError

from billfold.catalog.tax_models import TaxRate
from billfold.core import bulk, ids
from billfold.core.db import STATISTICS_GROWTH, is_postgres, refresh_statistics, transaction
from billfold.core.jobs import Job
from billfold.ledger.models import LedgerAccount

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def table(model: Any) -> Table:
    return cast(Table, model.__table__)


def job_row(scope, key: str, payload: Any, kind: str = "test.bulk", **extra: Any
            ) -> dict[str, Any]:
    return {"id": ids.new_id("job"), "tenant_id": scope.tenant_id, "mode": scope.mode,
            "kind": kind, "key": key, "payload": payload, "status": "queued",
            "attempts": 0, "max_attempts": 8, "run_after": NOW, "created_at": NOW, **extra}


def rate_row(scope, name: str, valid_to: date | None) -> dict[str, Any]:
    return {"id": ids.new_id("tax_rate"), "tenant_id": scope.tenant_id, "mode": scope.mode,
            "country": "SE", "region": None, "tax_category": f"bulk-{name}", "percent": "25",
            "name": name, "valid_from": date(2026, 1, 1), "valid_to": valid_to,
            "created_at": NOW}


class TestInsertRows:
    # A few rows go to PostgreSQL as INSERTs, more as COPY: both ways are checked.
    @pytest.mark.parametrize("filler", [0, bulk.FEW_ROWS], ids=["few rows", "many rows"])
    def test_values_read_back_as_an_orm_insert_would_store_them(self, session, scope, filler):
        awkward = "tab\there, newline\nthere, back\\slash, quote ' and \" and \\N"
        kind = f"test.bulk.{filler}"
        with transaction(session):
            bulk.insert_rows(session, table(Job), [
                job_row(scope, "a", {"invoice_id": "inv_1", "nested": [1, "two", None]},
                        kind, last_error=None),
                job_row(scope, awkward, {"text": awkward}, kind, last_error=awkward),
                *(job_row(scope, f"filler {n}", n, kind, last_error=None) for n in range(filler)),
            ])
            bulk.insert_rows(session, table(TaxRate), [
                rate_row(scope, "open", None), rate_row(scope, "closed", date(2026, 12, 31))])

        session.expire_all()
        jobs = {j.key: j for j in session.scalars(select(Job).where(
            Job.tenant_id == scope.tenant_id, Job.kind == kind))}
        assert jobs["a"].payload == {"invoice_id": "inv_1", "nested": [1, "two", None]}
        assert jobs["a"].run_after == NOW
        assert jobs["a"].created_at == NOW
        assert jobs["a"].locked_by is None
        assert jobs["a"].last_error is None
        assert jobs[awkward].payload == {"text": awkward}
        assert jobs[awkward].last_error == awkward
        rates = {r.name: r for r in session.scalars(select(TaxRate).where(
            TaxRate.tenant_id == scope.tenant_id))}
        assert rates["open"].valid_from == date(2026, 1, 1)
        assert rates["open"].valid_to is None
        assert rates["closed"].valid_to == date(2026, 12, 31)
        assert rates["closed"].created_at == NOW

    @pytest.mark.parametrize("filler", [0, bulk.FEW_ROWS], ids=["few rows", "many rows"])
    def test_a_duplicate_key_raises_integrity_error_and_writes_nothing(self, session, scope,
                                                                        filler):
        kind = f"test.bulk.{filler}"
        first = job_row(scope, "dup", {}, kind)
        with transaction(session):
            bulk.insert_rows(session, table(Job), [first])

        with pytest.raises(IntegrityError), transaction(session):
            bulk.insert_rows(session, table(Job), [
                job_row(scope, "fresh", {}, kind),
                *(job_row(scope, f"f{n}", n, kind) for n in range(filler)),
                {**first, "key": "other"}])

        keys = set(session.scalars(select(Job.key).where(Job.tenant_id == scope.tenant_id,
                                                         Job.kind == kind)))
        assert keys == {"dup"}

    @pytest.mark.parametrize("filler", [0, bulk.FEW_ROWS], ids=["few rows", "many rows"])
    def test_rows_whose_key_is_taken_are_skipped_when_asked(self, session, scope, filler):
        kind = f"test.bulk.skip.{filler}"
        with transaction(session):
            bulk.insert_rows(session, table(Job), [job_row(scope, "taken", {"n": 1}, kind)])

        with transaction(session):
            bulk.insert_rows(session, table(Job), [
                job_row(scope, "taken", {"n": 2}, kind, last_error=None),
                job_row(scope, "fresh", {"n": 3}, kind, last_error=None),
                *(job_row(scope, f"f{n}", n, kind, last_error=None) for n in range(filler))],
                skip_conflicts_on=("kind", "key"))

        session.expire_all()
        stored = {j.key: j.payload for j in session.scalars(select(Job).where(
            Job.tenant_id == scope.tenant_id, Job.kind == kind))}
        assert stored.pop("taken") == {"n": 1}  # the first row kept
        assert stored.pop("fresh") == {"n": 3}
        assert stored == {f"f{n}": n for n in range(filler)}

    def test_rows_with_different_keys_are_refused(self, session, scope):
        with pytest.raises(ValueError, match="same keys"):
            bulk.insert_rows(session, table(Job), [
                job_row(scope, "a", {}), job_row(scope, "b", {}, last_error="x")])
        session.rollback()

    def test_a_column_with_a_computed_default_must_be_given(self, session, scope):
        column = table(Job).c.status
        original = column.default
        try:
            from sqlalchemy import ColumnDefault
            column.default = ColumnDefault(lambda: "queued")
            row = job_row(scope, "x", {})
            del row["status"]
            with pytest.raises(ValueError, match=r"job\.status"):
                bulk.insert_rows(session, table(Job), [row])
        finally:
            column.default = original
            session.rollback()


class TestUpdateRows:
    def ledger_accounts(self, session, scope, count: int) -> list[str]:
        rows = [{"id": ids.new_id("ledger_account"), "tenant_id": scope.tenant_id,
                 "mode": scope.mode, "kind": "revenue", "currency": "USD",
                 "billing_account_id": None, "key": f"bulk-{n}", "balance_minor": 100,
                 "created_at": NOW} for n in range(count)]
        with transaction(session):
            bulk.insert_rows(session, table(LedgerAccount), rows)
        return [str(r["id"]) for r in rows]

    def balances(self, session, account_ids: list[str]) -> list[int]:
        session.expire_all()
        found = dict(session.execute(select(LedgerAccount.id, LedgerAccount.balance_minor)
                                     .where(LedgerAccount.id.in_(account_ids))).all())
        return [found[a] for a in account_ids]

    def test_sets_each_row_to_its_value_and_leaves_the_others(self, session, scope):
        first, second, third = self.ledger_accounts(session, scope, 3)
        with transaction(session):
            bulk.update_rows(session, table(LedgerAccount), "balance_minor",
                             [(first, 7), (third, -9)])
        assert self.balances(session, [first, second, third]) == [7, 100, -9]

    def test_adds_to_the_value_with_add(self, session, scope):
        first, second = self.ledger_accounts(session, scope, 2)
        with transaction(session):
            bulk.update_rows(session, table(LedgerAccount), "balance_minor",
                             [(first, 5), (second, -150)], add=True)
        assert self.balances(session, [first, second]) == [105, -50]

    def test_updates_a_date_column(self, session, scope):
        with transaction(session):
            bulk.insert_rows(session, table(TaxRate), [rate_row(scope, "dated", None)])
        rate_id = session.scalar(select(TaxRate.id).where(TaxRate.tenant_id == scope.tenant_id))
        with transaction(session):
            bulk.update_rows(session, table(TaxRate), "valid_to", [(rate_id, date(2027, 6, 30))])
        session.expire_all()
        assert session.get(TaxRate, rate_id).valid_to == date(2027, 6, 30)


class TestRefreshStatistics:
    def test_analyzes_only_tables_grown_past_their_statistics(self, session, scope):
        if not is_postgres(session):
            assert refresh_statistics(session, ["job"]) == []
            return
        refresh_statistics(session, ["job", "tax_rate"])  # whatever earlier tests left
        # Just under the threshold: not yet
        rows = self.grow_jobs(session, scope, "k", beyond_threshold=-50)
        assert refresh_statistics(session, ["job", "tax_rate"]) == []
        # ...and past it
        rows = self.grow_jobs(session, scope, "more", beyond_threshold=50)
        assert refresh_statistics(session, ["job", "tax_rate"]) == ["job"]
        assert refresh_statistics(session, ["job", "tax_rate"]) == []
        analyzed = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'job'"))
        assert analyzed >= rows

        # Updating every row grows nothing: no new statistics (a bill run updates each
        # service and account it bills).
        keys = [k for (k,) in session.execute(select(Job.id).where(
            Job.tenant_id == scope.tenant_id, Job.kind == "test.bulk"))]
        with transaction(session):
            bulk.update_rows(session, table(Job), "attempts", [(k, 1) for k in sorted(keys)])
        self.wait_for_statistics(session, lambda: session.scalar(text(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'job'"
        )) >= len(keys))
        assert refresh_statistics(session, ["job"]) == []

    def test_a_table_another_session_is_analyzing_is_left_to_it(self, session, sessions,
                                                                   scope):
        if not is_postgres(session):
            return
        refresh_statistics(session, ["job"])
        self.grow_jobs(session, scope, "g", beyond_threshold=100)
        with sessions() as other:
            assert other.scalar(text(  # what refresh_statistics takes while it analyzes
                "SELECT pg_try_advisory_xact_lock(hashtext('billfold.analyze'), "
                "hashtext(current_schema() || '.job'))"))
            assert refresh_statistics(session, ["job"]) == []
            other.rollback()
        assert refresh_statistics(session, ["job"]) == ["job"]

    def grow_jobs(self, session, scope, prefix: str, *, beyond_threshold: int) -> int:
        """Insert jobs until the table holds ``beyond_threshold`` rows more than
        refresh_statistics' threshold (fewer, if negative); the rows it then holds."""
        known = max(0, session.scalar(text(
            "SELECT reltuples FROM pg_class WHERE relname = 'job'")))
        live = session.scalar(text("SELECT count(*) FROM job"))
        count = max(0, int(1000 + STATISTICS_GROWTH * known) + beyond_threshold - live)
        with transaction(session):
            bulk.insert_rows(session, table(Job), [job_row(scope, f"{prefix}{n}", {})
                                                   for n in range(count)])
        self.wait_for_statistics(session, lambda: session.scalar(text(
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'job'"))
            >= live + count)
        return live + count

    @staticmethod
    def wait_for_statistics(session, reported) -> None:
        # A backend reports its modifications when it goes idle, at most once a second.
        for _ in range(150):
            done = reported()
            session.commit()
            if done:
                return
            time.sleep(0.1)
        raise AssertionError("the statistics never showed the change")
