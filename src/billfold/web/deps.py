"""Dependencies every route uses: a database session and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from billfold.access import api_keys
from billfold.core.errors import Unauthorized, invalid
from billfold.core.scope import Scope
from billfold.web.middleware import GRANT, api_key_of, request_session

# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` dependency in a
# worker thread, and each such hand-over (to the thread and back) costs more than what
# these do. What touches the database stays in threads.


def nul_parameter(path_params: dict[str, Any], query_string: bytes) -> str | None:
    """The name of a path or query parameter holding a NUL character, if one does (its
    own name, when the NUL is in the name): PostgreSQL cannot even compare text holding
    one, so such a request is refused before it reaches a route (routing.Router)."""
    for name, value in path_params.items():
        if "\x00" in str(value):
            return name
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\0") or "(unnamed parameter)"
    return None


async def get_db(request: Request) -> Session:
    """A session for the request (see request_session). Creating one does no I/O."""
    return request_session(request)


DbSession = Annotated[Session, Depends(get_db)]


class Caller:
    """Who is calling: the tenant and mode an API key grants, and the actor that changes
    are recorded as.

    The key is looked up in the route's own worker thread, in the transaction the route
    goes on to use (Router.in_thread checks it before the route runs): a request then
    makes one trip to a worker thread, not two, and on SQLite holds the writer's lock only
    while its route works. A request refused before it reaches its route (a body or
    parameter that fails validation) has its key checked first all the same, so a bad key
    is a 401 whatever else is wrong (problems.py)."""

    __slots__ = ("_db", "_grant", "_scope", "_secret", "actor")

    def __init__(self, db: Session, secret: str, grant: api_keys.Grant | None = None) -> None:
        self._db, self._secret, self._grant = db, secret, grant
        self._scope: Scope | None = None
        self.actor = f"api_key:{api_keys.hint_of(secret)}"

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self.verify()
        assert self._scope is not None
        return self._scope

    @property
    def verified(self) -> bool:
        return self._scope is not None

    def verify(self, session: Session | None = None) -> None:
        """Look the key up (in ``session``, or the request's own); Unauthorized if it
        grants nothing. Database work: call it in a worker thread. A key that RequestGuard
        looked up for this request's Idempotency-Key is not looked up again: its grant,
        read a moment before, is adopted."""
        if self._scope is None:
            if self._grant is not None:
                self._scope = api_keys.adopt(session or self._db, self._grant)
            else:
                self._scope = api_keys.authenticate(session or self._db, self._secret)


def _caller(request: Request, db: Session) -> Caller:
    secret = api_key_of(request.headers.get("authorization", ""))
    if secret is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer bf_test_…' (or Basic "
                           "with the base64 of the key)")
    granted = request.scope.get(GRANT)
    if granted is not None and granted[0] == secret:
        return Caller(db, secret, granted[1])
    return Caller(db, secret)


async def get_caller(request: Request) -> Caller:
    """The caller, its key not yet looked up (see Caller), to be looked up in the request's
    own session. A request with no key at all is refused here, before anything else is
    checked."""
    caller = _caller(request, request_session(request))
    request.state.unverified_caller = caller
    return caller


def caller_of(request: Request, db: Session) -> Caller:
    """The caller of a route that reads its key itself, checked at once."""
    caller = _caller(request, db)
    caller.verify()
    return caller


ApiCaller = Annotated[Caller, Depends(get_caller)]


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    starting_after: str | None


async def get_page(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")] = 10,
    starting_after: Annotated[str | None, Query(max_length=40,
                              description="Id of the last object of the previous page")] = None,
) -> Page:
    if starting_after is not None and not starting_after.replace("_", "").isalnum():
        raise invalid("starting_after", "must be an object id")
    return Page(limit, starting_after)


Pagination = Annotated[Page, Depends(get_page)]


def paged(items: list[object], page: Page) -> dict[str, object]:
    return {"data": items[: page.limit], "has_more": len(items) > page.limit}
