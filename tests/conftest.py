"""Shared fixtures. The suite runs once on SQLite and once on PostgreSQL
(BILLFOLD_TEST_DATABASE=sqlite|postgres); each run migrates a fresh database with Alembic
and every test works in a tenant of its own, so tests never see each other's rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import api_keys
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker, normalise_url, transaction
from billfold.core.migrate import upgrade
from billfold.core.scope import Scope
from billfold.tenants import service as tenants

BACKEND = os.environ.get("BILLFOLD_TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get("BILLFOLD_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    skip = pytest.mark.skip(reason="needs PostgreSQL (BILLFOLD_TEST_DATABASE=postgres)")
    for item in items:
        if "postgres_only" in item.keywords and BACKEND != "postgres":
            item.add_marker(skip)


def _admin_engine() -> Engine:
    return create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")


@contextmanager
def migrated_database(tmp_dir: Path) -> Iterator[str]:
    """A freshly migrated database of the backend under test, dropped afterwards."""
    if BACKEND == "sqlite":
        url = f"sqlite:///{tmp_dir / 'billfold.db'}"
        upgrade(url)
        yield url
        return
    name = f"billfold_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own, for tests that must see the whole database
    (ledger verify, the demo, CLI runs) or that deliberately break it."""
    with migrated_database(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def make_scope(sessions: sessionmaker[Session]) -> Any:
    """A factory of fresh tenants; returns the test-mode scope of each."""

    def make(name: str = "Test Biller", mode: str = "test", **settings: Any) -> Scope:
        from billfold.customers import settings as settings_service

        with sessions() as s, transaction(s):
            tenant = tenants.create_tenant(s, name=name)
            scope = Scope(tenant.id, mode)  # type: ignore[arg-type]
            if settings:
                settings_service.update_settings(s, scope, settings)
        return scope

    return make


@pytest.fixture
def scope(make_scope: Any) -> Scope:
    return make_scope()


class Reference:
    """Reference data every billing account needs: a bill cycle, category and term."""

    def __init__(self, session: Session, scope: Scope) -> None:
        with transaction(session):
            self.cycle = tenants.create_bill_cycle(
                session, scope, name="Monthly", currency=None, frequency="monthly",
                bill_day=1, start_date=date(2026, 1, 1))
            self.category = tenants.create_account_category(session, scope, name="Standard")
            self.term = tenants.create_payment_term(session, scope, name="Net 30", net_days=30)

    def account(self, currency: str = "USD", **extra: Any) -> dict[str, Any]:
        return {"currency": currency, "bill_cycle_id": self.cycle.id,
                "start_date": date(2026, 2, 1), "account_category_id": self.category.id,
                "invoice_type": "email", **extra}

    def customer(self, name: str = "Acme Brick", **extra: Any) -> dict[str, Any]:
        account = extra.pop("billing_account", None) or self.account()
        return {"company_name": name, "primary_email": "billing@acme.example",
                "billing_account": account, **extra}


@pytest.fixture
def ref(session: Session, scope: Scope) -> Reference:
    return Reference(session, scope)


# -- HTTP ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from billfold.web.app import create_app

    data_dir = Path(tmp_path_factory.mktemp("data"))
    return create_app(Settings(database_url=str(engine.url), data_dir=data_dir), engine)


@pytest.fixture
def make_client(app: Any, sessions: sessionmaker[Session]) -> Any:
    """A factory of HTTP clients, each authenticated as a fresh tenant (or a given one)."""
    from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def make(scope: Scope | None = None, mode: str = "test", **settings: Any) -> TestClient:
        from billfold.customers import settings as settings_service

        with sessions() as s, transaction(s):
            if scope is None:
                tenant = tenants.create_tenant(s, name="HTTP Biller")
                scope = Scope(tenant.id, mode)  # type: ignore[arg-type]
            if settings:
                settings_service.update_settings(s, scope, settings)
            secret = api_keys.create_api_key(s, tenant_id=scope.tenant_id, mode=scope.mode).secret
        client = TestClient(app, raise_server_exceptions=False)
        client.headers["Authorization"] = f"Bearer {secret}"
        client.scope = scope  # type: ignore[attr-defined]
        client.secret = secret  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Any) -> Any:
    return make_client()


def seed_reference(client: Any, currency: str | None = None) -> dict[str, str]:
    """Create a bill cycle, category and payment term through the API."""
    cycle = client.post("/v1/bill_cycles", json={
        "name": "Monthly", "currency": currency, "frequency": "monthly", "bill_day": 1,
        "start_date": "2026-01-01"})
    assert cycle.status_code == 201, cycle.text
    category = client.post("/v1/account_categories", json={"name": "Standard"})
    term = client.post("/v1/payment_terms", json={"name": "Net 30", "net_days": 30})
    return {"bill_cycle_id": cycle.json()["id"], "account_category_id": category.json()["id"],
            "payment_term_id": term.json()["id"]}


def account_body(ids: dict[str, str], currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return {"currency": currency, "bill_cycle_id": ids["bill_cycle_id"],
            "start_date": "2026-02-01", "account_category_id": ids["account_category_id"],
            "invoice_type": "email", **extra}


def customer_body(ids: dict[str, str], name: str = "Acme Brick", **extra: Any) -> dict[str, Any]:
    account = extra.pop("billing_account", None) or account_body(ids)
    return {"company_name": name, "primary_email": "billing@acme.example",
            "billing_account": account, **extra}
