"""Assertions shared by the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

PROBLEM = "application/problem+json"

# The list endpoints whose contents prove whether a request wrote anything.
WATCHED_LISTS = ("/v1/customers", "/v1/billing_accounts", "/v1/bill_cycles",
                 "/v1/account_categories", "/v1/payment_terms", "/v1/custom_fields")


def assert_problem(response: Any, status: int, code: str | None = None,
                   field: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` (and ``code``, and an error entry
    naming ``field``); returns the problem document."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, body
    return body


def list_ids(client: Any, path: str, **params: Any) -> list[str]:
    """Every id a list endpoint shows, following ``has_more`` across pages."""
    ids: list[str] = []
    while True:
        page_params = {"limit": 100, **params}
        if ids:
            page_params["starting_after"] = ids[-1]
        response = client.get(path, params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids.extend(item["id"] for item in page["data"])
        if not page["has_more"]:
            return ids


def snapshot(client: Any) -> dict[str, list[str]]:
    """The ids of everything the tenant has in the watched lists."""
    return {path: list_ids(client, path) for path in WATCHED_LISTS}


def database_of_its_own(**settings: Any) -> tuple[Any, Any, Any]:
    """Module-scoped ``engine``, ``sessions`` and ``app`` fixtures on a database of the
    module's own, for modules that run the worker (it claims every due job in its
    database): ``engine, sessions, app = database_of_its_own()``. ``settings`` go to the
    app's Settings. ``make_client`` serves the module's app from its engine."""
    import pytest

    from billfold.core.config import Settings
    from billfold.core.db import make_engine, make_sessionmaker
    from tests.conftest import migrated_database

    @pytest.fixture(scope="module")
    def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
        with migrated_database(tmp_path_factory.mktemp("db")) as url:
            made = make_engine(url)
            yield made
            made.dispose()

    @pytest.fixture(scope="module")
    def sessions(engine: Engine) -> sessionmaker[Session]:
        return make_sessionmaker(engine)

    @pytest.fixture(scope="module")
    def app(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Any:
        from billfold.web.app import create_app

        data_dir = Path(tmp_path_factory.mktemp("data"))
        return create_app(Settings(database_url=str(engine.url), data_dir=data_dir,
                                   **settings), engine)

    return engine, sessions, app
