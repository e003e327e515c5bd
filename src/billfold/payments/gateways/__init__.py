"""The one plug-in seam for payment processors. Only modules in this package would ever
import a vendor SDK; everything else speaks the ``Gateway`` protocol of ``base``.

``get_gateway`` builds a gateway by name; an adapter for a real processor registers here
beside the test gateway.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from billfold.core.errors import BillfoldError
from billfold.payments.gateways.base import Gateway
from billfold.payments.gateways.test import TestGateway


class UnknownGateway(BillfoldError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(_BUILDERS))
        super().__init__(detail=f"No payment gateway named {name!r}; known gateways: {known}",
                         code="unknown_gateway", status=422, title="Unknown payment gateway")


def _test_gateway(sessions: sessionmaker[Session], fingerprint_key: bytes) -> Gateway:
    return TestGateway(sessions, fingerprint_key=fingerprint_key)


_BUILDERS: dict[str, Callable[[sessionmaker[Session], bytes], Gateway]] = {
    "test": _test_gateway,
}


def get_gateway(name: str, *, sessions: sessionmaker[Session], fingerprint_key: bytes) -> Gateway:
    """The gateway called ``name``. ``sessions`` is where a gateway that keeps records in
    our database (the test gateway) keeps them; ``fingerprint_key`` keys the instrument
    fingerprints, so the same card gives the same fingerprint only under the same key."""
    builder = _BUILDERS.get(name)
    if builder is None:
        raise UnknownGateway(name)
    return builder(sessions, fingerprint_key)


__all__ = ["Gateway", "UnknownGateway", "get_gateway"]
