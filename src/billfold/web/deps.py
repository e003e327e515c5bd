"""Dependencies every route uses: a database session and the authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from billfold.access import api_keys
from billfold.core.errors import Unauthorized, invalid
from billfold.core.scope import Scope
from billfold.web.middleware import api_key_of

# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` dependency in a
# worker thread, and each such hand-over (to the thread and back) costs more than what
# these do. What touches the database stays in threads.


async def reject_nul_parameters(request: Request) -> None:
    """Refuse a NUL character in any path or query parameter: PostgreSQL cannot even
    compare text holding one, so it would otherwise surface as a 500."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in name or "\x00" in str(value):
            raise invalid(name.replace("\x00", "\\0") or "(unnamed parameter)",
                          "may not contain NUL characters")


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session for the request. Creating one does no I/O; closing one that still holds
    a transaction (a read that never committed) rolls it back, in a worker thread."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await to_thread.run_sync(session.close)
        else:
            session.close()


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

    __slots__ = ("_db", "_scope", "_secret", "actor")

    def __init__(self, db: Session, secret: str) -> None:
        self._db, self._secret = db, secret
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
        grants nothing. Database work: call it in a worker thread."""
        if self._scope is None:
            self._scope = api_keys.authenticate(session or self._db, self._secret)


def _caller(request: Request, db: Session) -> Caller:
    secret = api_key_of(request.headers.get("authorization", ""))
    if secret is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer bf_test_…' (or Basic "
                           "with the base64 of the key)")
    return Caller(db, secret)


async def get_caller(request: Request, db: DbSession) -> Caller:
    """The caller, its key not yet looked up (see Caller). A request with no key at all is
    refused here, before anything else is checked."""
    caller = _caller(request, db)
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
