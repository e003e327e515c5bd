"""A PostgreSQL connection that dies in the pool (a database restart, a failover) costs at
most one request a 503, with nothing written; the pool then reconnects. Connections used
a moment ago are lent without a ping (core/db.py), so this is the price of that saving."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from billfold.access import api_keys
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.tenants import service as tenants
from billfold.web.app import create_app

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def own_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    engine = make_engine(database_url)  # a pool of its own: only its backends are ended
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path), engine)
    with make_sessionmaker(engine)() as s, transaction(s):
        tenant = tenants.create_tenant(s, name="Restart Biller")
        secret = api_keys.create_api_key(s, tenant_id=tenant.id, mode="test").secret
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client, engine
    engine.dispose()


def test_dead_pooled_connections_cost_one_503_then_the_pool_reconnects(own_app, engine):
    client, own_engine = own_app
    for _ in range(3):
        assert client.get("/v1/customers").status_code == 200
    assert own_engine.pool.checkedin() == 1  # one request at a time: one connection
    with own_engine.connect() as probe:
        own_pid = probe.scalar(text("SELECT pg_backend_pid()"))
    with engine.connect() as killer:  # the suite's own pool: a different backend
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": own_pid})
        killer.commit()

    answers = [client.get("/v1/customers") for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 200, 200, 200]
    assert answers[0].json()["code"] == "database_unavailable"
