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
up in that same trip, before the route runs (deps.Caller)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import Match, Route
from starlette.types import Scope

from billfold.core.errors import invalid
from billfold.web.deps import Caller, nul_parameter


class Router(APIRouter):
    _beginnings: tuple[str, ...] = ()
    _counted = -1
    _included_in_router = False

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


def in_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as a coroutine function that runs it in a worker thread, the caller's
    API key checked there first. FastAPI reads the parameters through ``__wrapped__``, so
    the route is declared exactly as before."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        for value in kwargs.values():
            if isinstance(value, Caller):
                value.verify()
        return endpoint(*args, **kwargs)

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await to_thread.run_sync(functools.partial(checked, *args, **kwargs))

    return run
