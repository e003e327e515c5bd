"""The ASGI application."""

from __future__ import annotations

from fastapi import FastAPI, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine

from billfold import __version__
from billfold.core import affinity, heap
from billfold.core.config import Settings, get_settings
from billfold.core.db import checkpoint_in_background, make_engine, make_sessionmaker
from billfold.payments import setup as payment_setup
from billfold.web import problems
from billfold.web.api import (
    catalog,
    customers,
    delivery,
    invoicing,
    ledger,
    orders,
    payments,
    reference,
    sso,
    tax,
)
from billfold.web.deps import DbSession
from billfold.web.middleware import RequestGuard
from billfold.web.pages import pay as pay_page
from billfold.web.pages import portal, portal_auth, portal_autopay, portal_people, static_app
from billfold.web.pages import sso as sso_page

DESCRIPTION = """Billfold's JSON API. Authenticate with `Authorization: Bearer <api key>`
(`bf_test_…` or `bf_live_…`). Errors are `application/problem+json` with a stable `code`
and one entry per wrong field. Every POST and PATCH accepts an `Idempotency-Key` header."""


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    app = FastAPI(title="Billfold", version=__version__, description=DESCRIPTION)
    app.state.settings, app.state.engine, app.state.sessions = settings, engine, sessions
    app.state.gateways = payment_setup.gateways(settings, sessions)
    problems.install(app)
    # FastAPI asks each included router in turn whether a request is its own; the money
    # is taken through these, so they are asked first (no path is served by two routers,
    # so the order changes nothing else; tests/web/test_routing.py).
    app.include_router(payments.router)
    app.include_router(payments.cloud_router)
    app.include_router(reference.router)
    app.include_router(customers.router)
    app.include_router(ledger.router)
    app.include_router(tax.router)
    app.include_router(catalog.router)
    app.include_router(orders.router)
    app.include_router(invoicing.router)
    app.include_router(delivery.router)
    app.include_router(pay_page.router)
    app.include_router(sso.router)
    app.include_router(sso_page.router)
    app.include_router(portal_auth.router)
    app.include_router(portal.router)
    app.include_router(portal_autopay.router)
    app.include_router(portal_people.router)
    app.mount("/static", static_app(), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon; browsers ask on every page

    @app.get("/healthz", tags=["health"])
    def healthz(db: DbSession) -> dict[str, str]:
        db.execute(text("SELECT 1"))
        return {"status": "ok", "database": engine.dialect.name}

    app.add_middleware(RequestGuard, settings=settings, sessions=sessions)
    return app


def serving_app() -> FastAPI:
    """The application as each process of ``billfold serve --processes N`` builds it."""
    app = create_app()
    checkpoint_in_background(app.state.engine)
    heap.settle()
    if app.state.settings.pin_cpus:
        affinity.pin_to_free_cpu()
    return app
