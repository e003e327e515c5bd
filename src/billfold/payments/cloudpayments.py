"""Parse a Cloud Payments V2 "Pay Now" request into plain frozen dataclasses.

Pure: no database, no web framework. Clients of the original product send field names in
any letter case, booleans and amounts as strings, dates as MM/DD/YYYY and extra fields we
do not use, so the parser is lenient about spelling and strict about meaning: every
problem is collected and reported at once, named by a path such as
``Customers[0].Invoices[1].BalanceDue``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from billfold.core.errors import BillfoldError, FieldError, ValidationFailed
from billfold.money import Money, exponent

T = TypeVar("T")

MAX_CUSTOMERS = 100
MAX_INVOICES_PER_CUSTOMER = 500
MAX_AMOUNT_MINOR = 10**15
_MAX_WHOLE_NUMBER = 2**31 - 1  # fits the 32-bit integer columns these values end up in
_MAX_AMOUNT_TEXT = 40  # int() of a longer digit string is wasted work for a refusal

_TOP_FIELDS = (
    "CreateCustomerRecord", "Customers", "AllowSwipe", "AllowEMV", "AllowCCPayment",
    "AllowACHPayment", "ReturnURL", "PostBackURL", "CssUrl", "BillerReference", "ViewMode",
    "PageLoadOverride", "PageResultOptions",
)
_CUSTOMER_FIELDS = (
    "AccountNumber", "DisplayAccountNumber", "Name", "Address", "City", "State", "Zip",
    "EmailAddress", "Invoices",
)
_INVOICE_FIELDS = (
    "InvoiceNumber", "TypeID", "InvoiceDate", "DueDate", "BalanceDue", "CCServiceFee",
    "ACHServiceFee", "MinimumAmountDue", "AllowPartialPayments",
)
_PAGE_RESULT_FIELDS = ("AllowRegisterAccount", "InvoiceOptions")
_INVOICE_OPTION_FIELDS = ("AllowViewStatement", "AllowRemove", "AllowViewRelated", "AllowRemindMe")


@dataclass(frozen=True, slots=True)
class CpInvoice:
    invoice_number: str
    type_id: int | None
    invoice_date: date | None
    due_date: date | None
    balance_due_minor: int | None  # None: the client did not say, not zero
    cc_fee_minor: int
    ach_fee_minor: int
    minimum_amount_due_minor: int | None
    allow_partial: bool


@dataclass(frozen=True, slots=True)
class CpCustomer:
    account_number: str
    display_account_number: str | None
    name: str | None
    address: str | None
    city: str | None
    state: str | None
    zip: str | None
    email: str | None
    invoices: tuple[CpInvoice, ...]


@dataclass(frozen=True, slots=True)
class CloudPaymentRequest:
    create_customer_record: bool
    customers: tuple[CpCustomer, ...]
    allow_card: bool
    allow_ach: bool
    return_url: str | None
    postback_url: str | None
    css_url: str | None
    biller_reference: str | None
    view_mode: int
    page_load_override: int | None
    allow_register_account: bool
    allow_view_statement: bool
    allow_remove: bool
    allow_view_related: bool
    allow_remind_me: bool
    ignored_fields: tuple[str, ...]  # client spelling, with path, for logging


# -- the body -----------------------------------------------------------------------------

_PYTHON_LITERAL = re.compile(r"(True|False|None)\b")
_JSON_SPELLING = {"True": "true", "False": "false", "None": "null"}


class _DuplicateKey(Exception):
    pass


def parse_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body (a BOM is tolerated). Raises BillfoldError ``invalid_json``
    (400) naming the line and column of a syntax error, or what else is wrong."""
    text = _utf8(body)
    if not text.strip():
        raise _not_json("the body is empty")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise _not_json(f"line {exc.lineno}, column {exc.colno}: {_syntax_problem(exc)}") from None
    except _DuplicateKey as exc:
        raise _not_json(str(exc)) from None
    except RecursionError:
        raise _not_json("arrays or objects are nested too deeply") from None
    except ValueError as exc:  # json refuses an integer of thousands of digits this way
        raise _not_json(str(exc)) from None


def _not_json(detail: str) -> BillfoldError:
    return BillfoldError(detail=detail, code="invalid_json", status=400,
                         title="Request body is not valid JSON")


def _utf8(body: bytes) -> str:
    # json.loads(bytes) would guess UTF-16 or UTF-32; RFC 8259 allows only UTF-8 on the wire.
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _not_json("the body is UTF-16; send it as UTF-8")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_json(f"byte {exc.start + 1} is not UTF-8; send the body as UTF-8") from None


def _syntax_problem(exc: json.JSONDecodeError) -> str:
    # Bodies written by hand or by str() of a Python dict carry Python literals.
    literal = _PYTHON_LITERAL.match(exc.doc, exc.pos)
    if literal is None:
        return exc.msg
    return f"{literal.group(1)!r} is not JSON; use {_JSON_SPELLING[literal.group(1)]}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys silently; for an amount that is a guess.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


# -- values -------------------------------------------------------------------------------

class _Invalid(Exception):
    """A value's problem, as a message; the caller knows the field path."""


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Invalid(f"must be true or false, not {_shown(value)}")


def _text(limit: int) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"must be a string, not {_shown(value)}")
        text = value.strip()
        if len(text) > limit:
            raise _Invalid(f"must be at most {limit} characters (got {len(text)})")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            raise _Invalid("is not valid Unicode text") from None
        return text
    return convert


def _whole_number(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,12}", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be a whole number, not {_shown(value)}")
    if not 0 <= value <= _MAX_WHOLE_NUMBER:
        raise _Invalid(f"must be from 0 to {_MAX_WHOLE_NUMBER}")
    return value


def _view_mode(value: Any) -> int:
    mode = _whole_number(value)
    if mode not in (0, 1):
        raise _Invalid("must be 0 (full page) or 1 (iframe)")
    return mode


_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def _date(value: Any) -> date:
    match = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _Invalid(f"must be a date as MM/DD/YYYY, not {_shown(value)}")
    month, day, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise _Invalid(f"{value.strip()!r} is not a real date") from None


def _amount(currency: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        text = _amount_text(value)
        try:
            minor = Money.parse(text, currency).minor
        except ValueError as exc:  # MoneyError names the currency's exponent
            raise _Invalid(str(exc)) from None
        if minor < 0:
            raise _Invalid(f"must not be negative, got {text!r}")
        if minor > MAX_AMOUNT_MINOR:
            raise _Invalid(f"must be at most {Money(MAX_AMOUNT_MINOR, currency)}")
        return minor
    return convert


def _amount_text(value: Any) -> str:
    if isinstance(value, bool):
        raise _Invalid(f"must be an amount, not {_shown(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid("must be a finite amount")
        # repr is the shortest text that reads back as this float, so it invents no digits;
        # its trailing ".0" is not a decimal place the client wrote.
        text = repr(value)
        return text.removesuffix(".0")
    if isinstance(value, str) and len(value) <= _MAX_AMOUNT_TEXT:
        return value
    raise _Invalid(f'must be an amount such as 10.00 or "10.00", not {_shown(value)}')


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 30 else text[:30] + "…"


# -- objects ------------------------------------------------------------------------------

def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(slots=True)
class _Fields:
    """One JSON object's known fields under their canonical names."""

    reader: _Reader
    path: str
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, convert: Callable[[Any], T], default: T) -> T:
        value = self.values.get(name)
        if _absent(value):
            return default
        try:
            return convert(value)
        except _Invalid as exc:
            self.reader.fail(_join(self.path, name), str(exc))
            return default

    def required(self, name: str, convert: Callable[[Any], T], placeholder: T) -> T:
        """The placeholder stands in for a missing value; the error already recorded
        means the request is refused, so it is never used."""
        if _absent(self.values.get(name)):
            self.reader.fail(_join(self.path, name), "is required", "required")
            return placeholder
        return self.get(name, convert, placeholder)

    def nested(self, name: str, names: tuple[str, ...]) -> _Fields:
        """The object field ``name``; without fields (so defaults apply) if absent or wrong."""
        path, value = _join(self.path, name), self.values.get(name)
        found = None if value is None else self.reader.object(value, path, names)
        return found or _Fields(self.reader, path)

    def items(self, name: str, limit: int, *, required: bool) -> list[tuple[str, Any]]:
        """``(path, item)`` for each element of a list field; an empty list on error."""
        path, value = _join(self.path, name), self.values.get(name)
        if value is None:
            if required:
                self.reader.fail(path, "is required", "required")
            return []
        if not isinstance(value, list):
            self.reader.fail(path, f"must be a list, not {_shown(value)}", "type")
            return []
        if required and not value:
            self.reader.fail(path, "must have at least one item")
        if len(value) > limit:
            self.reader.fail(path, f"must have at most {limit} items (got {len(value)})")
            return []
        return [(f"{path}[{index}]", item) for index, item in enumerate(value)]


class _Reader:
    def __init__(self, currency: str) -> None:
        self.amount = _amount(currency)
        self.errors: list[FieldError] = []
        self.ignored: list[str] = []

    def fail(self, path: str, message: str, code: str = "invalid") -> None:
        self.errors.append(FieldError(path or "request", message, code))

    def object(self, value: Any, path: str, names: tuple[str, ...]) -> _Fields | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, not {_shown(value)}", "type")
            return None
        # Only ASCII keys are folded: "\u212a".lower() is "k", and a Kelvin sign is no "K".
        canonical = {name.lower(): name for name in names}
        fields = _Fields(self, path)
        spelled: dict[str, str] = {}
        for key, item in value.items():
            ascii_key = isinstance(key, str) and key.isascii()
            name = canonical.get(key.lower()) if ascii_key else None
            if name is None:
                self.ignored.append(_join(path, str(key)))
            elif name in spelled:
                self.fail(_join(path, name), f"is given twice, as {spelled[name]!r} and {key!r}",
                          "duplicate")
            else:
                spelled[name], fields.values[name] = key, item
        return fields

    def request(self, data: Any) -> CloudPaymentRequest | None:
        top = self.object(data, "", _TOP_FIELDS)
        if top is None:
            return None
        card, ach = self.payment_methods(top)
        page = top.nested("PageResultOptions", _PAGE_RESULT_FIELDS)
        options = page.nested("InvoiceOptions", _INVOICE_OPTION_FIELDS)
        url = _text(2000)
        return CloudPaymentRequest(
            create_customer_record=top.get("CreateCustomerRecord", _flag, False),
            customers=self.customers(top),
            allow_card=card,
            allow_ach=ach,
            return_url=top.get("ReturnURL", url, None),
            postback_url=top.get("PostBackURL", url, None),
            css_url=top.get("CssUrl", url, None),
            biller_reference=top.get("BillerReference", _text(200), None),
            view_mode=top.get("ViewMode", _view_mode, 0),
            page_load_override=top.get("PageLoadOverride", _whole_number, None),
            allow_register_account=page.get("AllowRegisterAccount", _flag, False),
            allow_view_statement=options.get("AllowViewStatement", _flag, False),
            allow_remove=options.get("AllowRemove", _flag, True),
            allow_view_related=options.get("AllowViewRelated", _flag, False),
            allow_remind_me=options.get("AllowRemindMe", _flag, False),
            ignored_fields=tuple(self.ignored),
        )

    def payment_methods(self, top: _Fields) -> tuple[bool, bool]:
        for name in ("AllowSwipe", "AllowEMV"):
            if top.get(name, _flag, False):
                self.fail(name, "card-present payments (swipe/EMV) are not available; "
                                "set AllowSwipe/AllowEMV to false", "unsupported")
        card = top.get("AllowCCPayment", _flag, True)
        ach = top.get("AllowACHPayment", _flag, True)
        if not card and not ach:
            self.fail("AllowCCPayment", "AllowCCPayment and AllowACHPayment cannot both be "
                                        "false: the payer would have no way to pay")
        return card, ach

    def customers(self, top: _Fields) -> tuple[CpCustomer, ...]:
        result: list[CpCustomer] = []
        first_at: dict[str, str] = {}
        for path, item in top.items("Customers", MAX_CUSTOMERS, required=True):
            customer = self.customer(path, item)
            if customer is None or not customer.account_number:
                continue
            if customer.account_number in first_at:
                self.fail(f"{path}.AccountNumber", f"repeats the account number of "
                          f"{first_at[customer.account_number]}", "duplicate")
            first_at.setdefault(customer.account_number, path)
            result.append(customer)
        return tuple(result)

    def customer(self, path: str, item: Any) -> CpCustomer | None:
        fields = self.object(item, path, _CUSTOMER_FIELDS)
        if fields is None:
            return None
        text = _text(200)
        return CpCustomer(
            account_number=fields.required("AccountNumber", _text(100), ""),
            display_account_number=fields.get("DisplayAccountNumber", text, None),
            name=fields.get("Name", text, None),
            address=fields.get("Address", text, None),
            city=fields.get("City", text, None),
            state=fields.get("State", text, None),
            zip=fields.get("Zip", text, None),
            email=fields.get("EmailAddress", text, None),
            invoices=self.invoices(fields),
        )

    def invoices(self, customer: _Fields) -> tuple[CpInvoice, ...]:
        result: list[CpInvoice] = []
        first_at: dict[str, str] = {}
        for path, item in customer.items("Invoices", MAX_INVOICES_PER_CUSTOMER, required=False):
            invoice = self.invoice(path, item)
            if invoice is None or not invoice.invoice_number:
                continue
            if invoice.invoice_number in first_at:
                self.fail(f"{path}.InvoiceNumber", f"repeats the invoice number of "
                          f"{first_at[invoice.invoice_number]} for this account", "duplicate")
            first_at.setdefault(invoice.invoice_number, path)
            result.append(invoice)
        return tuple(result)

    def invoice(self, path: str, item: Any) -> CpInvoice | None:
        fields = self.object(item, path, _INVOICE_FIELDS)
        if fields is None:
            return None
        number = fields.required("InvoiceNumber", _text(100), "")
        balance = fields.get("BalanceDue", self.amount, None)
        minimum = fields.get("MinimumAmountDue", self.amount, None)
        if balance is not None and minimum is not None and minimum > balance:
            self.fail(f"{path}.MinimumAmountDue", "must not be more than BalanceDue")
        return CpInvoice(
            invoice_number=number,
            type_id=fields.get("TypeID", _whole_number, None),
            invoice_date=fields.get("InvoiceDate", _date, None),
            due_date=fields.get("DueDate", _date, None),
            balance_due_minor=balance,
            cc_fee_minor=fields.get("CCServiceFee", self.amount, 0),
            ach_fee_minor=fields.get("ACHServiceFee", self.amount, 0),
            minimum_amount_due_minor=minimum,
            allow_partial=fields.get("AllowPartialPayments", _flag, False),
        )


def parse_request(data: Any, *, currency: str) -> CloudPaymentRequest:
    """Validate and normalise a decoded Cloud Payments V2 request, amounts in ``currency``.

    Raises ValidationFailed listing every problem, each named by its field path.
    """
    exponent(currency)  # an unusable currency is the caller's bug, not the client's
    reader = _Reader(currency)
    request = reader.request(data)
    if reader.errors or request is None:
        raise ValidationFailed(reader.errors)
    return request
