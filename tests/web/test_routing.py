"""web/routing.Router: its shortcut past routers that cannot serve a path never hides a
route, and its routes run in one worker thread and still check their responses."""

from __future__ import annotations

import re
import threading
from typing import Annotated, Any, ClassVar

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute, _IncludedRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match

from billfold.web.routing import Router, one_write


def _declared(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route of the application, routers included in routers too."""
    found = []
    for route in routes:
        if isinstance(route, _IncludedRouter):
            found += _declared(route.original_router.routes, route.include_context.prefix)
        elif isinstance(route, APIRoute):
            found += [(method, prefix + route.path) for method in sorted(route.methods)]
    return found


def _served(app: Any, method: str, path: str) -> bool:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
             "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def _concrete(path: str) -> str:
    """A path the route's template matches, its parameters filled in."""
    return re.sub(r"\{[^}]*:path\}", "a/b", re.sub(r"\{[^}:]*\}", "x1", path))


def test_every_declared_route_is_still_found(app):
    declared = _declared(app.router.routes)
    assert len(declared) > 100
    for method, path in declared:
        assert _served(app, method, _concrete(path)), f"{method} {path}"


def test_no_path_is_served_by_two_routers(app):
    # create_app includes the payments routers first, to be asked first: that changes
    # nothing else only while no router's route matches a path another router serves.
    routes = [(number, method, path) for number, route in enumerate(app.router.routes)
              if isinstance(route, _IncludedRouter)
              for method, path in _declared([route])]
    assert len(routes) > 100

    def pattern(path: str) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^}:]*:path\}", ".+",
                                       re.sub(r"\{[^}:]*\}", "[^/]+", path)) + "$")

    shared = [(path, other) for router, method, path in routes
              for other_router, other_method, other in routes
              if router != other_router and method == other_method
              and pattern(path).match(_concrete(other))]
    assert shared == []


def test_a_path_no_router_serves_matches_nothing(app):
    assert not _served(app, "GET", "/v1/no_such_things")
    assert not _served(app, "GET", "/portalx/invoices")


def test_a_plain_route_runs_in_one_worker_thread_and_its_result_is_checked():
    class Out(BaseModel):
        value: int

    threads: list[str] = []
    router = Router(prefix="/v1")

    @router.get("/things/{thing}", response_model=Out)
    def get_thing(thing: int, extra: str = "e") -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"value": thing, "not_in_the_model": extra}

    application = FastAPI()
    application.include_router(router)
    with TestClient(application) as http:
        response = http.get("/v1/things/7", params={"extra": "z"})
        assert response.status_code == 200
        # Fields outside the response model are dropped: the result was checked.
        assert response.json() == {"value": 7}
        assert http.get("/v1/things/seven").status_code == 422
        assert http.get("/v2/things/7").status_code == 404
    assert threads
    assert threads[0] != threading.main_thread().name
    # The function itself stays a plain function for callers outside HTTP.
    assert get_thing(3) == {"value": 3, "not_in_the_model": "e"}


def test_one_write_is_declared_on_a_plain_route_taking_db():
    def create(db: Any) -> None: ...

    async def create_async(db: Any) -> None: ...

    def create_without(session: Any) -> None: ...

    assert one_write(create) is create
    with pytest.raises(TypeError, match="plain def taking db"):
        one_write(create_async)
    with pytest.raises(TypeError, match="plain def taking db"):
        one_write(create_without)


def test_every_request_gives_its_database_connection_back(client, engine):
    # The request's session is made by its dependencies and closed by RequestGuard once
    # the response is sent, whatever the outcome; a read that never committed included.
    requests = [
        ("GET", "/v1/customers", None, 200),
        ("POST", "/v1/customers", {"company_name": "Acme"}, 422),  # no billing account
        ("POST", "/v1/pay_sessions", {"invoices": "none"}, 422),
        ("GET", "/v1/customers/cus_missing", None, 404),
        ("GET", "/v1/customers/cus_%00", None, 422),
        ("GET", "/v1/nowhere", None, 404),
        ("GET", "/pay/not-a-token", None, 404),
        ("GET", "/healthz", None, 200),
    ]
    for method, path, body, status in requests:
        response = client.request(method, path, json=body)
        assert response.status_code == status, (path, response.text)
        assert engine.pool.checkedout() == 0, path
    client.headers["Authorization"] = "Bearer bf_test_unknown"
    assert client.get("/v1/customers").status_code == 401
    assert engine.pool.checkedout() == 0


class _In(BaseModel):
    name: str
    count: int = 1


class _Out(BaseModel):
    name: str
    count: int
    caller: str


async def _caller(request: Request) -> str:
    return request.headers.get("x-caller", "nobody")


def _things_app(router: APIRouter) -> FastAPI:
    @router.post("/things", response_model=_Out, status_code=201)
    def make_thing(body: _In, who: Annotated[str, Depends(_caller)]) -> dict[str, Any]:
        return {"name": body.name, "count": body.count, "caller": who, "dropped": True}

    @router.post("/things/search", response_model=_Out)
    def search(body: _In, limit: int = 5) -> dict[str, Any]:
        return {"name": body.name, "count": limit, "caller": "q"}

    application = FastAPI()
    application.include_router(router)
    return application


class TestLeanRoute:
    """Router's LeanRoute serves an ordinary JSON request past FastAPI's general handling,
    and leaves every other request to it: what a client sees must not differ."""

    REQUESTS: ClassVar[list[tuple[str, bytes, str | None]]] = [
        ("/things", b'{"name": "a", "count": 2}', "application/json"),
        ("/things", b'{"name": "a"}', "application/json; charset=utf-8"),
        ("/things", b'{"name": "a"}', None),
        ("/things", b'{"name": "a"}', "text/plain"),
        ("/things", b'{"count": "many"}', "application/json"),
        ("/things", b'{"name": 5}', "application/json"),
        ("/things", b'["name"]', "application/json"),
        ("/things", b'{"name": "a",}', "application/json"),
        ("/things", b"", "application/json"),
        ("/things", b"[" * 100_000 + b"]" * 100_000, "application/json"),
        ("/things", b'{"name": "\xff"}', "application/json"),
        ("/things/search?limit=9", b'{"name": "s"}', "application/json"),
    ]

    def test_every_request_is_answered_as_fastapi_would(self):
        from fastapi import APIRouter as Plain

        answers = []
        for router in (Router(), Plain()):
            with TestClient(_things_app(router), raise_server_exceptions=False) as http:
                answers.append([_answer(http, path, body, kind)
                                for path, body, kind in self.REQUESTS])
        lean, plain = answers
        for request, mine, theirs in zip(self.REQUESTS, lean, plain, strict=True):
            assert mine == theirs, request
        assert lean[0] == (201, "application/json", {"name": "a", "count": 2,
                                                     "caller": "nobody"})

    def test_only_what_it_cannot_serve_goes_to_fastapis_handler(self, monkeypatch):
        solved = _count_solving(monkeypatch)
        application = _things_app(Router())
        with TestClient(application) as http:
            assert http.post("/things", json={"name": "a"}, headers={"x-caller": "c"}).json() \
                == {"name": "a", "count": 1, "caller": "c"}
            assert solved == []
            http.post("/things", content=b'{"name": "a"}',
                      headers={"content-type": "application/json; charset=utf-8"})
            assert len(solved) == 1  # another Content-Type
            http.post("/things", json={"count": 1})
            assert len(solved) == 2  # fails validation: FastAPI's error
            http.post("/things/search", json={"name": "a"})
            assert len(solved) == 3  # a query parameter: never lean
            application.dependency_overrides[_caller] = lambda: "override"
            assert http.post("/things", json={"name": "a"}).json()["caller"] == "override"
            assert len(solved) == 4

    def test_the_api_routes_are_lean(self, client, monkeypatch):
        solved = _count_solving(monkeypatch)
        assert client.get("/v1/settings").status_code == 200
        missing = client.post("/v1/pay_sessions", json={"invoices": [{"invoice_id": "inv_" + "0" * 32}]})
        assert missing.status_code == 422, missing.text  # the service's answer
        assert solved == []


def _answer(http: TestClient, path: str, body: bytes, kind: str | None
            ) -> tuple[int, str, Any]:
    headers = {"content-type": kind} if kind else {}
    response = http.post(path, content=body, headers=headers)
    content_type = response.headers.get("content-type", "")
    return (response.status_code, content_type,
            response.json() if content_type == "application/json" else response.text)


def _count_solving(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import fastapi.routing

    solved: list[int] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return solved
