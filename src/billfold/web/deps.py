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


@dataclass(frozen=True, slots=True)
class Caller:
    scope: Scope
    actor: str


def get_caller(request: Request, db: DbSession) -> Caller:
    secret = api_key_of(request.headers.get("authorization", ""))
    if secret is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer bf_test_…' (or Basic "
                           "with the base64 of the key)")
    # The lookup opens the transaction the route goes on to use (and commits), so a
    # request costs one transaction, and on SQLite one turn at the writer's lock.
    scope = api_keys.authenticate(db, secret)
    return Caller(scope, actor=f"api_key:{api_keys.hint_of(secret)}")


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
