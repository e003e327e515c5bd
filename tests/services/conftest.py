"""Factories for service tests. A ``Desk`` does what a billing clerk does in one tenant,
each step in its own committed transaction, so a refused step leaves the rows of earlier
steps in place for the test to inspect."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.core.errors import BillfoldError
from billfold.core.scope import Scope
from billfold.customers import service
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount, ChangeRecord, Customer
from billfold.tenants import service as tenants
from billfold.tenants.models import BillCycle
from tests.conftest import Reference

ACTOR = "clerk@biller.example"


class Desk:
    def __init__(self, session: Session, scope: Scope, ref: Reference) -> None:
        self.session, self.scope, self.ref = session, scope, ref

    def create_customer(self, name: str = "Acme Brick", *, account: dict[str, Any] | None = None,
                        **extra: Any) -> tuple[Customer, BillingAccount]:
        data = self.ref.customer(name, billing_account=account, **extra)
        with transaction(self.session):
            return service.create_customer(self.session, self.scope, data=data, actor=ACTOR)

    def person(self, first: str = "Ada", last: str = "Lovelace", **extra: Any
               ) -> dict[str, Any]:
        """Customer data for a person (no company name)."""
        data = self.ref.customer(first_name=first, last_name=last, **extra)
        del data["company_name"]
        return data

    def create(self, data: dict[str, Any]) -> tuple[Customer, BillingAccount]:
        with transaction(self.session):
            return service.create_customer(self.session, self.scope, data=data, actor=ACTOR)

    def account(self, currency: str = "USD", **extra: Any) -> dict[str, Any]:
        return self.ref.account(currency, **extra)

    def add_account(self, customer: Customer, currency: str = "USD", **extra: Any
                    ) -> BillingAccount:
        with transaction(self.session):
            return service.add_billing_account(
                self.session, self.scope, customer_id=customer.id,
                data=self.ref.account(currency, **extra), actor=ACTOR)

    def new_account(self, name: str = "Acme Brick", **extra: Any) -> BillingAccount:
        """The default account of a new customer."""
        return self.create_customer(name, account=self.ref.account(**extra))[1]

    def update_customer(self, customer: Customer, actor: str = ACTOR, **changes: Any
                        ) -> Customer:
        with transaction(self.session):
            return service.update_customer(self.session, self.scope, customer_id=customer.id,
                                           changes=changes, actor=actor)

    def update_account(self, account: BillingAccount, actor: str = ACTOR, **changes: Any
                       ) -> BillingAccount:
        with transaction(self.session):
            return service.update_billing_account(
                self.session, self.scope, account_id=account.id, changes=changes, actor=actor)

    def configure(self, **settings: Any) -> None:
        with transaction(self.session):
            settings_service.update_settings(self.session, self.scope, settings)

    def bill_cycle(self, name: str, currency: str | None = None,
                   start_date: date = date(2026, 1, 1), **extra: Any) -> BillCycle:
        with transaction(self.session):
            return tenants.create_bill_cycle(
                self.session, self.scope, name=name, currency=currency,
                frequency=extra.get("frequency", "monthly"), bill_day=extra.get("bill_day", 1),
                start_date=start_date)

    def custom_field(self, object_type: str, key: str, field_type: str, **extra: Any) -> None:
        with transaction(self.session):
            tenants.create_custom_field(self.session, self.scope, object_type=object_type,
                                        key=key, label=key.title(), field_type=field_type, **extra)

    def reload(self, obj: Any) -> Any:
        self.session.expire_all()
        return self.session.get(type(obj), obj.id)

    def count(self, model: Any) -> int:
        self.session.expire_all()
        return self.session.scalar(select(func.count()).select_from(model).where(
            model.tenant_id == self.scope.tenant_id, model.mode == self.scope.mode)) or 0

    def counts(self) -> tuple[int, int, int]:
        return self.count(Customer), self.count(BillingAccount), self.count(ChangeRecord)


@pytest.fixture
def desk(session: Session, scope: Scope, ref: Reference) -> Desk:
    return Desk(session, scope, ref)


@pytest.fixture
def make_desk(session: Session, make_scope: Any) -> Any:
    """A desk in a fresh tenant with the given settings."""

    def make(**settings: Any) -> Desk:
        scope = make_scope(**settings)
        return Desk(session, scope, Reference(session, scope))

    return make


def fields_of(error: BillfoldError) -> list[str]:
    """The fields a refusal names."""
    return [e.field for e in error.errors]


@contextmanager
def frozen_at(at: datetime) -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(at)
    previous = clock.set_clock(frozen)
    try:
        yield frozen
    finally:
        clock.set_clock(previous)


def sessions_on_a_fresh_database() -> Any:
    """A ``sessions`` fixture on a database of the test's own, for tests that run the
    worker (it claims every due job in its database): ``sessions =
    sessions_on_a_fresh_database()``."""

    @pytest.fixture
    def sessions(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
        engine = make_engine(fresh_database_url)
        yield make_sessionmaker(engine)
        engine.dispose()

    return sessions
