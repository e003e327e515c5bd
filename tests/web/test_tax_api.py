"""Tax rates and tax exemptions through HTTP: created, read and listed; bad input answered
by a problem naming the field with nothing written; another tenant's objects are 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids

RATES = "/v1/tax_rates"


def texas(**extra: Any) -> dict[str, Any]:
    return {"country": "US", "region": "US-TX", "tax_category": "standard", "percent": "8.25",
            "name": "Texas sales tax", "valid_from": "2026-01-01", **extra}


def certificate(**extra: Any) -> dict[str, Any]:
    return {"certificate_number": "TX-EX-1001", "country": "US", "region": "US-TX",
            "valid_from": "2026-01-01", **extra}


@pytest.fixture
def ids(client: Any) -> dict[str, str]:
    return seed_reference(client)


@pytest.fixture
def account_id(client: Any, ids: dict[str, str]) -> str:
    response = client.post("/v1/customers", json=customer_body(ids))
    assert response.status_code == 201, response.text
    return str(response.json()["billing_account"]["id"])


def exemptions_path(account_id: str) -> str:
    return f"/v1/billing_accounts/{account_id}/tax_exemptions"


def history_of(client: Any, account_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/billing_accounts/{account_id}/history", params={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


class TestTaxRates:
    def test_creates_reads_and_lists_a_rate(self, client):
        response = client.post(RATES, json=texas(percent="8.250", region="us-tx"))
        assert response.status_code == 201, response.text
        rate = response.json()
        assert rate["id"].startswith("txr_")
        assert {k: rate[k] for k in ("country", "region", "tax_category", "percent", "name",
                                     "valid_from", "valid_to", "mode")} == {
            "country": "US", "region": "US-TX", "tax_category": "standard", "percent": "8.25",
            "name": "Texas sales tax", "valid_from": "2026-01-01", "valid_to": None,
            "mode": "test"}
        assert client.get(f"{RATES}/{rate['id']}").json() == rate
        assert list_ids(client, RATES) == [rate["id"]]

    def test_lists_in_pages(self, client):
        made = [client.post(RATES, json=texas(region=r)).json()["id"]
                for r in ("US-TX", "US-OK", "US-NM")]
        first = client.get(RATES, params={"limit": 2}).json()
        assert (len(first["data"]), first["has_more"]) == (2, True)
        rest = client.get(RATES, params={"limit": 2,
                                         "starting_after": first["data"][-1]["id"]}).json()
        assert rest["has_more"] is False
        assert [r["id"] for r in first["data"] + rest["data"]] == made

    @pytest.mark.parametrize(("change", "field"), [
        ({"percent": 8.25}, "percent"),  # a JSON number would invite floats
        ({"percent": "8.25%"}, "percent"),
        ({"percent": "1e2"}, "percent"),
        ({"percent": "-1"}, "percent"),
        ({"percent": "100.01"}, "percent"),
        ({"country": "XX"}, "country"),
        ({"country": "USA"}, "country"),
        ({"region": "Texas"}, "region"),
        ({"region": "CA-QC"}, "region"),
        ({"tax_category": "Standard"}, "tax_category"),
        ({"name": ""}, "name"),
        ({"name": "Tex\x00as"}, "name"),
        ({"valid_from": "2026-13-01"}, "valid_from"),
        ({"valid_from": None}, "valid_from"),
        ({"valid_to": "2025-12-31"}, "valid_to"),
        ({"rate": "8.25"}, "rate"),
    ])
    def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(self, client, change,
                                                                        field):
        response = client.post(RATES, json=texas(**change))
        assert_problem(response, 422, "validation_failed", field=field)
        assert list_ids(client, RATES) == []

    @pytest.mark.parametrize("missing", ["country", "tax_category", "percent", "name",
                                         "valid_from"])
    def test_a_missing_field_is_named(self, client, missing):
        body = {k: v for k, v in texas().items() if k != missing}
        assert_problem(client.post(RATES, json=body), 422, field=missing)
        assert list_ids(client, RATES) == []

    def test_an_overlapping_rate_is_a_409_naming_the_rate_it_overlaps(self, client):
        first = client.post(RATES, json=texas()).json()
        problem = assert_problem(client.post(RATES, json=texas(valid_from="2026-07-01",
                                                               percent="8.5")),
                                 409, "tax_rate_overlap", field="valid_from")
        assert first["id"] in problem["detail"]
        assert list_ids(client, RATES) == [first["id"]]

    def test_ending_a_rate_makes_room_for_the_next(self, client):
        first = client.post(RATES, json=texas()).json()
        ended = client.patch(f"{RATES}/{first['id']}", json={"valid_to": "2026-06-30"})
        assert ended.status_code == 200, ended.text
        assert ended.json() == {**first, "valid_to": "2026-06-30"}
        second = client.post(RATES, json=texas(valid_from="2026-07-01", percent="8.5"))
        assert second.status_code == 201, second.text

    def test_a_patch_can_change_nothing_but_the_end(self, client):
        rate = client.post(RATES, json=texas()).json()
        assert_problem(client.patch(f"{RATES}/{rate['id']}", json={"percent": "9"}), 422,
                       field="percent")
        assert client.patch(f"{RATES}/{rate['id']}", json={}).json() == rate
        assert client.get(f"{RATES}/{rate['id']}").json() == rate

    def test_an_end_before_the_start_is_refused(self, client):
        rate = client.post(RATES, json=texas()).json()
        assert_problem(client.patch(f"{RATES}/{rate['id']}", json={"valid_to": "2025-12-31"}),
                       422, field="valid_to")
        assert client.get(f"{RATES}/{rate['id']}").json() == rate

    def test_an_idempotent_replay_creates_one_rate(self, client):
        headers = {"Idempotency-Key": "rate-tx-2026"}
        first = client.post(RATES, json=texas(), headers=headers)
        again = client.post(RATES, json=texas(), headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert list_ids(client, RATES) == [first.json()["id"]]


class TestTaxExemptions:
    def test_creates_reads_lists_and_records_in_history(self, client, account_id):
        history_before = history_of(client, account_id)
        response = client.post(exemptions_path(account_id), json=certificate())
        assert response.status_code == 201, response.text
        exemption = response.json()
        assert exemption["id"].startswith("txe_")
        assert (exemption["billing_account_id"], exemption["certificate_number"],
                exemption["region"], exemption["valid_to"]) == (account_id, "TX-EX-1001",
                                                                 "US-TX", None)
        assert client.get(f"{exemptions_path(account_id)}/{exemption['id']}").json() == exemption
        assert list_ids(client, exemptions_path(account_id)) == [exemption["id"]]
        [entry] = history_of(client, account_id)[len(history_before):]
        assert entry["changes"][0]["field"] == "tax_exemption"
        assert entry["changes"][0]["new_value"]["certificate_number"] == "TX-EX-1001"

    @pytest.mark.parametrize(("change", "field"), [
        ({"certificate_number": ""}, "certificate_number"),
        ({"certificate_number": 1001}, "certificate_number"),
        ({"country": "ZZ"}, "country"),
        ({"region": "TX"}, "region"),
        ({"valid_from": "not a date"}, "valid_from"),
        ({"valid_to": "2025-01-01"}, "valid_to"),
        ({"exempt": True}, "exempt"),
        ({"certificate_number": "TX\x00"}, "certificate_number"),
    ])
    def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
            self, client, account_id, change, field):
        history_before = history_of(client, account_id)
        response = client.post(exemptions_path(account_id), json=certificate(**change))
        assert_problem(response, 422, "validation_failed", field=field)
        assert list_ids(client, exemptions_path(account_id)) == []
        assert history_of(client, account_id) == history_before

    def test_the_same_certificate_twice_is_a_409(self, client, account_id):
        first = client.post(exemptions_path(account_id), json=certificate()).json()
        assert_problem(client.post(exemptions_path(account_id), json=certificate()), 409,
                       "duplicate_tax_exemption", field="certificate_number")
        assert list_ids(client, exemptions_path(account_id)) == [first["id"]]

    def test_an_unknown_account_is_404(self, client):
        assert_problem(client.post(exemptions_path("ba_" + "0" * 32), json=certificate()),
                       404, "not_found")

    def test_an_exemption_is_only_found_under_its_own_account(self, client, ids, account_id):
        exemption = client.post(exemptions_path(account_id), json=certificate()).json()
        other = client.post("/v1/customers", json=customer_body(ids, name="Other Co")).json()
        other_account = other["billing_account"]["id"]
        assert_problem(client.get(f"{exemptions_path(other_account)}/{exemption['id']}"), 404)

    def test_ending_an_exemption(self, client, account_id):
        exemption = client.post(exemptions_path(account_id), json=certificate()).json()
        path = f"{exemptions_path(account_id)}/{exemption['id']}"
        ended = client.patch(path, json={"valid_to": "2026-06-30"})
        assert ended.status_code == 200, ended.text
        assert ended.json() == {**exemption, "valid_to": "2026-06-30"}
        assert_problem(client.patch(path, json={"valid_to": "2025-06-30"}), 422,
                       field="valid_to")
        assert client.get(path).json()["valid_to"] == "2026-06-30"


class TestAnotherTenant:
    @pytest.fixture
    def theirs(self, make_client: Any) -> dict[str, Any]:
        owner = make_client()
        account = owner.post("/v1/customers", json=customer_body(seed_reference(owner))).json()
        account_id = account["billing_account"]["id"]
        rate = owner.post(RATES, json=texas()).json()
        exemption = owner.post(exemptions_path(account_id), json=certificate()).json()
        return {"client": owner, "account_id": account_id, "rate": rate,
                "exemption": exemption}

    def test_their_rate_is_404_and_never_listed(self, client, theirs):
        rate = theirs["rate"]
        assert_problem(client.get(f"{RATES}/{rate['id']}"), 404, "not_found")
        assert_problem(client.patch(f"{RATES}/{rate['id']}", json={"valid_to": "2026-01-31"}),
                       404, "not_found")
        assert list_ids(client, RATES) == []
        assert theirs["client"].get(f"{RATES}/{rate['id']}").json() == rate

    def test_their_rates_do_not_block_ours(self, client, theirs):
        assert client.post(RATES, json=texas()).status_code == 201

    def test_their_accounts_exemptions_are_404_and_nothing_is_written(self, client, theirs):
        path = exemptions_path(theirs["account_id"])
        exemption_path = f"{path}/{theirs['exemption']['id']}"
        history_before = history_of(theirs["client"], theirs["account_id"])
        assert_problem(client.post(path, json=certificate(certificate_number="MINE")), 404,
                       "not_found")
        assert_problem(client.get(path), 404, "not_found")
        assert_problem(client.get(exemption_path), 404, "not_found")
        assert_problem(client.patch(exemption_path, json={"valid_to": "2026-01-31"}), 404)
        assert list_ids(theirs["client"], path) == [theirs["exemption"]["id"]]
        assert theirs["client"].get(exemption_path).json() == theirs["exemption"]
        assert history_of(theirs["client"], theirs["account_id"]) == history_before

    def test_the_live_mode_of_the_same_tenant_sees_none_of_it(self, make_client, theirs):
        from billfold.core.scope import Scope

        live = make_client(scope=Scope(theirs["client"].scope.tenant_id, "live"))
        assert_problem(live.get(f"{RATES}/{theirs['rate']['id']}"), 404)
        assert list_ids(live, RATES) == []
        assert_problem(live.get(exemptions_path(theirs["account_id"])), 404)
