"""The portal's settings through PATCH /v1/settings: each is kept per mode, bad values are
refused naming the field, and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from billfold.core.scope import Scope
from tests.web.helpers import assert_problem

CHANGES = {"invoice_history_enabled": False, "sso_enabled": True, "paper_bill": True,
           "email_notify": False, "email_confirmations": False,
           "payer_controlled_preferences": True, "sso_key_overlap_minutes": 90,
           "registration_check": "last_invoice_amount", "autopay_min_offset_days": 2,
           "autopay_max_offset_days": 12}


def test_defaults_then_every_setting_round_trips(client: Any) -> None:
    before = client.get("/v1/settings").json()
    assert {k: before[k] for k in CHANGES} == {
        "invoice_history_enabled": True, "sso_enabled": False, "paper_bill": False,
        "email_notify": True, "email_confirmations": True,
        "payer_controlled_preferences": False, "sso_key_overlap_minutes": 1440,
        "registration_check": "postal_code", "autopay_min_offset_days": 0,
        "autopay_max_offset_days": 10}
    changed = client.patch("/v1/settings", json=CHANGES)
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in CHANGES} == CHANGES
    assert {k: client.get("/v1/settings").json()[k] for k in CHANGES} == CHANGES


def test_test_mode_settings_leave_live_mode_alone(make_client: Any) -> None:
    test_client = make_client()
    live_client = make_client(Scope(test_client.scope.tenant_id, "live"))
    assert test_client.patch("/v1/settings", json={"sso_enabled": True}).status_code == 200
    assert live_client.get("/v1/settings").json()["sso_enabled"] is False


@pytest.mark.parametrize(("changes", "field"), [
    ({"registration_check": "favourite_colour"}, "registration_check"),
    ({"sso_key_overlap_minutes": 10081}, "sso_key_overlap_minutes"),
    ({"sso_key_overlap_minutes": -1}, "sso_key_overlap_minutes"),
    ({"autopay_max_offset_days": 61}, "autopay_max_offset_days"),
    ({"autopay_min_offset_days": 11}, "autopay_min_offset_days"),  # above the max of 10
    ({"autopay_min_offset_days": 5, "autopay_max_offset_days": 4}, "autopay_min_offset_days"),
    ({"sso_enabled": "yes"}, "sso_enabled"),
])
def test_bad_values_are_refused_naming_the_field(client: Any, changes: dict[str, Any],
                                                 field: str) -> None:
    before = client.get("/v1/settings").json()
    assert_problem(client.patch("/v1/settings", json=changes), 422, field=field)
    assert client.get("/v1/settings").json() == before
