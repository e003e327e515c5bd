"""The ``billfold`` command: the jobs an operator runs. The only module importing Typer."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal, cast

import typer
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import affinity, clock, heap, jobs
from billfold.core.config import Settings, get_settings
from billfold.core.db import checkpoint_in_background, make_engine, make_sessionmaker, transaction
from billfold.core.scope import Mode, Scope

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
    from billfold.invoicing import distribution
    from billfold.tenants import service as tenants

    with _sessions()() as session:
        try:
            with transaction(session):
                tenant = tenants.create_tenant(session, name=name)
                distribution.enable_for_all_accounts(session, tenant_id=tenant.id, actor="cli")
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


@app.command("sso-link")
def sso_link(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    user: Annotated[str, typer.Option("--user", help="The biller's user name (the token's sub)")],
    account: Annotated[list[str], typer.Option(
        "--account", help="Billing account number; repeat for several")],
    mode: Annotated[str, typer.Option("--mode", help="test or live")] = "test",
    email: Annotated[str | None, typer.Option(
        "--email", help="The payer's email (default: the first account's customer email)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The payer's name")] = None,
) -> None:
    """Print a working SSO link into the payer portal (valid for 5 minutes, once), built as
    a biller's site builds it. Creates the mode's SSO credentials if there are none."""
    from billfold.access import payers, sso
    from billfold.core.errors import BillfoldError
    from billfold.core.scope import MODES
    from billfold.customers.models import Customer
    from billfold.tenants import service as tenants

    if mode not in MODES:
        _fail("--mode must be test or live")
    scope = Scope(tenant, cast(Mode, mode))
    base_url = str(get_settings().base_url)
    with _sessions()() as session:
        try:
            with transaction(session):
                tenants.get_tenant(session, tenant)
                if not tenants.get_settings(session, scope).sso_enabled:
                    _fail(f"SSO is off for this tenant's {mode} mode: PATCH /v1/settings "
                          "with {\"sso_enabled\": true} first")
                found = payers.accounts_by_number(session, scope, account)
                if not found:
                    _fail("none of the accounts given exists in this tenant and mode")
                if email is None:
                    email = session.get(Customer, found[0].customer_id).primary_email  # type: ignore[union-attr]
                # An address the token's reader refuses would make a link that never works.
                email = payers.normalize_email(str(email), field="--email")
                credentials = sso.current(session, scope, base_url=base_url) \
                    or sso.rotate(session, scope, base_url=base_url)
        except BillfoldError as exc:
            _fail(str(exc))
    token = sso.make_token(credentials, user=user, email=str(email), name=name or user,
                           accounts=account)
    typer.echo(f"{credentials.sso_url}?token={token}")


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
    """Load the demo biller (idempotent), bill it as a worker would, and print its API key."""
    from billfold import demo as demo_data

    settings = get_settings()
    sessions = _sessions()
    with sessions() as session:
        result = demo_data.load(session, settings.data_dir, settings.base_url)
    # The demo's bill run, PDFs, print batch and mail are jobs: run every due job here, as
    # `billfold worker --once` does, so the demo is complete before `serve` starts.
    _worker_loop(once=True, sessions=sessions)
    with sessions() as session:
        billing = demo_data.billing(session, result.tenant_id, settings.data_dir)
    typer.echo(f"demo tenant {result.tenant_id}: {result.summary}")
    if billing is not None:
        typer.echo(f"bill run {billing.run_id} as of {billing.as_of_date}: {billing.status}; "
                   f"{billing.issued} invoices issued ({', '.join(billing.currencies)}), "
                   f"{billing.suppressed} suppressed under their account's minimum")
        typer.echo(f"  PDFs:         {billing.pdf_dir}/ ({billing.rendered} of {billing.issued})")
        if billing.print_batch is not None:
            typer.echo(f"  print batch:  {billing.print_batch} (and its .csv mailing list)")
        where = "sent through BILLFOLD_SMTP_URL" if settings.smtp_url \
            else f"written as .eml files to {billing.mail_dir}/"
        typer.echo(f"  mail:         {billing.emailed} invoice emails {where}")
    with sessions() as session:
        link = demo_data.pay_link(session, result.tenant_id, settings.base_url)
    typer.echo(f"API docs:     {settings.base_url}/docs")
    typer.echo(f"demo API key: {result.api_key}")
    typer.echo(f"try: curl -H 'Authorization: Bearer {result.api_key}' "
               f"{settings.base_url}/v1/customers")
    if link is not None:
        typer.echo(f"pay a Widgets International invoice (test card 4242 4242 4242 4242): {link}")
    with sessions() as session:
        for line in demo_data.portal_hints(session, result.tenant_id, settings.base_url):
            typer.echo(line)
    typer.echo("a Cloud Payments V2 request (its CloudPaymentURL is a payment page):")
    typer.echo("  " + demo_data.cloud_payments_curl(result.api_key, settings.base_url))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no in-process worker")] = False,
    processes: Annotated[int, typer.Option(
        min=1, max=64, help="API processes (more than one: for PostgreSQL; on SQLite one "
                            "process serves best, its writers take turns in-process)")] = 1,
    pin_cpus: Annotated[bool | None, typer.Option(
        "--pin-cpus/--no-pin-cpus",
        help="Keep each API process on a CPU of its own (default: BILLFOLD_PIN_CPUS, on)")
    ] = None,
    access_log: Annotated[bool | None, typer.Option(
        "--access-log/--no-access-log",
        help="Log a line per request (default: BILLFOLD_ACCESS_LOG, off)")] = None,
) -> None:
    """Run the HTTP API (and one worker, unless --no-worker)."""
    import uvicorn

    from billfold.web.app import create_app

    # Through the environment, so the processes of --processes N read them too.
    for name, value in (("BILLFOLD_PIN_CPUS", pin_cpus), ("BILLFOLD_ACCESS_LOG", access_log)):
        if value is not None:
            os.environ[name] = "true" if value else "false"
            get_settings.cache_clear()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level)
    # One engine for the API and the worker: on SQLite its writers then take turns on an
    # in-process lock rather than polling SQLite's busy handler.
    engine = make_engine(settings.database_url)
    checkpoint_in_background(engine)
    if not no_worker:
        threading.Thread(target=_worker_loop, kwargs={"sessions": make_sessionmaker(engine)},
                         name="billfold-worker", daemon=True).start()
    if processes > 1:
        # Each process builds its own app and engine; the worker (if any) runs here, in
        # the process that supervises them.
        uvicorn.run("billfold.web.app:serving_app", factory=True, workers=processes,
                    host=host, port=port, log_level=settings.log_level.lower(),
                    access_log=settings.access_log)
        return
    app = create_app(settings, engine)
    heap.settle()
    if settings.pin_cpus:
        # After the worker thread started: it keeps every core for its renders.
        affinity.pin_to_free_cpu()
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                access_log=settings.access_log)


# An idle worker looks for due jobs this often; a busy one goes straight on.
_IDLE_POLL_SECONDS = 1.0
_PURGE_EVERY_SECONDS = 60.0


def _job_handlers(settings: Settings) -> dict[str, jobs.Handler]:
    """Every package's job handlers, by job kind."""
    from billfold.invoicing import billrun, delivery
    from billfold.notifications import outbox, webhooks
    from billfold.payments import notify
    from billfold.tenants import service as tenants

    return {**outbox.handlers(settings, listeners=delivery.outbox_listeners()),
            **delivery.handlers(settings),
            **webhooks.handlers(settings, private_allowed=tenants.private_targets_allowed),
            **notify.handlers(), billrun.JOB_KIND: _bill_chunk_handler()}


def _worker_loop(once: bool = False, sessions: sessionmaker[Session] | None = None) -> None:
    """Run due jobs and purge expired idempotency keys until stopped; with ``once``, until
    no job is due."""
    from billfold.access import idempotency, payers, sso
    from billfold.collections import autopay
    from billfold.payments import after
    from billfold.payments import setup as payment_setup

    settings = get_settings()
    sessions = sessions or _sessions()
    handlers = _job_handlers(settings)
    gateways = payment_setup.gateways(settings, sessions)
    worker_id = jobs.default_worker_id()
    log = logging.getLogger("billfold.worker")
    if not once:
        _start_job_threads(settings, sessions, worker_id, settings.worker_threads - 1)
    purged_at: float | None = None
    kept_at: float | None = None
    while True:
        ran = 0
        try:
            if purged_at is None or time.monotonic() - purged_at >= _PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                with sessions() as session, transaction(session):
                    purged = idempotency.purge_expired(
                        session, retention_hours=settings.idempotency_retention_hours)
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
                with sessions() as session, transaction(session):
                    # Nothing here can sign anyone in any more; an SSO token id is kept
                    # until its token's exp (plus the skew) refuses a replay anyway.
                    now = clock.utcnow()
                    purged = payers.purge_expired(session, before=now) \
                        + sso.forget_spent(session, before=now)
                if purged:
                    log.info("purged %d expired portal sessions, tokens and SSO token ids",
                             purged)
            ran = jobs.run_pending(sessions, handlers, worker_id=worker_id)
            if ran == 0 and (kept_at is None
                             or time.monotonic() - kept_at >= _PURGE_EVERY_SECONDS):
                # When idle, so due jobs never wait for it: bank settlements, returns and
                # chargebacks the gateways report, payments whose outcome was lost, and
                # the autopay charges of invoices that have come due.
                kept_at = time.monotonic()
                after.housekeeping_everywhere(sessions, gateways)
                autopay.run_everywhere(sessions, gateways, settings)
        except Exception:
            if once:
                log.exception("worker pass failed")
                raise typer.Exit(1) from None
            log.exception("worker pass failed; retrying")
        if once and ran == 0:
            return
        if ran == 0:
            time.sleep(_IDLE_POLL_SECONDS)


def _start_job_threads(settings: Settings, sessions: sessionmaker[Session], worker_id: str,
                       count: int, stop: threading.Event | None = None
                       ) -> list[threading.Thread]:
    """Threads beside the worker's own loop that run only the heavy jobs, invoice renders
    and bill-run chunks: Typst lets go of the GIL while it typesets and a chunk while the
    database writes its rows, so a process keeps as many cores busy as it has threads
    (BILLFOLD_WORKER_THREADS in all, the loop included). ``--once`` runs none. They run
    until the process ends, or until ``stop`` is set."""
    from billfold.invoicing import billrun, delivery

    handlers = {delivery.RENDER: delivery.handlers(settings)[delivery.RENDER],
                billrun.JOB_KIND: _bill_chunk_handler()}
    threads = [threading.Thread(target=_job_loop, name=f"billfold-jobs-{number}",
                                args=(sessions, handlers, f"{worker_id}-jobs-{number}",
                                      stop or threading.Event()), daemon=True)
               for number in range(1, count + 1)]
    for thread in threads:
        thread.start()
    return threads


def _job_loop(sessions: sessionmaker[Session], handlers: dict[str, jobs.Handler],
              worker_id: str, stop: threading.Event) -> None:
    log = logging.getLogger("billfold.worker")
    while not stop.is_set():
        ran = 0
        try:
            ran = jobs.run_pending(sessions, handlers, worker_id=worker_id, kinds=list(handlers))
        except Exception:
            log.exception("job pass failed; retrying")
        if ran == 0:
            stop.wait(_IDLE_POLL_SECONDS)


@app.command()
def worker(once: Annotated[bool, typer.Option(
        "--once", help="Run until no job is due, then exit")] = False) -> None:
    """Process background work from the database until stopped."""
    logging.basicConfig(level=get_settings().log_level)
    if once:
        _worker_loop(once=True)
        return
    engine = make_engine(get_settings().database_url)
    checkpoint_in_background(engine)
    heap.settle()
    _worker_loop(sessions=make_sessionmaker(engine))


# -- bill runs ---------------------------------------------------------------------------

# Tells the bill-run command of each account a chunk handler finishes:
# (run id, tenant and mode, accounts in the run, accounts just done).
BillProgress = Callable[[str, Scope, int, int], None]


@dataclass
class _Run:
    """A bill run the bill-run command reports on."""

    id: str
    scope: Scope
    accounts: int
    created: bool | None  # None: a run another command started, whose chunk this one billed
    done: int = 0  # accounts billed (or failed) so far


def _bill_chunk_handler(progress: BillProgress | None = None) -> jobs.Handler:
    """The handler of bill-run chunks, for `billfold worker` and `billfold bill-run` alike."""
    from billfold.invoicing import billrun
    from billfold.invoicing.models import BillRun, BillRunChunk

    if progress is None:
        return billrun.bill_chunk
    report = progress

    def bill_chunk(session: Session, job: jobs.Job) -> None:
        chunk = session.get(BillRunChunk, job.payload.get("chunk_id", ""))
        run = session.get(BillRun, chunk.bill_run_id) if chunk is not None else None
        if chunk is None or run is None:
            billrun.bill_chunk(session, job)
            return
        run_id, total = run.id, run.accounts_total
        scope = Scope(chunk.tenant_id, cast(Mode, chunk.mode))
        billrun.bill_chunk(session, job, progress=lambda done: report(run_id, scope, total, done))

    return bill_chunk


def _as_of_date(text: str) -> date:
    # date.fromisoformat alone would also take 20260401 and week dates.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text.strip())
    raise ValueError(f"{text!r} is not a date; give YYYY-MM-DD, e.g. 2026-04-01")


def _bill_run_scopes(session: Session, *, as_of: date, bill_cycle: str | None,
                     tenant: str | None, mode: str | None) -> list[Scope]:
    """The tenants and modes (narrowed by the options) with an account that may be due."""
    from sqlalchemy import or_, select

    from billfold.customers.models import BillingAccount
    from billfold.tenants.models import BillCycle, Tenant

    if tenant is not None and session.get(Tenant, tenant) is None:
        raise typer.BadParameter(f"no tenant with id {tenant!r}", param_hint="'--tenant'")
    if bill_cycle is not None:
        cycle = session.get(BillCycle, bill_cycle)
        if cycle is None or tenant not in (None, cycle.tenant_id) or mode not in (None, cycle.mode):
            raise typer.BadParameter(f"no bill cycle with id {bill_cycle!r}"
                                     + (" in that tenant and mode" if tenant or mode else ""),
                                     param_hint="'--bill-cycle'")
    account = BillingAccount
    stmt = select(account.tenant_id, account.mode).distinct().where(
        account.status == "active", account.responsible_account_id.is_(None),
        account.start_date <= as_of,
        or_(account.next_bill_date.is_(None), account.next_bill_date <= as_of))
    if tenant is not None:
        stmt = stmt.where(account.tenant_id == tenant)
    if mode is not None:
        stmt = stmt.where(account.mode == mode)
    if bill_cycle is not None:
        stmt = stmt.where(account.bill_cycle_id == bill_cycle)
    return [Scope(t, cast(Mode, m)) for t, m in sorted(session.execute(stmt).all())]


def _open_chunks(session: Session, run_ids: Collection[str]) -> dict[str, int]:
    """How many chunk jobs of these runs are in each job status."""
    from sqlalchemy import func, select

    from billfold.invoicing import billrun
    from billfold.invoicing.models import BillRunChunk

    return dict(session.execute(
        select(jobs.Job.status, func.count()).join(BillRunChunk, BillRunChunk.id == jobs.Job.key)
        .where(jobs.Job.kind == billrun.JOB_KIND, BillRunChunk.bill_run_id.in_(list(run_ids)))
        .group_by(jobs.Job.status)).all())


def _accounts_done(session: Session, run_ids: Collection[str]) -> dict[str, int]:
    """Accounts of each run billed or failed so far, by any worker."""
    from sqlalchemy import func, select

    from billfold.invoicing.models import BilledPeriod, BillRunFailure

    done: dict[str, int] = dict.fromkeys(run_ids, 0)
    for model in (BilledPeriod, BillRunFailure):
        for run_id, count in session.execute(
                select(model.bill_run_id, func.count(model.billing_account_id.distinct()))
                .where(model.bill_run_id.in_(list(run_ids))).group_by(model.bill_run_id)):
            done[str(run_id)] += count
    return done


def _print_bill_run(session: Session, started: _Run) -> int:
    """Print a run's summary; return how many of its accounts failed."""
    from billfold import money
    from billfold.invoicing import billrun

    scope = started.scope
    report = billrun.report(session, scope, started.id)
    run = report.run
    note = {True: "", False: " (nothing new was due: the earlier run of that date)",
            None: " (an earlier run: this command billed a chunk of it left queued)"}[
        started.created]
    totals = ", ".join(str(money.Money(total, currency))
                       for currency, total in sorted(report.totals.items())) or "nothing"
    typer.echo(f"bill run {run.id} of tenant {scope.tenant_id} ({scope.mode} mode), as of "
               f"{run.as_of_date}: {run.status}{note}")
    typer.echo(f"  accounts due: {run.accounts_total}; bill dates invoiced: {report.invoiced}, "
               f"suppressed (under the minimum): {report.suppressed}, nothing to bill: "
               f"{report.nothing_to_bill}, failed: {report.failed}")
    typer.echo(f"  invoices: {report.invoice_count}, totalling {totals}")
    for failure in report.failures:
        typer.echo(f"  FAILED {failure.billing_account_id}: {failure.reason}", err=True)
    return report.failed


@app.command("bill-run")
def bill_run(
    as_of: Annotated[date, typer.Option(
        "--as-of", parser=_as_of_date, metavar="YYYY-MM-DD",
        help="Bill every account due on or before this date")],
    bill_cycle: Annotated[str | None, typer.Option(
        "--bill-cycle", help="Only this bill cycle's accounts")] = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Only this tenant (default: every tenant with accounts due)")] = None,
    mode: Annotated[Literal["test", "live"] | None, typer.Option(
        "--mode", help="Only this mode (default: both)")] = None,
) -> None:
    """Start bill runs for the accounts due and bill them here, as a worker would (other
    workers may share the chunks); print a summary per run. Exits 1 if an account failed."""
    logging.basicConfig(level=get_settings().log_level)
    sessions = _sessions()
    runs = _start_bill_runs(sessions, as_of=as_of, bill_cycle=bill_cycle, tenant=tenant,
                            mode=mode)
    if not runs:
        typer.echo(f"no accounts are due on or before {as_of}")
        return
    # Only runs this command started are waited for; an earlier run (nothing new was due)
    # may have a chunk leased by a worker that died, and its accounts are billed already.
    waiting = [run for run in runs.values() if run.created]
    _bill_until_done(sessions, runs, waiting)
    failed = 0
    with sessions() as session:
        dead = _open_chunks(session, [run.id for run in waiting]).get("dead", 0)
        for run in runs.values():
            failed += _print_bill_run(session, run)
    if dead:
        typer.echo(f"error: {dead} chunk(s) gave up after repeated errors; see the job table",
                   err=True)
    if failed or dead:
        raise typer.Exit(1)


def _start_bill_runs(sessions: sessionmaker[Session], *, as_of: date, bill_cycle: str | None,
                     tenant: str | None, mode: str | None) -> dict[str, _Run]:
    """Start a run (each in a transaction of its own) in every tenant and mode due."""
    from billfold.core.errors import BillfoldError
    from billfold.invoicing import billrun

    runs: dict[str, _Run] = {}
    with sessions() as session:
        for scope in _bill_run_scopes(session, as_of=as_of, bill_cycle=bill_cycle,
                                      tenant=tenant, mode=mode):
            try:
                with transaction(session):
                    run, created = billrun.start_bill_run(
                        session, scope, as_of_date=as_of, bill_cycle_id=bill_cycle,
                        actor="cli:bill-run")
            except BillfoldError as exc:
                _fail(f"tenant {scope.tenant_id} ({scope.mode} mode): {exc}")
            runs[run.id] = _Run(run.id, scope, run.accounts_total, created)
            typer.echo(f"started bill run {run.id} of tenant {scope.tenant_id} ({scope.mode} mode):"
                       f" {run.accounts_total} account(s) due on or before {as_of}" if created else
                       f"nothing new is due for tenant {scope.tenant_id} ({scope.mode} mode); "
                       f"the run of that date is {run.id}")
    return runs


# A bill-run command waiting on another worker's chunk looks again this often.
_WAIT_POLL_SECONDS = 0.25


def _bill_until_done(sessions: sessionmaker[Session], runs: dict[str, _Run],
                     waiting: list[_Run]) -> None:
    """Claim and bill chunks, with a progress bar per run, until no chunk of ``waiting``
    is queued or running; chunks of other runs are billed too if they come up."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from billfold.invoicing import billrun

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("accounts"), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bar:
        tasks = {run.id: bar.add_task(f"bill run {run.id}", total=run.accounts)
                 for run in waiting}

        def show(run: _Run, done: int) -> None:
            run.done = max(run.done, min(done, run.accounts))
            bar.update(tasks[run.id], completed=run.done)

        def on_progress(run_id: str, scope: Scope, total: int, done: int) -> None:
            if run_id not in runs:  # a chunk of an earlier run, left queued
                runs[run_id] = _Run(run_id, scope, total, None)
            if run_id not in tasks:
                tasks[run_id] = bar.add_task(f"bill run {run_id}", total=total)
            show(runs[run_id], runs[run_id].done + done)

        handlers = {billrun.JOB_KIND: _bill_chunk_handler(on_progress)}
        ids = [run.id for run in waiting]

        def bill() -> None:
            worker_id = jobs.default_worker_id()
            while True:
                if jobs.run_pending(sessions, handlers, worker_id=worker_id,
                                    kinds=[billrun.JOB_KIND]):
                    continue
                with sessions() as session:
                    open_chunks = _open_chunks(session, ids)
                    if not open_chunks.get("queued") and not open_chunks.get("running"):
                        return
                    # Another worker holds a chunk (or one waits to be retried): show its
                    # progress, and take the chunk over if its lease runs out.
                    for run_id, done in _accounts_done(session, ids).items():
                        show(runs[run_id], done)
                time.sleep(_WAIT_POLL_SECONDS)

        in_threads(bill, get_settings().worker_threads)
        for run in waiting:
            show(run, run.accounts)


def in_threads(work: Callable[[], None], count: int) -> None:
    """Run ``work`` in ``count`` threads (this one among them) until each returns; the
    first error raised in any of them is raised here. A bill-run chunk lets go of the GIL
    while the database writes its rows, so chunks in threads side by side keep a second
    core busy (on SQLite they take turns at writing, as separate processes would)."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    others = [threading.Thread(target=guarded, name=f"billfold-bill-{n}", daemon=True)
              for n in range(1, count)]
    for thread in others:
        thread.start()
    guarded()
    for thread in others:
        thread.join()
    if errors:
        raise errors[0]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
