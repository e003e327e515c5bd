"""Which gateway a scope charges through: the test gateway in test mode, the configured
one (BILLFOLD_LIVE_GATEWAY) in live mode."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from billfold.core.config import Settings, instance_key
from billfold.core.errors import BillfoldError
from billfold.core.scope import Scope
from billfold.payments.gateways import get_gateway
from billfold.payments.gateways.base import Gateway
from billfold.payments.gateways.test import TestGateway


class NoLiveGateway(BillfoldError):
    def __init__(self) -> None:
        super().__init__(detail="Live mode takes no payments until a gateway is configured "
                         "(BILLFOLD_LIVE_GATEWAY).", code="no_live_gateway", status=503,
                         title="No payment gateway for live mode")


GatewayFor = Callable[[Scope], Gateway]


def gateways(settings: Settings, factory: sessionmaker[Session]) -> GatewayFor:
    key = instance_key(settings)
    test = TestGateway(factory, settlement_business_days=settings.ach_settlement_days,
                       fingerprint_key=key)
    live: Gateway | None = None
    if settings.live_gateway == "test":
        live = test
    elif settings.live_gateway:
        live = get_gateway(settings.live_gateway, sessions=factory, fingerprint_key=key)

    def pick(scope: Scope) -> Gateway:
        if scope.mode == "test":
            return test
        if live is None:
            raise NoLiveGateway()
        return live

    return pick
