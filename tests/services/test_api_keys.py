"""Authenticating an API key brings the tenant's settings along (api_keys.authenticate)."""

from __future__ import annotations

from sqlalchemy import inspect

from billfold.access import api_keys
from billfold.core.db import transaction
from billfold.customers import settings as settings_service
from billfold.tenants import service as tenants
from billfold.tenants.models import TenantSettings


def _key(sessions, scope):
    with sessions() as s, transaction(s):
        return api_keys.create_api_key(s, tenant_id=scope.tenant_id, mode=scope.mode).secret


def test_the_settings_that_come_with_the_key_are_the_tenants_every_column(sessions, make_scope):
    scope = make_scope(allowed_origins=["https://biller.example"], pay_session_minutes=45)
    secret = _key(sessions, scope)
    with sessions() as s:
        assert api_keys.authenticate(s, secret) == scope
        brought = tenants.get_settings(s, scope)
        assert inspect(brought).persistent
    with sessions() as s:
        loaded = s.get(TenantSettings, (scope.tenant_id, scope.mode))
        columns = [c.key for c in inspect(TenantSettings).column_attrs]
        assert {c: getattr(brought, c) for c in columns} == \
            {c: getattr(loaded, c) for c in columns}
    assert brought.allowed_origins == ["https://biller.example"]
    assert brought.pay_session_minutes == 45


def test_settings_changed_through_the_instance_are_saved(sessions, make_scope):
    scope = make_scope()
    secret = _key(sessions, scope)
    with sessions() as s, transaction(s):
        api_keys.authenticate(s, secret)
        settings_service.update_settings(s, scope, {"pay_session_minutes": 50})
    with sessions() as s:
        assert tenants.get_settings(s, scope).pay_session_minutes == 50


def test_settings_already_in_the_session_are_the_ones_returned(sessions, make_scope):
    scope = make_scope()
    secret = _key(sessions, scope)
    with sessions() as s, transaction(s):
        loaded = s.get(TenantSettings, (scope.tenant_id, scope.mode))
        loaded.pay_session_minutes = 55  # a change this session has not written yet
        api_keys.authenticate(s, secret)
        assert tenants.get_settings(s, scope) is loaded
        assert loaded.pay_session_minutes == 55
