"""Delivering issued invoices: a PDF of every one, then email and/or paper as the owing
account's invoice type asks (GTV's Invoice Type: email, paper, paper_and_email, none).

1. ``invoice_issued`` / ``invoices_issued``, in the transaction that issues the invoice:
   queue ``invoicing.render`` (keyed by the invoice id); ``delivery_status`` becomes
   ``pending`` when the type asks for delivery, ``not_required`` for ``none``.
2. The render job stores ``tenants/<tenant>/<mode>/invoices/<invoice id>.pdf`` and, for
   email, queues one outbox email with the PDF to the Distribute Invoice recipients
   (invoicing/distribution.py), or records that there is nobody to send it to.
3. Paper: when a bill run completes, ``invoicing.print_batch`` (keyed by the run id) puts
   all its paper invoices in one PDF with a CSV mailing manifest, under
   ``tenants/<tenant>/<mode>/print/<run id>.pdf|.csv``. A paper invoice issued outside a
   run (a finalized one-off) gets a print batch of its own, keyed and named by its id, at
   once: waiting for a tenant-wide batch would hold it for a schedule Billfold lacks.
4. The outbox tells ``message_outcome`` when the email is sent or fails for good.

After each of 2-4, ``settle`` works the status out again from what each channel has done:
``sent`` once every channel the type asks for is done, ``failed`` (``delivery_error``
says why) when one failed for good, ``pending`` while one is under way.

An account whose ``email_notify`` is off (the payer's "email me new invoices" preference)
gets no invoice email; its paper, if any, still goes. The email channel then counts as
skipped: ``delivery_error`` notes it (``EMAIL_OFF``), and an email-only invoice is
``not_required``. An email sent before the preference changed still counts as sent.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from billfold.core import bulk, clock, jobs
from billfold.core.config import Settings
from billfold.core.db import among, by_ids, chunks
from billfold.core.errors import NotFound
from billfold.core.filestore import FileStore
from billfold.core.ids import new_id
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.invoicing import distribution, documents, labels
from billfold.invoicing.models import Invoice
from billfold.invoicing.render import InvoiceRenderer
from billfold.notifications import outbox
from billfold.notifications.models import OutboxMessage

RENDER = "invoicing.render"
PRINT_BATCH = "invoicing.print_batch"
EMAIL_TYPES = frozenset({"email", "paper_and_email"})
PAPER_TYPES = frozenset({"paper", "paper_and_email"})
NOT_DELIVERED = ("draft", "void", "suppressed")
EMAIL_OFF = "not emailed: the account's email notifications (email_notify) are off"
RENDER_BATCH = 16  # invoices a render job's batch takes at most (jobs.Batched)


def pdf_key(scope: Scope, invoice_id: str) -> str:
    return f"tenants/{scope.tenant_id}/{scope.mode}/invoices/{invoice_id}.pdf"


def print_batch_key(scope: Scope, batch_id: str, extension: str) -> str:
    """Where a print batch (``pdf`` or ``csv``) is kept; ``batch_id`` is the bill run's id,
    or a one-off invoice's."""
    return f"tenants/{scope.tenant_id}/{scope.mode}/print/{batch_id}.{extension}"


def initial_status(invoice_type: str, email_notify: bool = True) -> str:
    channels = PAPER_TYPES | (EMAIL_TYPES if email_notify else frozenset())
    return "pending" if invoice_type in channels else "not_required"


# -- issuing -------------------------------------------------------------------------------


def invoice_issued(session: Session, scope: Scope, invoice: Invoice) -> None:
    """Queue the rendering and delivery of one invoice just issued (finalized)."""
    account = _account(session, invoice)
    invoice.delivery_status = initial_status(account.invoice_type, account.email_notify)
    invoice.delivery_error = None
    jobs.enqueue(session, kind=RENDER, key=invoice.id, scope=scope,
                 payload={"invoice_id": invoice.id})
    if account.invoice_type in PAPER_TYPES and invoice.bill_run_id is None:
        jobs.enqueue(session, kind=PRINT_BATCH, key=invoice.id, scope=scope,
                     payload={"invoice_id": invoice.id})


def invoices_issued(session: Session, scope: Scope, issued: list[tuple[str, str]]) -> None:
    """``invoice_issued`` for a bill run's batch of (invoice id, invoice type), whose rows
    were written with their initial delivery status: queue their rendering with one
    statement. The invoices are new, so no job of theirs can exist yet; a run's paper
    invoices join the run's print batch (``bill_run_completed``)."""
    now = clock.utcnow()
    bulk.insert_rows(session, cast(Table, jobs.Job.__table__), [
        _job_row(scope, RENDER, invoice_id, {"invoice_id": invoice_id}, now)
        for invoice_id, _ in issued])


def _job_row(scope: Scope, kind: str, key: str, payload: dict[str, Any], now: datetime
             ) -> dict[str, Any]:
    return {"id": new_id("job"), "tenant_id": scope.tenant_id, "mode": scope.mode,
            "kind": kind, "key": key, "payload": payload, "status": "queued", "attempts": 0,
            "max_attempts": 8, "run_after": now, "created_at": now}


def bill_run_completed(session: Session, scope: Scope, bill_run_id: str) -> None:
    """Queue the print batch of a run's paper invoices (once, however often called)."""
    jobs.enqueue(session, kind=PRINT_BATCH, key=bill_run_id, scope=scope,
                 payload={"bill_run_id": bill_run_id})


# -- the renderer --------------------------------------------------------------------------

_renderers = threading.local()


def renderer() -> InvoiceRenderer:
    """This thread's renderer: its Typst compiler caches fonts and the template, so it is
    built on first use and reused. One per thread, so a worker's job threads typeset
    side by side (a renderer serialises its own compilations)."""
    found: InvoiceRenderer | None = getattr(_renderers, "renderer", None)
    if found is None:
        found = _renderers.renderer = InvoiceRenderer()
    return found


# -- jobs ----------------------------------------------------------------------------------


class RenderInvoice:
    """``invoicing.render``: the invoice's PDF, then its email if its type asks for one.

    Jobs come in batches (``jobs.Batched``) of up to ``batch_size``: the invoices and what
    their documents need are read with a few statements for the batch, and their emails
    and statuses written likewise, so a worker spends its time typesetting rather than
    waiting on the database. Typst takes a while, and on SQLite nobody else may write
    while a transaction is open, so the job commits what it read before rendering and locks
    the invoices again after. Running twice is harmless: the PDF is replaced by the same
    bytes, and an email that exists is not queued again."""

    batch_size = RENDER_BATCH

    def __init__(self, settings: Settings) -> None:
        self.files = FileStore(settings.data_dir)

    def __call__(self, session: Session, job: jobs.Job) -> None:
        self.run_batch(session, [job])

    def run_batch(self, session: Session, batch: list[jobs.Job]) -> None:
        wanted: dict[Scope, list[str]] = {}
        for job in batch:
            wanted.setdefault(_scope(job), []).append(str(job.payload["invoice_id"]))
        docs = {scope: documents.documents_for(session, scope, _invoices(session, scope, ids))
                for scope, ids in wanted.items()}
        session.commit()
        for scope, group in docs.items():
            for doc in group:
                self.files.put(pdf_key(scope, doc.invoice_id), renderer().render(doc))
        for scope, ids in wanted.items():
            invoices = _invoices(session, scope, ids, for_update=True)
            for invoice in invoices:
                invoice.pdf_key = pdf_key(scope, invoice.id)
            accounts = _accounts(session, invoices)
            _queue_emails(session, scope, invoices, accounts,
                          biller=docs[scope][0].biller.name)
            settle_many(session, scope, invoices, accounts=accounts)

    def on_failure(self, session: Session, job: jobs.Job, error: str) -> None:
        if job.status == "dead":
            scope = _scope(job)
            settle(session, scope, _invoice(session, scope, str(job.payload["invoice_id"]),
                                            for_update=True))


class PrintBatch:
    """``invoicing.print_batch``: a run's paper invoices (or one one-off invoice) in one
    PDF, in invoice-number order, and its CSV mailing manifest; then their paper delivery
    is done. Commits before rendering, like RenderInvoice; running twice writes the same
    files again."""

    def __init__(self, settings: Settings) -> None:
        self.files = FileStore(settings.data_dir)

    def __call__(self, session: Session, job: jobs.Job) -> None:
        scope = _scope(job)
        invoices = _batch_invoices(session, scope, job.payload)
        if not invoices:
            return
        docs = documents.documents_for(session, scope, invoices)
        session.commit()
        batch = renderer().render_print_batch(docs)
        batch_id = _batch_id(job.payload)
        self.files.put(print_batch_key(scope, batch_id, "csv"), batch.manifest_csv.encode())
        self.files.put(print_batch_key(scope, batch_id, "pdf"), batch.pdf)
        settle_many(session, scope, _invoices(session, scope, [i.id for i in invoices],
                                              for_update=True), printed=True)

    def on_failure(self, session: Session, job: jobs.Job, error: str) -> None:
        if job.status == "dead":
            scope = _scope(job)
            settle_many(session, scope, _batch_invoices(session, scope, job.payload))


def _batch_id(payload: dict[str, Any]) -> str:
    return str(payload.get("bill_run_id") or payload["invoice_id"])


def _batch_invoices(session: Session, scope: Scope, payload: dict[str, Any]) -> list[Invoice]:
    stmt = select(Invoice).join(BillingAccount, BillingAccount.id == Invoice.billing_account_id) \
        .where(Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
               Invoice.status.not_in(NOT_DELIVERED),
               BillingAccount.invoice_type.in_(sorted(PAPER_TYPES)))
    if "bill_run_id" in payload:
        stmt = stmt.where(Invoice.bill_run_id == payload["bill_run_id"])
    else:
        stmt = stmt.where(Invoice.id == payload["invoice_id"])
    return list(session.scalars(stmt.order_by(Invoice.number)))


def message_outcome(session: Session, message: OutboxMessage) -> None:
    """The outbox's listener for messages about invoices: sent, or failed for good."""
    scope = Scope(message.tenant_id, message.mode)  # type: ignore[arg-type]
    invoice = session.get(Invoice, message.about_id, with_for_update=True)
    if invoice is not None and invoice.tenant_id == scope.tenant_id:
        settle(session, scope, invoice)


def handlers(settings: Settings) -> dict[str, jobs.Handler]:
    """The job handlers of delivery, for ``jobs.run_pending``."""
    return {RENDER: RenderInvoice(settings), PRINT_BATCH: PrintBatch(settings)}


def outbox_listeners() -> dict[str, outbox.OutcomeListener]:
    """What to pass as ``listeners`` to ``outbox.handlers`` so invoices follow their email."""
    return {"invoice": message_outcome}


# -- email -------------------------------------------------------------------------------


def _queue_emails(session: Session, scope: Scope, invoices: list[Invoice],
                  accounts: dict[str, BillingAccount], *, biller: str) -> None:
    """Queue the email of each invoice just rendered whose account takes invoices by email,
    to its Distribute Invoice recipients, unless it has one already (a second run) or
    there is nobody to send it to (``settle`` then says why)."""
    emailing = [i for i in invoices if i.status not in NOT_DELIVERED
                and accounts[i.billing_account_id].invoice_type in EMAIL_TYPES
                and accounts[i.billing_account_id].email_notify]
    sent = emails_of(session, scope, [i.id for i in emailing])
    unsent = [i for i in emailing if i.id not in sent]
    to = distribution.recipients_for(session, scope,
                                     [accounts[i.billing_account_id] for i in unsent])
    outbox.enqueue_messages(session, scope, [
        _email(scope, invoice, accounts[invoice.billing_account_id],
               to[invoice.billing_account_id].emails, biller)
        for invoice in unsent if to[invoice.billing_account_id].emails])


def _email(scope: Scope, invoice: Invoice, account: BillingAccount, to: tuple[str, ...],
           biller: str) -> dict[str, Any]:
    fmt = labels.formatter(account.preferred_language or labels.FALLBACK_LANGUAGE)
    words, number = fmt.labels, invoice.number or invoice.id
    due = invoice.amount_due_minor
    text = [f"{words.invoice} {number}", f"{words.account}: {account.number}"]
    if invoice.issue_date is not None:
        text.append(f"{words.issue_date}: {fmt.date(invoice.issue_date)}")
    text.append(f"{words.due_date}: " + (fmt.date(invoice.due_date) if invoice.due_date
                                         else words.due_on_receipt))
    text.append(f"{words.amount_due}: {fmt.money(due, invoice.currency)}")
    if due > 0 and invoice.due_date is not None:
        text += ["", words.pay_by.format(amount=fmt.money(due, invoice.currency),
                                         date=fmt.date(invoice.due_date))]
    text += ["", biller]
    return outbox.email_values(
        scope, to=list(to), subject=f"{words.invoice} {number} · {biller}",
        text="\n".join(text) + "\n", about=("invoice", invoice.id),
        attachments=[outbox.Attachment(f"{number}.pdf", "application/pdf",
                                       pdf_key(scope, invoice.id))])


def email_of(session: Session, scope: Scope, invoice: Invoice) -> OutboxMessage | None:
    """The email that delivered the invoice: the first message about it carrying its PDF
    (later ones, such as reminders, do not count)."""
    return emails_of(session, scope, [invoice.id]).get(invoice.id)


def emails_of(session: Session, scope: Scope, invoice_ids: list[str]
              ) -> dict[str, OutboxMessage]:
    """``email_of`` of many invoices, by invoice id (those with none left out)."""
    found = {}
    for invoice_id, messages in outbox.deliveries_about(session, scope, "invoice",
                                                        invoice_ids).items():
        key = pdf_key(scope, invoice_id)
        first = next((m for m in messages
                      if any(a.get("file_key") == key for a in m.attachments)), None)
        if first is not None:
            found[invoice_id] = first
    return found


# -- status --------------------------------------------------------------------------------


def settle(session: Session, scope: Scope, invoice: Invoice, *, printed: bool | None = None
           ) -> None:
    """Set ``delivery_status`` and ``delivery_error`` from what each channel the account's
    invoice type asks for has done. ``printed`` says the caller has just printed it."""
    settle_many(session, scope, [invoice], printed=printed)


def settle_many(session: Session, scope: Scope, invoices: list[Invoice], *,
                printed: bool | None = None,
                accounts: dict[str, BillingAccount] | None = None) -> None:
    """``settle`` of many invoices, what it needs read with a few statements for all
    (``accounts``, their owing accounts by id, if the caller has read them already)."""
    accounts = accounts if accounts is not None else _accounts(session, invoices)
    emailed = [i for i in invoices if accounts[i.billing_account_id].invoice_type in EMAIL_TYPES]
    messages = emails_of(session, scope, [i.id for i in emailed]) if emailed else {}
    # What explains an email that never went, read only for the invoices it may explain.
    unsent = [i for i in emailed
              if i.id not in messages and accounts[i.billing_account_id].email_notify]
    render_jobs = _jobs_by_key(session, RENDER, [i.id for i in unsent if i.pdf_key is None])
    nobody = distribution.recipients_for(session, scope, [
        accounts[i.billing_account_id] for i in unsent
        if i.pdf_key is not None and i.status not in NOT_DELIVERED])
    papered = [] if printed else [
        i for i in invoices if accounts[i.billing_account_id].invoice_type in PAPER_TYPES]
    batches = _jobs_by_key(session, PRINT_BATCH, [i.bill_run_id or i.id for i in papered])
    for invoice in invoices:
        account = accounts[invoice.billing_account_id]
        email = None
        if account.invoice_type in EMAIL_TYPES:
            recipients = nobody.get(account.id)
            email = _email_state(invoice, account, messages.get(invoice.id),
                                 render_jobs.get(invoice.id),
                                 recipients.reason if recipients else None)
        paper = None
        if account.invoice_type in PAPER_TYPES:
            paper = ("done", None) if printed \
                else _paper_state(batches.get(invoice.bill_run_id or invoice.id))
        _set_status(invoice, [s for s in (email, paper) if s is not None])


def _set_status(invoice: Invoice, states: list[tuple[str, str | None]]) -> None:
    skipped = [reason for state, reason in states if state == "skipped" and reason]
    states = [s for s in states if s[0] != "skipped"]
    if invoice.status in NOT_DELIVERED:  # voided: what has not started never will
        states = [s for s in states if s[0] != "waiting"]
    if not states:
        invoice.delivery_status = "not_required"
        invoice.delivery_error = "; ".join(skipped) or None
        return
    problems = [reason for state, reason in states if state == "failed" and reason]
    notes = [reason for state, reason in states if state == "done" and reason] + skipped
    if problems:
        invoice.delivery_status = "failed"
    elif any(state == "waiting" for state, _ in states):
        invoice.delivery_status = "pending"
    else:
        invoice.delivery_status = "sent"
    invoice.delivery_error = "; ".join(problems or notes)[:2000] or None


def _email_state(invoice: Invoice, account: BillingAccount, message: OutboxMessage | None,
                 render_job: jobs.Job | None, nobody_because: str | None
                 ) -> tuple[str, str | None]:
    if message is None and not account.email_notify:
        return "skipped", EMAIL_OFF
    if message is None:
        if invoice.pdf_key is None:
            if render_job is not None and render_job.status == "dead":
                return "failed", f"the PDF could not be rendered: {render_job.last_error}"
            return "waiting", None
        if invoice.status in NOT_DELIVERED:
            return "waiting", None
        return "failed", "not emailed: " + (
            nobody_because or "no Distribute Invoice recipient when the invoice was rendered")
    if message.status == "queued":
        return "waiting", None
    if message.status == "failed":
        return "failed", f"the email to {', '.join(message.to)} failed: {message.last_error}"
    return "done", message.last_error


def _paper_state(job: jobs.Job | None) -> tuple[str, str | None]:
    if job is not None and job.status == "done":
        return "done", None
    if job is not None and job.status == "dead":
        return "failed", f"the print batch could not be made: {job.last_error}"
    return "waiting", None


def _jobs_by_key(session: Session, kind: str, keys: list[str]) -> dict[str, jobs.Job]:
    found = {}
    for chunk in chunks(keys):
        for job in session.scalars(select(jobs.Job).where(
                jobs.Job.kind == kind, among(session, jobs.Job.key, chunk))):
            found[str(job.key)] = job
    return found


# -- helpers -------------------------------------------------------------------------------


def _scope(job: jobs.Job) -> Scope:
    scope = job.scope
    if scope is None:
        raise NotFound("tenant", "(none: the job belongs to no tenant)")
    return scope


def _invoice(session: Session, scope: Scope, invoice_id: str, *, for_update: bool = False
             ) -> Invoice:
    invoice = session.get(Invoice, invoice_id, with_for_update=for_update or None,
                          populate_existing=True)
    if invoice is None or invoice.tenant_id != scope.tenant_id or invoice.mode != scope.mode:
        raise NotFound("invoice", invoice_id)
    return invoice


def _invoices(session: Session, scope: Scope, invoice_ids: list[str], *,
              for_update: bool = False) -> list[Invoice]:
    """The invoices of ``scope`` with these ids, in id order (locked in that order, so two
    batches cannot deadlock); NotFound names the first that is missing."""
    found: dict[str, Invoice] = {}
    for chunk in chunks(invoice_ids):
        stmt = select(Invoice).where(among(session, Invoice.id, chunk),
                                     Invoice.tenant_id == scope.tenant_id,
                                     Invoice.mode == scope.mode).order_by(Invoice.id)
        if for_update:
            stmt = stmt.with_for_update()
        found |= {i.id: i for i in session.scalars(
            stmt.execution_options(populate_existing=True))}
    if missing := sorted(set(invoice_ids) - set(found)):
        raise NotFound("invoice", missing[0])
    return [found[i] for i in sorted(found)]


def _accounts(session: Session, invoices: list[Invoice]) -> dict[str, BillingAccount]:
    """The owing accounts of the invoices, by id."""
    accounts = {a.id: a for a in by_ids(session, BillingAccount,
                                         {i.billing_account_id for i in invoices})}
    if missing := {i.billing_account_id for i in invoices} - set(accounts):
        raise NotFound("billing_account", sorted(missing)[0])
    return accounts


def _account(session: Session, invoice: Invoice) -> BillingAccount:
    account = session.get(BillingAccount, invoice.billing_account_id)
    if account is None:
        raise NotFound("billing_account", invoice.billing_account_id)
    return account
