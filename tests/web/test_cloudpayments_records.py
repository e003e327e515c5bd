"""Cloud Payments V2 intake and the records it keeps: ``CreateCustomerRecord`` true upserts
the customer (name, email, billing address) and invoices, false touches none; how the
request is authenticated, which URLs it may name, and how long its session lives."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from billfold.core import clock
from tests.conftest import customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids, snapshot
from tests.web.test_payments_api import basic, open_invoice

SHOP = "https://www.yourdomain.com"
PAYER = {
    "AccountNumber": "ACCT-TEST-001", "Name": "John S", "Address": "123 Main Street",
    "City": "Tampa", "State": "FL", "Zip": "12345", "EmailAddress": "none@none.com",
    "Invoices": [{"InvoiceNumber": "INV-TEST-001", "TypeID": 6, "DueDate": "08/20/2099",
                  "InvoiceDate": "04/27/2024", "BalanceDue": 10.00, "CCServiceFee": 1.00,
                  "AchServiceFee": 1.00}]}


def request_body(*, records: bool = True, **customer: Any) -> dict[str, Any]:
    """The seed's sample request (made valid JSON), with ``customer`` over its one payer;
    a value of None leaves that field out."""
    payer = {k: v for k, v in {**copy.deepcopy(PAYER), **customer}.items() if v is not None}
    return {"CreateCustomerRecord": records, "Customers": [payer], "AllowSwipe": False,
            "AllowCCPayment": True, "AllowACHPayment": True, "AllowEMV": False,
            "ReturnURL": "", "PostBackURL": f"{SHOP}/postback.aspx",
            "BillerReference": "REF-1", "ViewMode": 0, "PageLoadOverride": 1,
            "PageResultOptions": {"AllowRegisterAccount": False, "InvoiceOptions": {
                "AllowViewStatement": False, "AllowRemove": True, "AllowViewRelated": False,
                "AllowRemindMe": False}}}


def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/cloudpayments/v2", json=body, headers=basic(client))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["Data"]
    return data


def customer_of(client: Any, account_number: str) -> dict[str, Any]:
    [account] = client.get("/v1/billing_accounts", params={"query": account_number}
                           ).json()["data"]
    found: dict[str, Any] = client.get(f"/v1/customers/{account['customer_id']}").json()
    return found


def history_count(client: Any, customer_id: str) -> int:
    return len(list_ids(client, f"/v1/customers/{customer_id}/history"))


@pytest.fixture
def biller(make_client: Any) -> Any:
    client = make_client(allowed_origins=[SHOP])
    client.ids = seed_reference(client)
    return client


class TestCreatingTheCustomer:
    def test_keeps_the_name_email_and_billing_address(self, biller: Any) -> None:
        create(biller, request_body())
        customer = customer_of(biller, "ACCT-TEST-001")
        assert (customer["company_name"], customer["primary_email"]) == ("John S",
                                                                         "none@none.com")
        assert customer["billing_address"] == {
            "line1": "123 Main Street", "line2": None, "city": "Tampa", "region": "FL",
            "postal_code": "12345", "country": "US"}

    def test_city_state_and_zip_without_an_address_store_no_address(self, biller: Any) -> None:
        create(biller, request_body(Address=None))
        assert customer_of(biller, "ACCT-TEST-001")["billing_address"] is None

    def test_a_new_account_without_an_email_is_refused_and_nothing_is_kept(
            self, biller: Any) -> None:
        before = snapshot(biller)
        response = biller.post("/cloudpayments/v2", json=request_body(EmailAddress=None),
                               headers=basic(biller))
        body = assert_problem(response, 422, field="Customers[0].EmailAddress")
        assert "which is new: a customer needs a primary email address" in str(body["errors"])
        assert snapshot(biller) == before

    def test_an_existing_account_needs_no_email(self, biller: Any) -> None:
        create(biller, request_body())
        create(biller, request_body(EmailAddress=None))
        assert customer_of(biller, "ACCT-TEST-001")["primary_email"] == "none@none.com"


class TestUpdatingTheCustomer:
    def test_a_later_request_updates_name_email_and_address(self, biller: Any) -> None:
        create(biller, request_body())
        create(biller, request_body(Name="John Smith", EmailAddress="john@example.com",
                                    Address="9 Bay Road", City="Miami", State="FL",
                                    Zip="33101"))
        customer = customer_of(biller, "ACCT-TEST-001")
        assert (customer["company_name"], customer["customer_name"],
                customer["primary_email"]) == ("John Smith", "John Smith", "john@example.com")
        assert customer["billing_address"] == {
            "line1": "9 Bay Road", "line2": None, "city": "Miami", "region": "FL",
            "postal_code": "33101", "country": "US"}
        assert history_count(biller, customer["id"]) == 2  # created, then updated

    def test_fields_left_out_or_empty_keep_what_is_stored(self, biller: Any) -> None:
        create(biller, request_body())
        create(biller, request_body(Name="", EmailAddress=None, Address=" ", City=None,
                                    Zip="33602"))
        customer = customer_of(biller, "ACCT-TEST-001")
        assert (customer["company_name"], customer["primary_email"]) == ("John S",
                                                                         "none@none.com")
        assert customer["billing_address"] == {
            "line1": "123 Main Street", "line2": None, "city": "Tampa", "region": "FL",
            "postal_code": "33602", "country": "US"}

    def test_the_same_request_again_changes_nothing(self, biller: Any) -> None:
        create(biller, request_body())
        before = customer_of(biller, "ACCT-TEST-001")
        create(biller, request_body(EmailAddress="NONE@none.com"))
        assert customer_of(biller, "ACCT-TEST-001") == before
        assert history_count(biller, before["id"]) == 1

    def test_a_new_street_drops_the_old_second_line_and_keeps_the_country(
            self, biller: Any) -> None:
        made = biller.post("/v1/customers", json=customer_body(biller.ids, billing_address={
            "line1": "1 Old Street", "line2": "Suite 5", "city": "Toronto", "region": "ON",
            "postal_code": "M5V 1A1", "country": "CA"})).json()
        number = biller.get(f"/v1/billing_accounts/{made['default_billing_account_id']}"
                            ).json()["number"]
        create(biller, request_body(AccountNumber=number, Name=None, EmailAddress=None,
                                    Address="2 New Street", City=None, State=None, Zip=None))
        assert customer_of(biller, number)["billing_address"] == {
            "line1": "2 New Street", "line2": None, "city": "Toronto", "region": "ON",
            "postal_code": "M5V 1A1", "country": "CA"}

    def test_a_persons_first_and_last_name_are_not_rewritten(self, biller: Any) -> None:
        made = biller.post("/v1/customers", json=customer_body(
            biller.ids, company_name=None, first_name="Ada", last_name="Lovelace")).json()
        number = biller.get(f"/v1/billing_accounts/{made['default_billing_account_id']}"
                            ).json()["number"]
        create(biller, request_body(AccountNumber=number, Name="A. Lovelace",
                                    EmailAddress="ada@example.com"))
        customer = customer_of(biller, number)
        assert (customer["first_name"], customer["last_name"], customer["company_name"],
                customer["customer_name"]) == ("Ada", "Lovelace", None, "Ada Lovelace")
        assert customer["primary_email"] == "ada@example.com"

    def test_a_bad_email_refuses_the_whole_request(self, biller: Any) -> None:
        create(biller, request_body())
        before, sessions = customer_of(biller, "ACCT-TEST-001"), list_ids(biller,
                                                                           "/v1/pay_sessions")
        response = biller.post("/cloudpayments/v2", json=request_body(
            Name="Someone Else", EmailAddress="not an email"), headers=basic(biller))
        assert_problem(response, 422, field="Customers[0].EmailAddress")
        assert customer_of(biller, "ACCT-TEST-001") == before
        assert list_ids(biller, "/v1/pay_sessions") == sessions


class TestExistingInvoices:
    def test_are_paid_at_billfolds_balance_and_a_different_balance_due_is_kept(
            self, biller: Any) -> None:
        invoice = open_invoice(biller, 1000)
        account = biller.get(f"/v1/billing_accounts/{invoice['billing_account_id']}").json()
        invoices = [{"InvoiceNumber": invoice["number"], "BalanceDue": "12.34"}]
        data = create(biller, request_body(AccountNumber=account["number"], Invoices=invoices))
        [line] = biller.get(f"/v1/pay_sessions/{data['SessionId']}").json()["lines"]
        assert (line["balance_due_minor"], line["sent_balance_due_minor"]) == (1000, 1234)
        invoices[0]["BalanceDue"] = "10.00"
        data = create(biller, request_body(AccountNumber=account["number"], Invoices=invoices))
        [line] = biller.get(f"/v1/pay_sessions/{data['SessionId']}").json()["lines"]
        assert line["balance_due_minor"] == 1000
        assert "sent_balance_due_minor" not in line


class TestWithoutRecords:
    def test_customers_accounts_and_invoices_are_untouched(self, biller: Any) -> None:
        """Even when the account and invoice numbers are ones Billfold keeps: the session
        carries the request's own data."""
        invoice = open_invoice(biller, 1000)
        account = biller.get(f"/v1/billing_accounts/{invoice['billing_account_id']}").json()
        customer = biller.get(f"/v1/customers/{account['customer_id']}").json()
        before = snapshot(biller), list_ids(biller, "/v1/invoices")
        data = create(biller, request_body(
            records=False, AccountNumber=account["number"], Name="Another Name",
            EmailAddress="other@example.com", Invoices=[
                {"InvoiceNumber": invoice["number"], "BalanceDue": "5.00"},
                {"InvoiceNumber": "ELSEWHERE-9", "BalanceDue": "7.00"}]))
        assert (snapshot(biller), list_ids(biller, "/v1/invoices")) == before
        assert biller.get(f"/v1/customers/{customer['id']}").json() == customer
        assert biller.get(f"/v1/invoices/{invoice['id']}").json()["amount_due_minor"] == 1000
        lines = biller.get(f"/v1/pay_sessions/{data['SessionId']}").json()["lines"]
        assert [(line["invoice_id"], line["balance_due_minor"]) for line in lines] == [
            (None, 500), (None, 700)]


class TestAuthenticationAndOrigins:
    def test_a_bearer_key_is_accepted(self, biller: Any) -> None:
        assert biller.headers["Authorization"].startswith("Bearer ")
        response = biller.post("/cloudpayments/v2", json=request_body())
        assert response.status_code == 200, response.text
        assert "/pay/" in response.json()["Data"]["CloudPaymentURL"]

    @pytest.mark.parametrize("field", ["CssUrl", "PostBackURL"])
    def test_an_off_list_url_is_refused_naming_it(self, biller: Any, field: str) -> None:
        body = request_body()
        body[field] = "https://evil.example/x"
        before = snapshot(biller)
        response = biller.post("/cloudpayments/v2", json=body, headers=basic(biller))
        problem = assert_problem(response, 422, field=field)
        assert [e["field"] for e in problem["errors"]] == [field]
        assert problem["errors"][0]["code"] == "origin_not_allowed"
        assert snapshot(biller) == before
        assert list_ids(biller, "/v1/pay_sessions") == []


# -- how long a session lives ------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(datetime(2031, 3, 14, 12, 0, tzinfo=UTC))
    previous = clock.set_clock(frozen)
    try:
        yield frozen
    finally:
        clock.set_clock(previous)


def make_session(biller: Any, kind: str) -> tuple[str, str]:
    """A native or Cloud Payments V2 session: its id and its page's path."""
    if kind == "native":
        invoice = open_invoice(biller)
        made = biller.post("/v1/pay_sessions", json={"invoices": [{"invoice_id": invoice["id"]}]})
        assert made.status_code == 201, made.text
        return made.json()["id"], urlsplit(made.json()["url"]).path
    data = create(biller, request_body())
    return data["SessionId"], urlsplit(data["CloudPaymentURL"]).path


def lifetime(biller: Any, session_id: str) -> timedelta:
    row = biller.get(f"/v1/pay_sessions/{session_id}").json()
    return datetime.fromisoformat(row["expires_at"]) - datetime.fromisoformat(row["created_at"])


@pytest.mark.parametrize("kind", ["native", "cloudpayments_v2"])
class TestExpiry:
    def test_a_session_lives_30_minutes_by_default(self, biller: Any, frozen: Any,
                                                   kind: str) -> None:
        session_id, path = make_session(biller, kind)
        assert lifetime(biller, session_id) == timedelta(minutes=30)
        frozen.advance(timedelta(minutes=29, seconds=59))
        assert biller.get(path).status_code == 200
        frozen.advance(timedelta(seconds=1))
        page = biller.get(path)
        assert page.status_code == 410
        assert "This payment link has expired" in page.text
        assert biller.get(f"/v1/pay_sessions/{session_id}").json()["status"] == "expired"

    def test_pay_session_minutes_changes_it_for_new_sessions(self, biller: Any, frozen: Any,
                                                             kind: str) -> None:
        earlier, _ = make_session(biller, kind)
        changed = biller.patch("/v1/settings", json={"pay_session_minutes": 90})
        assert changed.status_code == 200, changed.text
        session_id, path = make_session(biller, kind)
        assert lifetime(biller, session_id) == timedelta(minutes=90)
        assert lifetime(biller, earlier) == timedelta(minutes=30)
        frozen.advance(timedelta(minutes=89))
        assert biller.get(path).status_code == 200
        frozen.advance(timedelta(minutes=1))
        assert biller.get(path).status_code == 410
