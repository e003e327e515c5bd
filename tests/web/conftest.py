"""Fixtures of every web test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billfold.web.pages import limits


@pytest.fixture(autouse=True)
def fresh_limits() -> Iterator[None]:
    """The pages' rate limits live in the process; each test starts with none used."""
    for limit in limits.ALL:
        limit.reset()
    yield
    for limit in limits.ALL:
        limit.reset()
