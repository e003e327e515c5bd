"""Card numbers and CVCs are never stored or logged: after paying with every test card
through the page, no table and no log line holds any of the numbers."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.db import transaction
from billfold.invoicing import service as invoicing
from billfold.models import metadata
from tests.web.test_pay_page import CARD, Biller

TEST_CARDS = ("4242424242424242", "4000000000000002", "4000000000009995",
              "4000000000000259", "4000000000002685", "4000000000000119",
              "5555555555554444")


def spellings(number: str) -> list[str]:
    """The number as typed (spaced in fours) and as digits."""
    return [number, " ".join(number[i:i + 4] for i in range(0, 16, 4))]


def text_columns(engine: Engine) -> list[tuple[str, str]]:
    present = set(inspect(engine).get_table_names())
    return [(table.name, column.name) for table in metadata.sorted_tables
            if table.name in present for column in table.columns
            if isinstance(column.type, String | Text | JSON)]


def new_invoice(biller: Biller) -> str:
    with biller.sessions() as s, transaction(s):
        draft = invoicing.create_draft(s, biller.scope, billing_account_id=biller.account.id,
                                       lines=[{"description": "Bricks", "quantity": 1,
                                               "unit_amount_minor": 2000}], actor="test")
        return invoicing.finalize(s, biller.scope, invoice_id=draft.id, actor="test").id


@pytest.fixture
def biller(make_client: Any, sessions: sessionmaker[Session]) -> Biller:
    return Biller(make_client(), sessions)


def test_no_table_or_log_holds_a_card_number(biller: Biller, engine: Engine,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and parameters
    try:
        for number in TEST_CARDS:
            biller.invoice_id = new_invoice(biller)
            token = biller.pay_session()
            response = biller.pay(token, {**CARD, "card_number": " ".join(
                number[i:i + 4] for i in range(0, 16, 4))})
            assert response.status_code in (200, 303), response.text
            assert number not in response.text
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert any("INSERT INTO payment" in r.getMessage() for r in caplog.records)  # logs captured
    for number in TEST_CARDS:
        for spelled in spellings(number):
            assert spelled not in caplog.text, f"a log line holds {spelled}"
    found = []
    with engine.connect() as connection:
        for table, column in text_columns(engine):
            for value in connection.execute(select(metadata.tables[table].c[column])).scalars():
                text = str(value) if value is not None else ""
                found += [f"{table}.{column}" for number in TEST_CARDS
                          for spelled in spellings(number) if spelled in text]
    assert found == []
