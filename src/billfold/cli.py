"""The ``billfold`` command: the jobs an operator runs. The only module importing Typer."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.config import get_settings
from billfold.core.db import make_engine, make_sessionmaker, transaction

app = typer.Typer(help="Billfold: invoice-to-cash for billers.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (billers).", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
ledger_app = typer.Typer(help="The receivables ledger.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="api-key")
app.add_typer(ledger_app, name="ledger")


def _sessions() -> sessionmaker[Session]:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_sessionmaker(make_engine(settings.database_url))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to BILLFOLD_DATABASE_URL."""
    from billfold.core.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    typer.echo("database is up to date")


@tenant_app.command("create")
def tenant_create(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a tenant and print its id and a test-mode API key (shown once)."""
    from billfold.access import api_keys
    from billfold.core.errors import BillfoldError
    from billfold.tenants import service as tenants

    with _sessions()() as session:
        try:
            with transaction(session):
                tenant = tenants.create_tenant(session, name=name)
                issued = api_keys.create_api_key(session, tenant_id=tenant.id, mode="test")
        except BillfoldError as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant.id, "api_key": issued.secret}))
    else:
        typer.echo(f"tenant {tenant.id}\ntest API key (shown once): {issued.secret}")


@key_app.command("create")
def api_key_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    mode: Annotated[str, typer.Option("--mode", help="live or test")] = "test",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue an API key for a tenant's live or test mode (shown once)."""
    from billfold.access import api_keys
    from billfold.core.errors import BillfoldError

    with _sessions()() as session:
        try:
            with transaction(session):
                issued = api_keys.create_api_key(session, tenant_id=tenant, mode=mode)
        except BillfoldError as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"api_key_id": issued.key.id, "api_key": issued.secret,
                               "mode": mode}))
    else:
        typer.echo(f"{mode} API key {issued.key.id} (shown once): {issued.secret}")


@key_app.command("revoke")
def api_key_revoke(
    key_id: str, tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
) -> None:
    """Revoke an API key; requests with it are refused from now on."""
    from billfold.access import api_keys
    from billfold.core.errors import BillfoldError

    with _sessions()() as session:
        try:
            with transaction(session):
                api_keys.revoke_api_key(session, tenant_id=tenant, key_id=key_id)
        except BillfoldError as exc:
            _fail(str(exc))
    typer.echo(f"revoked {key_id}")


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check every entry balances and every derived balance agrees. Exits 1 otherwise."""
    from billfold.ledger.verify import verify

    with _sessions()() as session:
        problems = verify(session)
    if problems:
        for problem in problems:
            typer.echo(f"FAIL {problem}", err=True)
        typer.echo(f"ledger verify: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo("ledger verify: every entry balances and every balance agrees")


@app.command()
def demo() -> None:
    """Load the demo biller (idempotent) and print its API key."""
    from billfold import demo as demo_data

    settings = get_settings()
    with _sessions()() as session:
        result = demo_data.load(session, settings.data_dir)
    typer.echo(f"demo tenant {result.tenant_id}: {result.summary}")
    typer.echo(f"API docs:     {settings.base_url}/docs")
    typer.echo(f"demo API key: {result.api_key}")
    typer.echo(f"try: curl -H 'Authorization: Bearer {result.api_key}' "
               f"{settings.base_url}/v1/customers")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no in-process worker")] = False,
) -> None:
    """Run the HTTP API (and one worker, unless --no-worker)."""
    import threading

    import uvicorn

    from billfold.web.app import create_app

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level)
    if not no_worker:
        threading.Thread(target=_worker_loop, name="billfold-worker", daemon=True).start()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())


def _worker_loop(once: bool = False) -> None:
    from billfold.access import idempotency

    settings = get_settings()
    sessions = _sessions()
    log = logging.getLogger("billfold.worker")
    while True:
        try:
            with sessions() as session, transaction(session):
                purged = idempotency.purge_expired(
                    session, retention_hours=settings.idempotency_retention_hours)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.exception("worker pass failed; retrying")
        if once:
            return
        time.sleep(60)


@app.command()
def worker(once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False
           ) -> None:
    """Process background work from the database until stopped."""
    logging.basicConfig(level=get_settings().log_level)
    _worker_loop(once=once)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
