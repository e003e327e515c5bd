"""Allowed origins are stored in the form URLs are compared in (targets.origin_of)."""

from __future__ import annotations

import pytest

from billfold.notifications.targets import matches_origin, origin_of
from billfold.tenants.service import normalize_origin


@pytest.mark.parametrize(("given", "stored"), [
    ("HTTPS://Shop.Example.com:443", "https://shop.example.com"),
    ("http://shop.example.com:8080/", "http://shop.example.com:8080"),
    ("https://[0:0:0:0:0:0:0:1]:8443", "https://[::1]:8443"),
    ("https://[2001:DB8:0:0:0:0:0:1]", "https://[2001:db8::1]"),
])
def test_an_origin_is_stored_as_urls_are_compared(given: str, stored: str) -> None:
    assert normalize_origin(given) == stored
    assert matches_origin(f"{given.rstrip('/')}/return?x=1", [stored])
    assert origin_of(f"{given.rstrip('/')}/a") == stored


@pytest.mark.parametrize("given", ["ftp://shop.example.com", "https://user@shop.example.com",
                                   "https://[::g]", "https://shop.example.com:99999", ""])
def test_what_is_not_an_origin_is_refused(given: str) -> None:
    assert normalize_origin(given) is None
