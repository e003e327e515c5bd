"""The router every Billfold route is declared on.

FastAPI finds a request's route by asking each included router in turn, and each router
tries every one of its routes: a request for a route near the end of the application tried
all ~140 routes before it (about 0.2 ms a request, a fifth of what creating a pay session
costs in all). ``Router`` first compares the path with the literal beginnings of its
routes' paths — ``/v1/pay_sessions`` for ``/v1/pay_sessions/{session_id}`` — and answers
"no match" at once when none fits, so a request tries only the routes that could be its
own. A Router is included in the application without a prefix (its routes' paths are
whole paths); a router included in a Router is covered by that one's check.

A request whose path or query parameters hold a NUL character is refused as it is matched
to its route (deps.nul_parameter): checked here, it costs no dependency per request.

It also runs each plain ``def`` route in a worker thread itself. FastAPI would do that too,
and then check the result against the response model in a second trip to a thread: each
trip costs 0.1-0.2 ms of CPU here, as much as the database work of a simple request.
Declared through ``Router``, a route makes one trip, and its result is checked on the event
loop, where checking a few fields costs less than the trip. The caller's API key is looked
up in that same trip, before the route runs (deps.Caller).

Its routes are ``LeanRoute``s (see there): a request whose route takes only a JSON body and
dependencies made from the request alone skips FastAPI's general request handling."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Coroutine
from inspect import iscoroutinefunction
from typing import Any, TypeVar, cast

from fastapi import APIRouter, params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _effective_route_context_var, serialize_response
from fastapi.telemetry import get_telemetry_data
from fastapi.utils import is_body_allowed_for_status_code
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from billfold.core import db
from billfold.core.errors import invalid
from billfold.web import workers
from billfold.web.deps import Caller, nul_parameter

T = TypeVar("T")


class LeanRoute(APIRoute):
    """A route that serves its ordinary requests without FastAPI's general request
    handling, which for a small JSON request cost about as much as the route's own work
    (it asks every route what it might need — forms, streams, background tasks, a
    ``Response`` parameter, dependency scopes — on every request, and parses the
    Content-Type header with the email package).

    It applies when the route takes a JSON body model (or no body) and dependencies that
    are coroutines of the request alone (``get_db``, ``get_caller``), and no path, query,
    header or cookie parameters. Then a request that declares ``application/json`` and
    whose body parses and validates is served here, its result checked against the
    response model and serialized as FastAPI would; any other request — no or another
    Content-Type, bad JSON, a body that fails validation, dependency overrides set,
    FastAPI's telemetry collecting — goes to FastAPI's own handler, which reads the body
    the request already holds, so every error is FastAPI's exactly
    (tests/web/test_routing.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fallback = super().get_route_handler()
        # Included in an application, a route's handler is built for the inclusion (its
        # prefix, dependencies and overrides): FastAPI says which through a context var.
        route: Any = self
        context = _effective_route_context_var.get()
        if context is not None and context.original_route is self:
            route = context
        if not _lean_enough(route):
            return fallback
        dependant: Dependant = route.dependant
        endpoint = cast(Callable[..., Coroutine[Any, Any, Any]], dependant.call)
        body_field = route.body_field
        body_name: str = body_field.name if body_field is not None else ""
        needs: list[tuple[str | None, Callable[[Request], Coroutine[Any, Any, Any]]]] = [
            (d.name, cast(Any, d.call)) for d in dependant.dependencies]
        request_name = dependant.request_param_name
        overrides = route.dependency_overrides_provider
        status_code = route.status_code
        response_field = route.response_field
        dump = {"include": route.response_model_include,
                "exclude": route.response_model_exclude,
                "by_alias": route.response_model_by_alias,
                "exclude_unset": route.response_model_exclude_unset,
                "exclude_defaults": route.response_model_exclude_defaults,
                "exclude_none": route.response_model_exclude_none}

        async def handle(request: Request) -> Response:
            if (overrides is not None and getattr(overrides, "dependency_overrides", None)) \
                    or get_telemetry_data() is not None:
                return await fallback(request)
            values: dict[str, Any] = {}
            if body_field is not None:
                if request.headers.get("content-type") != "application/json":
                    return await fallback(request)
                raw = await request.body()  # held in memory by RequestGuard: cannot fail
                try:
                    parsed = json.loads(raw)
                except Exception:  # as FastAPI: bad JSON, or nested past the recursion limit
                    return await fallback(request)
                value, errors = body_field.validate(parsed, {}, loc=("body",))
                if errors:
                    return await fallback(request)
                values[body_name] = value
            for name, call in needs:
                made = await call(request)
                if name is not None:
                    values[name] = made
            if request_name is not None:
                values[request_name] = request
            result = await endpoint(**values)
            if isinstance(result, Response):
                return result
            content = await serialize_response(field=response_field, response_content=result,
                                               dump_json=response_field is not None, **dump)
            if response_field is None:
                return JSONResponse(content, status_code=status_code or 200)
            return Response(content, status_code=status_code or 200,
                            media_type="application/json")

        return handle


def _lean_enough(route: Any) -> bool:
    """Whether LeanRoute's short handler serves every parameter ``route`` declares."""
    dependant: Dependant = route.dependant
    if not iscoroutinefunction(dependant.call) or route.is_json_stream \
            or getattr(route, "stream_item_field", None) is not None:
        return False
    if not is_body_allowed_for_status_code(route.status_code):
        return False
    response_class = route.response_class
    if not isinstance(response_class, DefaultPlaceholder) \
            or response_class.value is not JSONResponse:
        return False
    if dependant.path_params or dependant.query_params or dependant.header_params \
            or dependant.cookie_params or dependant.response_param_name \
            or dependant.background_tasks_param_name or dependant.security_scopes_param_name \
            or dependant.websocket_param_name or dependant.http_connection_param_name:
        return False
    if dependant.body_params and (
            len(dependant.body_params) != 1 or route._embed_body_fields
            or isinstance(route.body_field.field_info, params.Form)
            or not route.body_field.field_info.is_required()):
        return False
    calls = [d.call for d in dependant.dependencies]
    return len(set(calls)) == len(calls) \
        and all(_of_the_request_alone(d) for d in dependant.dependencies)


def _of_the_request_alone(dependency: Dependant) -> bool:
    """A dependency that is a coroutine function of the request and nothing else."""
    return (iscoroutinefunction(dependency.call) and dependency.request_param_name is not None
            and not dependency.dependencies and not dependency.path_params
            and not dependency.query_params and not dependency.header_params
            and not dependency.cookie_params and not dependency.body_params
            and dependency.response_param_name is None
            and dependency.background_tasks_param_name is None
            and dependency.security_scopes_param_name is None
            and list(inspect.signature(dependency.call).parameters)
            == [dependency.request_param_name])


class Router(APIRouter):
    _beginnings: tuple[str, ...] = ()
    _counted = -1
    _included_in_router = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", LeanRoute)
        super().__init__(*args, **kwargs)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not iscoroutinefunction(endpoint):
            endpoint = in_thread(endpoint)
        super().add_api_route(path, endpoint, **kwargs)

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        # An included router's paths begin with this router's prefix and the prefix it is
        # included with, which its own routes do not show: this router's check covers it.
        if isinstance(router, Router):
            router._included_in_router = True
        super().include_router(router, *args, **kwargs)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not self._included_in_router \
                and not get_route_path(scope).startswith(self.beginnings()):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is Match.FULL:
            refused = nul_parameter(child_scope.get("path_params", {}),
                                    scope.get("query_string", b""))
            if refused is not None:
                raise invalid(refused, "may not contain NUL characters")
        return match, child_scope

    def beginnings(self) -> tuple[str, ...]:
        """The literal beginnings of this router's paths (worked out again if routes were
        added since). A route of another kind, or a router included here, stands for the
        router's own prefix: every path it serves begins with that."""
        if self._counted != len(self.routes):
            found = set()
            for route in self.routes:
                path = route.path if isinstance(route, APIRoute | Route) else self.prefix
                found.add(path.split("{", 1)[0])
            # A beginning that another one begins with adds nothing.
            self._beginnings = tuple(sorted(b for b in found if not any(
                b != other and b.startswith(other) for other in found)))
            self._counted = len(self.routes)
        return self._beginnings


_ONE_WRITE = "__billfold_one_write__"


def one_write(endpoint: Callable[..., T]) -> Callable[..., T]:
    """Mark a route whose work, the caller's key lookup included, writes with a single
    statement: its request's session (the ``db`` parameter) runs without a transaction
    (``db.one_write``), set so before the key is looked up. A plain ``def`` route, declared
    under the router's decorator."""
    if iscoroutinefunction(endpoint) or "db" not in inspect.signature(endpoint).parameters:
        raise TypeError(f"{endpoint.__name__}: a one_write route is a plain def taking db")
    setattr(endpoint, _ONE_WRITE, True)
    return endpoint


def in_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as a coroutine function that runs it in a worker thread, the caller's
    API key checked there first. FastAPI reads the parameters through ``__wrapped__``, so
    the route is declared exactly as before."""
    single = getattr(endpoint, _ONE_WRITE, False)

    def checked(*args: Any, **kwargs: Any) -> Any:
        if single:
            db.one_write(kwargs["db"])
        for value in kwargs.values():
            if isinstance(value, Caller):
                value.verify()
        return endpoint(*args, **kwargs)

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await workers.run_sync(functools.partial(checked, *args, **kwargs))

    return run
