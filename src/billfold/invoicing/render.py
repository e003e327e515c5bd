"""Invoice PDFs with Typst: one archival PDF per invoice, and merged print batches.

Python formats every string (labels, money, dates, addresses) and hands the template a
JSON document in a file, ``data.json``, beside it; ``templates/invoice.typ`` only lays the
text out. Only the fonts compiled into Typst are used (system fonts are ignored), so a PDF
renders the same on every machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final

import typst

from billfold.invoicing.document import DocumentLine, InvoiceDocument, Party, PostalAddress, to_json
from billfold.invoicing.labels import Formatter, formatter
from billfold.money import Money

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data
TEMPLATE = TEMPLATES / "invoice.typ"
DATA_FILE = "data.json"  # what invoice.typ reads; see _Workspace
# Where _Workspace makes its directory if it can (mkdtemp: a private, unguessable name).
_MEMORY_FS = Path("/dev/shm")  # noqa: S108
PDF_STANDARD: Final = "a-3b"
ATTACHMENT_NAME = "invoice.json"
MANIFEST_COLUMNS = (
    "sequence", "invoice_number", "account_number", "name", "line1", "line2", "postal_code",
    "city", "region", "country", "first_page", "page_count",
)
# Countries whose billers print on US Letter; everyone else prints on A4.
_LETTER_COUNTRIES = frozenset({"US", "CA", "MX", "PH", "CL", "CO", "VE", "GT", "CR", "PR"})
# Address order "City, Region Postal code" on one line; elsewhere "Postal code City".
_CITY_FIRST_COUNTRIES = frozenset({"US", "CA", "AU", "PR"})


class InvoiceRenderError(RuntimeError):
    """Typst refused to compile an invoice; the message carries Typst's diagnostic."""


@dataclass(frozen=True)
class PrintBatch:
    """Many invoices in one PDF for a print vendor, and its mailing manifest.

    ``pages[i]`` is the number of pages of the i-th invoice, not counting the blank page
    that may follow it (every invoice starts on an odd page, see ``render_print_batch``).
    """

    pdf: bytes
    manifest_csv: str
    pages: list[int]

    @property
    def first_pages(self) -> list[int]:
        """The 1-based page of the merged PDF on which each invoice starts."""
        firsts, page = [], 1
        for count in self.pages:
            firsts.append(page)
            page += count + count % 2
        return firsts


class InvoiceRenderer:
    """Renders invoices with one Typst compiler, built once and reused, so the fonts and
    the parsed template are loaded once per renderer rather than once per invoice.

    Each invoice's data reaches the template as a file in a directory of the renderer's
    own (see ``_Workspace``), not through ``sys.inputs``: Typst rebuilds its standard
    library whenever ``sys.inputs`` change, and so can reuse nothing it laid out for the
    invoice before (the template's functions, the labels every invoice prints). Through
    ``sys.inputs``, an invoice measured a fifth slower.

    An instance may be shared across threads, but they take turns: Typst's ``Compiler``
    is not thread-safe (concurrent calls fail with "Already borrowed"), and the data file
    is the renderer's, so every compilation holds the instance's lock. Typst releases the
    GIL while it compiles, so one renderer per thread does render in parallel (on free
    cores: ``bench/pdf_render.py`` measures both).
    """

    def __init__(self, *, tagged: bool = False) -> None:
        """``tagged`` adds the structure tree screen readers use (PDF/A-3b does not
        require it; it costs a few percent of the rendering time)."""
        self._tagged = tagged
        self._lock = threading.Lock()
        self._workspace = _Workspace()

    def render(self, doc: InvoiceDocument) -> bytes:
        """One invoice as a PDF/A-3b file with ``to_json(doc)`` attached as ``invoice.json``.

        The PDF's creation date is the issue date, so the same document renders to the
        same bytes.

        An invoice that will most likely fit on one page is first typeset with a footer
        that says "Page 1 of 1" outright. Counting pages makes Typst lay the document out
        twice (once to learn the count, once to print it), and skipping that measured
        about 7% of the time of a one-page invoice. Should the invoice run over after
        all, it is typeset again with counted pages.
        """
        fmt = formatter(doc.language)
        data = _template_data(doc, fmt)
        batch = {
            "title": f"{fmt.labels.invoice} {doc.number or fmt.labels.draft}",
            "author": doc.biller.name,
            "attachment": {
                "name": ATTACHMENT_NAME,
                "description": fmt.labels.attachment_description,
                "data": json.dumps(to_json(doc), ensure_ascii=False, separators=(",", ":")),
            },
            "track_pages": False,
            "invoices": [data],
        }
        with self._lock, self._workspace.session():
            if _likely_one_page(doc):
                data["one_page"] = True
                pdf = self._compile_locked(batch, doc.issue_date)
                if _page_count(pdf) == 1:
                    return pdf
                data["one_page"] = False
            return self._compile_locked(batch, doc.issue_date)

    def render_print_batch(self, docs: Sequence[InvoiceDocument]) -> PrintBatch:
        """All ``docs`` in one PDF, in order, with a CSV manifest of one row per invoice.

        Every invoice starts on an odd page so a duplex printer never puts two customers
        on one sheet: an invoice with an odd number of pages is followed by a blank page
        (no footer), except the last. The batch is typeset as one Typst document, PDF/A-3b
        without attachments: one compilation with the fonts embedded once measured about
        twice as fast as rendering each invoice and merging them with pypdf, and a quarter
        of the size.
        """
        if not docs:
            raise ValueError("a print batch needs at least one invoice")
        batch = {
            "title": f"Print batch of {len(docs)} invoices",
            "author": docs[0].biller.name,
            "attachment": None,
            "track_pages": True,
            "invoices": [_template_data(doc, formatter(doc.language)) for doc in docs],
        }
        with self._lock, self._workspace.session():
            pdf = self._compile_locked(batch, max(doc.issue_date for doc in docs))
            spans = json.loads(self._workspace.query("<invoice-pages>"))
        pages = [span["last"] - span["first"] + 1 for span in spans]
        manifest = _manifest(docs, [span["first"] for span in spans], pages)
        return PrintBatch(pdf=pdf, manifest_csv=manifest, pages=pages)

    def _compile_locked(self, batch: dict[str, Any], issued: date) -> bytes:
        data = json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            return self._workspace.compile(
                data, timestamp=datetime.combine(issued, time(), UTC), tagged=self._tagged)
        except typst.TypstError as exc:
            hints = "; ".join(exc.hints)
            raise InvoiceRenderError(f"{exc.message}{f' ({hints})' if hints else ''}") from exc


class _Workspace:
    """A Typst compiler rooted in a private directory that holds a copy of the templates
    and the data file they read.

    The directory is on a memory file system (``/dev/shm``) where there is one: writing the
    data file to a disk file system measured several tenths of a millisecond per invoice.
    The data file (customers' names and addresses) is there only for the length of a
    ``session``, and the directory is removed when the renderer is collected or the
    process exits. A process forked from this one gets a directory and a compiler of its
    own on first use, so the two never overwrite each other's data file. Not thread-safe:
    the renderer's lock guards it.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._data = Path()
        self._templates: list[Path] = []
        self._compiler: typst.Compiler | None = None
        self._open()

    @property
    def directory(self) -> Path:
        return self._data.parent

    @contextmanager
    def session(self) -> Iterator[None]:
        """Compilations and queries, after which the data file is deleted."""
        try:
            yield
        finally:
            self._data.unlink(missing_ok=True)

    def compile(self, data: bytes, *, timestamp: datetime, tagged: bool) -> bytes:
        """``data`` (invoice.typ's data.json) as a PDF/A-3b file."""
        compiler = self._open()
        self._data.write_bytes(data)
        pdf = compiler.compile(format="pdf", pdf_standards=[PDF_STANDARD],
                               timestamp=timestamp, pdf_tags=tagged)
        assert isinstance(pdf, bytes)
        return pdf

    def query(self, selector: str) -> str:
        """The ``value`` fields of the elements ``selector`` matches in the document last
        compiled, as a JSON array."""
        return self._open().query(selector, field="value", format="json")

    def _open(self) -> typst.Compiler:
        """The compiler; a new one in a new directory in a forked process, or if a cleaner
        of temporary files took the templates away from a long-idle worker."""
        if (self._compiler is not None and self._pid == os.getpid()
                and all(template.exists() for template in self._templates)):
            return self._compiler
        memory = _MEMORY_FS.is_dir() and os.access(_MEMORY_FS, os.W_OK)
        directory = Path(tempfile.mkdtemp(prefix="billfold-invoice-",
                                          dir=str(_MEMORY_FS) if memory else None))
        pid = os.getpid()
        weakref.finalize(self, _remove_workspace, directory, pid)
        self._templates = [Path(shutil.copyfile(template, directory / template.name))
                           for template in TEMPLATES.glob("*.typ")]
        self._pid, self._data = pid, directory / DATA_FILE
        self._compiler = typst.Compiler(
            str(directory / TEMPLATE.name), root=str(directory), ignore_system_fonts=True)
        return self._compiler


def _remove_workspace(directory: Path, pid: int) -> None:
    if os.getpid() == pid:  # not the copy of this finalizer in a forked child
        shutil.rmtree(directory, ignore_errors=True)


# An invoice of at most this many table rows (lines, and a heading and a subtotal per
# group) is typeset as one page first. Measured on US Letter, the smaller page: 14 lines
# that each print a tax rate under the tax fit, or 6 lines in 6 groups; the rest of the
# margin is for long descriptions, addresses and notes.
_ONE_PAGE_ROWS = 12
# The page tree's dictionary, e.g. "<</Type/Pages/Count 1/Kids[10 0 R]>>".
_PAGE_TREE = re.compile(rb"<<([^<>]*/Type\s*/Pages\b[^<>]*)>>")
_COUNT = re.compile(rb"/Count\s+(\d+)")


def _likely_one_page(doc: InvoiceDocument) -> bool:
    groups = {line.group for line in doc.lines} if doc.is_grouped else set()
    return len(doc.lines) + 2 * len(groups) <= _ONE_PAGE_ROWS


def _page_count(pdf: bytes) -> int | None:
    """The number of pages of a PDF as Typst writes it (uncompressed objects, one page
    tree), or None if that cannot be told for sure: the title and author are written as
    plain text too, and should they look like a page tree, there are two to choose from."""
    trees = _PAGE_TREE.findall(pdf)
    counts = [_COUNT.search(tree) for tree in trees]
    if len(counts) != 1 or counts[0] is None:
        return None
    return int(counts[0].group(1))


def _template_data(doc: InvoiceDocument, fmt: Formatter) -> dict[str, Any]:
    """The invoice as the template takes it: every string formatted, multi-line blocks
    joined with "\n" (one text element per block is markedly cheaper to lay out).
    ``one_page`` is false: the footer counts the pages (see ``InvoiceRenderer.render``)."""
    labels = fmt.labels
    number = doc.number if doc.number is not None else labels.draft
    facts = [
        (labels.invoice_number, number),
        (labels.issue_date, fmt.date(doc.issue_date)),
        (labels.due_date, fmt.date(doc.due_date) if doc.due_date else labels.due_on_receipt),
        (labels.account, doc.account_number),
    ]
    if doc.period_start or doc.period_end:
        facts.append((labels.period, fmt.period(doc.period_start, doc.period_end)))
    money = _money_formatter(fmt, doc.currency)
    totals = [
        (labels.subtotal, money(doc.subtotal_minor)),
        (labels.tax, money(doc.tax_minor)),
        (labels.total, money(doc.total_minor)),
        (labels.amount_paid, money(doc.amount_paid_minor)),
    ]
    due = doc.amount_due_minor
    if due <= 0:
        pay_by = None
    elif doc.due_date is None:
        pay_by = labels.due_on_receipt
    else:
        pay_by = labels.pay_by.format(amount=money(due), date=fmt.date(doc.due_date))
    biller_country = doc.biller.address.country if doc.biller.address else None
    sections = _sections(doc, fmt)
    return {
        "lang": fmt.language,
        "region": fmt.region,
        "paper": "us-letter" if (biller_country or fmt.region) in _LETTER_COUNTRIES else "a4",
        "title": labels.invoice,
        "number": number,
        "watermark": labels.draft if doc.is_draft else None,
        "biller": {"name": doc.biller.name, "text": _lines(_party_lines(doc.biller, fmt))},
        "bill_to_label": labels.bill_to,
        "bill_to": {"name": doc.bill_to.name, "text": _lines(_party_lines(doc.bill_to, fmt))},
        "facts": _columns(facts),
        "columns": [labels.description, labels.quantity, labels.unit_price, labels.tax,
                    labels.amount],
        "sections": sections,
        "widest": _widest([row for section in sections for row in section["rows"]]),
        "totals": _columns(totals),
        "amount_due": [labels.amount_due, money(due)],
        "pay_by": pay_by,
        "payment": {"label": labels.pay_online, "url": doc.payment_url} if doc.payment_url else None,
        "notes_label": labels.notes,
        "notes": _lines(doc.notes) or None,
        "footer": f"{doc.biller.name} · {labels.invoice} {number}",
        "page_x_of_y": labels.page_x_of_y,
        "one_page": False,
    }


def _lines(lines: Iterable[str]) -> str:
    """Lines as one string; a line break inside a value would break the layout's columns."""
    return "\n".join(" ".join(line.splitlines()) for line in lines)


def _columns(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return {"names": _lines(name for name, _ in pairs),
            "values": _lines(value for _, value in pairs)}


def _money_formatter(fmt: Formatter, currency: str) -> Callable[[int], str]:
    return lambda minor: fmt.money(minor, currency)


def _sections(doc: InvoiceDocument, fmt: Formatter) -> list[dict[str, Any]]:
    """One untitled section, or on an aggregated invoice one section per group (in order
    of first appearance, lines without a group last) with the group's subtotal."""
    if not doc.is_grouped:
        return [{"heading": None, "rows": [_row(line, doc, fmt) for line in doc.lines],
                 "subtotal": None}]
    groups: dict[str | None, list[DocumentLine]] = {}
    for line in doc.lines:
        groups.setdefault(line.group, []).append(line)
    if None in groups:
        groups[None] = groups.pop(None)
    sections = []
    for group, lines in groups.items():
        heading = group if group is not None else fmt.labels.other_charges
        subtotal = sum((Money(line.amount_minor, doc.currency) for line in lines),
                       Money.zero(doc.currency))
        sections.append({
            "heading": heading,
            "rows": [_row(line, doc, fmt) for line in lines],
            "subtotal": [fmt.labels.group_subtotal.format(group=heading),
                         fmt.money(subtotal.minor, doc.currency)],
        })
    return sections


def _widest(rows: list[list[str]]) -> list[list[list[str]]]:
    """For each number column of the lines (quantity, unit price, tax, amount): its two
    longest values and two longest notes, from which the template measures the width."""
    columns = ((2, None), (3, None), (4, 5), (6, None))
    return [[_longest(row[value] for row in rows),
             [] if note is None else _longest(row[note] for row in rows)]
            for value, note in columns]


def _longest(texts: Iterable[str]) -> list[str]:
    return sorted({t for t in texts if t}, key=len, reverse=True)[:2]


def _row(line: DocumentLine, doc: InvoiceDocument, fmt: Formatter) -> list[str]:
    """[description, period, quantity, unit price, tax, tax note, amount]; "" when absent.

    A line's period is printed only when it differs from the invoice's, which the facts
    block already shows: ten lines of the same month repeated say nothing."""
    currency = doc.currency
    unit = "" if line.unit_amount_minor is None else fmt.money(line.unit_amount_minor, currency)
    has_tax = line.tax_minor != 0 or line.tax_percent is not None
    notes = []
    if line.tax_percent is not None:
        notes.append(fmt.percent(line.tax_percent))
    if line.tax_inclusive:
        notes.append(fmt.labels.tax_included)
    same_period = (line.period_start, line.period_end) == (doc.period_start, doc.period_end)
    return [
        line.description,
        "" if same_period else fmt.period(line.period_start, line.period_end),
        fmt.quantity(line.quantity),
        unit,
        fmt.money(line.tax_minor, currency) if has_tax else "",
        " · ".join(notes),
        fmt.money(line.amount_minor, currency),
    ]


def _party_lines(party: Party, fmt: Formatter) -> list[str]:
    lines = _address_lines(party.address, fmt) if party.address else []
    if party.email:
        lines.append(party.email)
    if party.phone:
        lines.append(party.phone)
    if party.tax_number:
        lines.append(f"{fmt.labels.tax_number}: {party.tax_number}")
    return lines


def _address_lines(address: PostalAddress, fmt: Formatter) -> list[str]:
    lines = [address.line1]
    if address.line2:
        lines.append(address.line2)
    country = (address.country or "").upper()
    if country in _CITY_FIRST_COUNTRIES:
        tail = " ".join(p for p in (address.region, address.postal_code) if p)
        locality = ", ".join(p for p in (address.city, tail) if p)
        if locality:
            lines.append(locality)
    else:
        locality = " ".join(p for p in (address.postal_code, address.city) if p)
        if locality:
            lines.append(locality)
        if address.region:
            lines.append(address.region)
    if country:
        lines.append(fmt.country(country))
    return lines


def _manifest(docs: Sequence[InvoiceDocument], first_pages: list[int], pages: list[int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for sequence, (doc, first, count) in enumerate(zip(docs, first_pages, pages, strict=True), 1):
        address = doc.bill_to.address or PostalAddress(line1="")
        writer.writerow([
            sequence, doc.number or "", doc.account_number, doc.bill_to.name, address.line1,
            address.line2 or "", address.postal_code or "", address.city or "",
            address.region or "", address.country or "", first, count,
        ])
    return out.getvalue()
