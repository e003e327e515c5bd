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
    built on first use and reused. One per thread, so a worker's render threads typeset
    side by side (a renderer serialises its own compilations)."""
    found: InvoiceRenderer | None = getattr(_renderers, "renderer", None)
    if found is None:
        found = _renderers.renderer = InvoiceRenderer()
    return found


# -- jobs ----------------------------------------------------------------------------------


class RenderInvoice:
    """``invoicing.render``: the invoice's PDF, then its email if its type asks for one.

    Typst takes a while, and on SQLite nobody else may write while a transaction is open,
    so the job commits what it read before rendering and locks the invoice again after.
    Running twice is harmless: the PDF is replaced by the same bytes, and an email that
    exists is not queued again."""

    def __init__(self, settings: Settings) -> None:
        self.files = FileStore(settings.data_dir)

    def __call__(self, session: Session, job: jobs.Job) -> None:
        scope, invoice_id = _scope(job), str(job.payload["invoice_id"])
        doc = documents.document_for(session, scope, _invoice(session, scope, invoice_id))
        session.commit()
        key = pdf_key(scope, invoice_id)
        self.files.put(key, renderer().render(doc))
        invoice = _invoice(session, scope, invoice_id, for_update=True)
        invoice.pdf_key = key
        account = _account(session, invoice)
        if account.invoice_type in EMAIL_TYPES and account.email_notify \
                and invoice.status not in NOT_DELIVERED and email_of(session, scope, invoice) is None:
            to = distribution.recipients(session, scope, account)
            if to.emails:
                _queue_email(session, scope, invoice, account, to.emails, doc.biller.name)
        settle(session, scope, invoice)

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
        for invoice in invoices:
            settle(session, scope, _invoice(session, scope, invoice.id, for_update=True),
                   printed=True)

    def on_failure(self, session: Session, job: jobs.Job, error: str) -> None:
        if job.status == "dead":
            scope = _scope(job)
            for invoice in _batch_invoices(session, scope, job.payload):
                settle(session, scope, invoice)


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


def _queue_email(session: Session, scope: Scope, invoice: Invoice, account: BillingAccount,
                 to: tuple[str, ...], biller: str) -> None:
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
    outbox.enqueue_email(
        session, scope, to=list(to), subject=f"{words.invoice} {number} · {biller}",
        text="\n".join(text) + "\n", about=("invoice", invoice.id),
        attachments=[outbox.Attachment(f"{number}.pdf", "application/pdf",
                                       pdf_key(scope, invoice.id))])


def email_of(session: Session, scope: Scope, invoice: Invoice) -> OutboxMessage | None:
    """The email that delivered the invoice: the first message about it carrying its PDF
    (later ones, such as reminders, do not count)."""
    key = pdf_key(scope, invoice.id)
    for message in outbox.deliveries_for(session, scope, "invoice", invoice.id):
        if any(a.get("file_key") == key for a in message.attachments):
            return message
    return None


# -- status --------------------------------------------------------------------------------


def settle(session: Session, scope: Scope, invoice: Invoice, *, printed: bool | None = None
           ) -> None:
    """Set ``delivery_status`` and ``delivery_error`` from what each channel the account's
    invoice type asks for has done. ``printed`` says the caller has just printed it."""
    account = _account(session, invoice)
    invoice_type = account.invoice_type
    email = _email_state(session, scope, invoice, account) if invoice_type in EMAIL_TYPES \
        else None
    paper = None
    if invoice_type in PAPER_TYPES:
        paper = ("done", None) if printed else _paper_state(session, invoice)
    states = [s for s in (email, paper) if s is not None]
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


def _email_state(session: Session, scope: Scope, invoice: Invoice, account: BillingAccount
                 ) -> tuple[str, str | None]:
    message = email_of(session, scope, invoice)
    if message is None and not account.email_notify:
        return "skipped", EMAIL_OFF
    if message is None:
        if invoice.pdf_key is None:
            failed = _dead_job(session, RENDER, invoice.id)
            return ("failed", f"the PDF could not be rendered: {failed}") if failed \
                else ("waiting", None)
        if invoice.status in NOT_DELIVERED:
            return "waiting", None
        reason = distribution.recipients(session, scope, account).reason
        return "failed", "not emailed: " + (
            reason or "no Distribute Invoice recipient when the invoice was rendered")
    if message.status == "queued":
        return "waiting", None
    if message.status == "failed":
        return "failed", f"the email to {', '.join(message.to)} failed: {message.last_error}"
    return "done", message.last_error


def _paper_state(session: Session, invoice: Invoice) -> tuple[str, str | None]:
    batch_id = invoice.bill_run_id or invoice.id
    job = session.scalars(select(jobs.Job).where(jobs.Job.kind == PRINT_BATCH,
                                                 jobs.Job.key == batch_id)).one_or_none()
    if job is not None and job.status == "done":
        return "done", None
    if job is not None and job.status == "dead":
        return "failed", f"the print batch could not be made: {job.last_error}"
    return "waiting", None


def _dead_job(session: Session, kind: str, key: str) -> str | None:
    job = session.scalars(select(jobs.Job).where(jobs.Job.kind == kind, jobs.Job.key == key)
                          ).one_or_none()
    return job.last_error if job is not None and job.status == "dead" else None


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


def _account(session: Session, invoice: Invoice) -> BillingAccount:
    account = session.get(BillingAccount, invoice.billing_account_id)
    if account is None:
        raise NotFound("billing_account", invoice.billing_account_id)
    return account
