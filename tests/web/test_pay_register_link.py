"""Cloud Payments V2's ``AllowRegisterAccount``: the receipt of a payer without a portal
login links to the portal's registration with the account just paid filled in; without
the option, or with invoices Billfold does not keep, it does not."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import seed_reference
from tests.web.test_pay_page import CARD, form_to, post
from tests.web.test_payments_api import basic, seed_sample

LINK = re.compile(r'<a href="([^"]+)">Register to see and pay your bills online</a>')


@pytest.fixture
def biller(make_client: Any) -> Any:
    client = make_client(allowed_origins=["https://www.yourdomain.com"])
    seed_reference(client)
    return client


def paid_receipt(biller: Any, make_client: Any, *, allow_register: bool,
                 records: bool = True) -> str:
    body = json.loads(seed_sample().replace("False", "false"))
    body["CreateCustomerRecord"] = records
    body["PageResultOptions"]["AllowRegisterAccount"] = allow_register
    created = biller.post("/cloudpayments/v2", json=body, headers=basic(biller))
    assert created.status_code == 200, created.text
    path = urlsplit(created.json()["Data"]["CloudPaymentURL"]).path
    payer = make_client(biller.scope)
    del payer.headers["Authorization"]
    page = payer.get(path)
    assert page.status_code == 200, page.text
    reviewed = post(payer, f"{path}/review", form_to(page.text, "/review").filled(method="card"))
    assert reviewed.status_code == 200, reviewed.text
    paid = post(payer, path, form_to(reviewed.text, path).filled(**CARD))
    assert paid.status_code == 200, paid.text
    assert "Thank you for your payment" in paid.text
    return str(paid.text)


def test_the_receipt_links_to_registration_with_the_account_filled_in(
        biller: Any, make_client: Any) -> None:
    receipt = paid_receipt(biller, make_client, allow_register=True)
    [link] = LINK.findall(receipt)
    link = html.unescape(link)
    assert link == (f"/portal/b/{biller.scope.tenant_id}/{biller.scope.mode}/register"
                    "?account=ACCT-TEST-001")
    form = biller.get(link)
    assert form.status_code == 200
    assert 'name="account_number" type="text" value="ACCT-TEST-001"' in form.text


def test_no_link_without_the_option(biller: Any, make_client: Any) -> None:
    assert LINK.search(paid_receipt(biller, make_client, allow_register=False)) is None


def test_no_link_when_billfold_keeps_no_account(biller: Any, make_client: Any) -> None:
    receipt = paid_receipt(biller, make_client, allow_register=True, records=False)
    assert LINK.search(receipt) is None
