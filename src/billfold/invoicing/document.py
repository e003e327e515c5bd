"""The view model of one invoice as a renderer sees it: plain frozen dataclasses, no ORM.

Amounts are integer minor units of ``InvoiceDocument.currency``; labels, numbers and dates
are formatted only when rendering, in ``InvoiceDocument.language``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True)
class PostalAddress:
    line1: str
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2; printed as a name in the document's language


@dataclass(frozen=True)
class Party:
    name: str
    address: PostalAddress | None = None
    email: str | None = None
    phone: str | None = None
    tax_number: str | None = None


@dataclass(frozen=True)
class DocumentLine:
    description: str
    quantity: int
    amount_minor: int  # the line amount as charged (tax-exclusive unless tax_inclusive)
    tax_minor: int = 0
    unit_amount_minor: int | None = None
    tax_percent: str | None = None  # a decimal string, "8.25"
    tax_inclusive: bool = False
    period_start: date | None = None
    period_end: date | None = None
    group: str | None = None  # managed account label on an aggregated invoice


@dataclass(frozen=True)
class InvoiceDocument:
    invoice_id: str
    number: str | None  # None for a draft, printed as the translated "DRAFT"
    status: str
    language: str  # Babel locale: "en", "en_US", "es_MX", "sv_SE", "ru_RU", ...
    currency: str  # ISO 4217
    issue_date: date
    due_date: date | None
    period_start: date | None
    period_end: date | None
    biller: Party
    bill_to: Party
    account_number: str
    lines: tuple[DocumentLine, ...]
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    amount_paid_minor: int = 0  # payments and credits applied
    amount_due_minor: int = 0
    payment_url: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_draft(self) -> bool:
        return self.number is None

    @property
    def is_grouped(self) -> bool:
        return any(line.group is not None for line in self.lines)


def to_json(doc: InvoiceDocument) -> dict[str, Any]:
    """The whole document as a JSON-able dict: amounts as ``*_minor`` integers beside the
    ``currency``, dates as ISO 8601 strings. This is what a rendered PDF carries as
    ``invoice.json``."""
    return {
        "invoice_id": doc.invoice_id,
        "number": doc.number,
        "status": doc.status,
        "language": doc.language,
        "currency": doc.currency,
        "issue_date": doc.issue_date.isoformat(),
        "due_date": _iso(doc.due_date),
        "period_start": _iso(doc.period_start),
        "period_end": _iso(doc.period_end),
        "biller": _party(doc.biller),
        "bill_to": _party(doc.bill_to),
        "account_number": doc.account_number,
        "lines": [_line(line) for line in doc.lines],
        "subtotal_minor": doc.subtotal_minor,
        "tax_minor": doc.tax_minor,
        "total_minor": doc.total_minor,
        "amount_paid_minor": doc.amount_paid_minor,
        "amount_due_minor": doc.amount_due_minor,
        "payment_url": doc.payment_url,
        "notes": list(doc.notes),
    }


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _party(party: Party) -> dict[str, Any]:
    address = party.address
    return {
        "name": party.name,
        "address": None if address is None else {
            "line1": address.line1,
            "line2": address.line2,
            "city": address.city,
            "region": address.region,
            "postal_code": address.postal_code,
            "country": address.country,
        },
        "email": party.email,
        "phone": party.phone,
        "tax_number": party.tax_number,
    }


def _line(line: DocumentLine) -> dict[str, Any]:
    return {
        "description": line.description,
        "quantity": line.quantity,
        "amount_minor": line.amount_minor,
        "tax_minor": line.tax_minor,
        "unit_amount_minor": line.unit_amount_minor,
        "tax_percent": line.tax_percent,
        "tax_inclusive": line.tax_inclusive,
        "period_start": _iso(line.period_start),
        "period_end": _iso(line.period_end),
        "group": line.group,
    }
