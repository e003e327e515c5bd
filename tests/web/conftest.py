"""Fixtures of every web test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billfold.web.pages import limits
from tests.services.test_webhooks import Receiver, receiving


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """The pages' rate limits live in the process; each test starts with none used."""
    for limit in limits.ALL:
        limit.reset()
    yield
    for limit in limits.ALL:
        limit.reset()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that records what is posted to it."""
    with receiving() as started:
        yield started
