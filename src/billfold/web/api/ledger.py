"""/v1/ledger: read-only views of ledger accounts and entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from billfold.ledger import service as ledger
from billfold.web.api import schemas as s
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1/ledger", tags=["ledger"])


@router.get("/accounts", response_model=s.page_of(s.LedgerAccountOut))
def list_accounts(db: DbSession, caller: ApiCaller, page: Pagination,
                  billing_account_id: Annotated[str | None, Query(max_length=40)] = None
                  ) -> dict[str, object]:
    rows = ledger.list_accounts(db, caller.scope, limit=page.limit + 1,
                                starting_after=page.starting_after,
                                billing_account_id=billing_account_id)
    return paged(rows, page)  # type: ignore[arg-type]


@router.get("/entries", response_model=s.page_of(s.LedgerEntryOut))
def list_entries(db: DbSession, caller: ApiCaller, page: Pagination,
                 source_type: Annotated[str | None, Query(max_length=40)] = None,
                 source_id: Annotated[str | None, Query(max_length=80)] = None
                 ) -> dict[str, object]:
    entries = ledger.list_entries(db, caller.scope, limit=page.limit + 1,
                                  starting_after=page.starting_after, source_type=source_type,
                                  source_id=source_id)
    postings = ledger.entry_postings(db, [e.id for e in entries])
    data: list[Any] = [
        {"id": e.id, "source_type": e.source_type, "source_id": e.source_id,
         "description": e.description, "reverses_entry_id": e.reverses_entry_id,
         "effective_date": e.effective_date, "posted_at": e.posted_at,
         "postings": [{"ledger_account_id": p.ledger_account_id, "amount_minor": p.amount_minor,
                       "currency": p.currency} for p in postings[e.id]]}
        for e in entries
    ]
    return paged(data, page)
