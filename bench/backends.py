"""Fresh, migrated databases for one benchmark run, removed afterwards whatever happens."""

from __future__ import annotations

import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from billfold.core.db import normalise_url
from billfold.core.migrate import upgrade

BACKENDS = ("sqlite", "postgres")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AUTOVACUUM_NAPTIME_SECONDS = 60  # PostgreSQL's default autovacuum_naptime


@contextmanager
def fresh_database(backend: str, postgres_url: str) -> Iterator[str]:
    """Yield the URL of an empty database at the latest migration."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="billfold_bench_") as tmp:
            url = f"sqlite:///{Path(tmp) / 'billfold.db'}"
            upgrade(url)
            yield url
        return
    name = f"billfold_bench_{secrets.token_hex(6)}"
    admin = _admin_engine(postgres_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
            upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.dispose()


@contextmanager
def autovacuum_stand_in(url: str) -> Iterator[bool]:
    """On a PostgreSQL server with autovacuum off, ANALYZE the database once a minute while
    the block runs, as autovacuum would on any normally configured server: without
    statistics the planner looks a number up by scanning all of a tenant's rows, and a
    benchmark would measure that instead of Billfold. Yields whether it stands in."""
    if not url.startswith("postgres") or _setting(url, "autovacuum") != "off":
        yield False
        return
    stop = threading.Event()

    def analyze() -> None:
        engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
        try:
            while not stop.wait(AUTOVACUUM_NAPTIME_SECONDS):
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
        finally:
            engine.dispose()

    thread = threading.Thread(target=analyze, name="autovacuum-stand-in", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join(timeout=AUTOVACUUM_NAPTIME_SECONDS)


def settle_statistics(engine: Engine) -> None:
    """What autovacuum would have done by now in a live database, after a benchmark loads
    its data and before it measures: on PostgreSQL, VACUUM ANALYZE. Without statistics the
    planner guesses at freshly loaded tables: it looked an invoice up by its key through
    an index on (tenant, mode, ...) and filtered a tenant's 3,000 rows (3.3 ms instead of
    0.02; EXPLAIN ANALYZE), and the first minute of a run measured that."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def postgres_version(postgres_url: str) -> str | None:
    """The server's version string, or None when no server answers."""
    return _setting(postgres_url, "server_version")


def postgres_autovacuum(postgres_url: str) -> str | None:
    return _setting(postgres_url, "autovacuum")


def _setting(url: str, name: str) -> str | None:
    try:
        admin = _admin_engine(url)
        try:
            with admin.connect() as conn:
                return str(conn.exec_driver_sql(f"SHOW {name}").scalar_one())
        finally:
            admin.dispose()
    except Exception:
        return None


def _admin_engine(postgres_url: str) -> Engine:
    return create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
