"""/v1/settings and the reference data: bill cycles, account categories, payment terms,
custom field definitions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billfold.core.db import transaction
from billfold.customers import settings as settings_service
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle, CustomFieldDefinition, PaymentTerm
from billfold.web.api import schemas as s
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")


def _settings_out(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (*tenants.SETTING_FIELDS, "clock_offset_days", "mode",
                                      "updated_at")}


@router.get("/settings", response_model=s.SettingsOut, tags=["settings"])
def get_settings(db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return _settings_out(tenants.get_settings(db, caller.scope))


@router.patch("/settings", response_model=s.SettingsOut, tags=["settings"])
def patch_settings(body: s.SettingsPatch, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        row = settings_service.update_settings(db, caller.scope, body.model_dump(exclude_unset=True))
        return _settings_out(row)


def _list(db: DbSession, caller: ApiCaller, page: Pagination, model: Any) -> dict[str, object]:
    stmt = select(model).where(model.tenant_id == caller.scope.tenant_id,
                               model.mode == caller.scope.mode)
    if page.starting_after:
        stmt = stmt.where(model.id > page.starting_after)
    return paged(list(db.scalars(stmt.order_by(model.id).limit(page.limit + 1))), page)


@router.post("/bill_cycles", response_model=s.BillCycleOut, status_code=201, tags=["reference"])
def create_bill_cycle(body: s.BillCycleIn, db: DbSession, caller: ApiCaller) -> BillCycle:
    with transaction(db):
        return tenants.create_bill_cycle(db, caller.scope, **body.model_dump())


@router.get("/bill_cycles", response_model=s.page_of(s.BillCycleOut), tags=["reference"])
def list_bill_cycles(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    return _list(db, caller, page, BillCycle)


@router.get("/bill_cycles/{bill_cycle_id}", response_model=s.BillCycleOut, tags=["reference"])
def get_bill_cycle(bill_cycle_id: str, db: DbSession, caller: ApiCaller) -> BillCycle:
    row: BillCycle = tenants.get_by_id(db, caller.scope, BillCycle, "bill_cycle", bill_cycle_id)
    return row


@router.post("/account_categories", response_model=s.AccountCategoryOut, status_code=201,
             tags=["reference"])
def create_account_category(body: s.AccountCategoryIn, db: DbSession, caller: ApiCaller
                            ) -> AccountCategory:
    with transaction(db):
        return tenants.create_account_category(db, caller.scope, name=body.name)


@router.get("/account_categories", response_model=s.page_of(s.AccountCategoryOut),
            tags=["reference"])
def list_account_categories(db: DbSession, caller: ApiCaller, page: Pagination
                            ) -> dict[str, object]:
    return _list(db, caller, page, AccountCategory)


@router.post("/payment_terms", response_model=s.PaymentTermOut, status_code=201,
             tags=["reference"])
def create_payment_term(body: s.PaymentTermIn, db: DbSession, caller: ApiCaller) -> PaymentTerm:
    with transaction(db):
        return tenants.create_payment_term(db, caller.scope, name=body.name,
                                           net_days=body.net_days)


@router.get("/payment_terms", response_model=s.page_of(s.PaymentTermOut), tags=["reference"])
def list_payment_terms(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    return _list(db, caller, page, PaymentTerm)


@router.post("/custom_fields", response_model=s.CustomFieldOut, status_code=201,
             tags=["reference"])
def create_custom_field(body: s.CustomFieldIn, db: DbSession, caller: ApiCaller
                        ) -> CustomFieldDefinition:
    with transaction(db):
        return tenants.create_custom_field(db, caller.scope, **body.model_dump())


@router.get("/custom_fields", response_model=s.page_of(s.CustomFieldOut), tags=["reference"])
def list_custom_fields(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    return _list(db, caller, page, CustomFieldDefinition)
