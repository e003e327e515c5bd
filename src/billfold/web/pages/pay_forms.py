"""Reading the payment page's forms: which invoices and amounts the payer chose, the card
or bank details, and the payer-facing wording of what is wrong with them.

Card numbers and CVCs pass through here into a ``CardDetails`` and nowhere else: they are
never put back into a form, and ``echo`` names the only fields that may be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.numbers import NumberFormatError, format_decimal, parse_decimal
from starlette.datastructures import FormData

from billfold.core.errors import FieldError
from billfold.money import Money, MoneyError, exponent
from billfold.payments.gateways.base import BankDetails, CardDetails
from billfold.payments.gateways.checks import aba_ok, card_brand, is_digits, luhn_ok
from billfold.web.pages.i18n import Translator
from billfold.web.pages.pay_state import PageState

MAX_TEXT = 200
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_EXPIRY = re.compile(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})|(\d{2})(\d{2})")
ECHOED = ("card_name", "card_expiry", "bank_holder", "routing_number", "account_type",
          "save_method")
ACCOUNT_TYPES = ("checking", "savings")


@dataclass(frozen=True, slots=True)
class PageError:
    field: str  # the form field's name: what the template looks the error up by
    anchor: str | None  # the id of the input the error summary links to
    message: str


@dataclass(frozen=True, slots=True)
class Choices:
    """What the payer picked on step 1; carried through step 2 as hidden fields."""

    included: tuple[str, ...]  # line keys, in the session's order
    amount_texts: Mapping[str, str]  # what was typed for each part-payable line
    method: str  # "card", "ach", or "saved:<id>" (PageState.saved_method reads it)


def field_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def input_amount(minor: int, currency: str, locale: str) -> str:
    """An amount as the payer would type it: the locale's decimal mark, no grouping."""
    places = exponent(currency)
    pattern = "0." + "0" * places if places else "0"
    return str(format_decimal(Money(minor, currency).to_decimal(), format=pattern, locale=locale))


def parse_amount(text: str, currency: str, locale: str) -> int | None:
    """Minor units of a typed amount, or None. "12.50" is read the same everywhere; "12,50"
    and "1.234,50" as the payer's locale writes them."""
    text = _SPACES.sub("", text)
    if not text:
        return None
    try:
        minor = Money.parse(text, currency).minor
    except MoneyError:
        try:
            value: Decimal = parse_decimal(text, locale=locale, strict=True)
            minor = Money.parse(format(value, "f"), currency).minor
        except (NumberFormatError, MoneyError, ValueError):
            return None
    return minor if minor > 0 else None


def default_choices(state: PageState, locale: str) -> Choices:
    """Every invoice, each for its whole balance, with the first method offered (the
    payer's newest saved method, where the page has any)."""
    return Choices(
        included=tuple(line["key"] for line in state.lines),
        amount_texts={line["key"]: input_amount(line["balance_due_minor"], state.row.currency,
                                                locale)
                      for line in state.lines if line.get("allow_partial")},
        method=state.choices[0])


def read_choices(form: FormData, state: PageState) -> Choices:
    """The invoices sent as ``include`` (ticked, or hidden fields where the payer may not
    remove any), the amounts typed and the method. Keys of the session's invoices paid
    meanwhile are kept so the check can say so, rather than quietly paying less than the
    payer saw."""
    ticked = set(form.getlist("include"))
    included = tuple(k for k in (str(line["key"]) for line in state.row.lines) if k in ticked)
    return Choices(included=included,
                   amount_texts={k: field_text(form, f"amounts[{k}]") for k in included
                                 if f"amounts[{k}]" in form},
                   method=field_text(form, "method"))


def amounts_of(choices: Choices, state: PageState, t: Translator
               ) -> tuple[dict[str, int], list[PageError]]:
    """Minor units to pay per chosen line: what was typed where the line may be paid in
    part, else its whole balance."""
    current = {line["key"]: line for line in state.lines}
    original = {str(line["key"]): line for line in state.row.lines}
    amounts, errors = {}, []
    for key in choices.included:
        line = current.get(key, original[key])
        if not line.get("allow_partial") or key not in current:
            amounts[key] = int(line["balance_due_minor"])
            continue
        minor = parse_amount(choices.amount_texts.get(key, ""), state.row.currency,
                             t.locale.babel)
        if minor is None:
            example = input_amount(line["balance_due_minor"], state.row.currency, t.locale.babel)
            errors.append(PageError(f"amounts[{key}]", anchor_of(key, state),
                                    t("err_amount_format", example=example)))
        else:
            amounts[key] = minor
    return amounts, errors


def anchor_of(key: str, state: PageState) -> str | None:
    for slot, line in enumerate(state.lines, start=1):
        if line["key"] == key:
            if line.get("allow_partial"):
                return f"amount-{slot}"
            return f"include-{slot}" if state.allow_remove else f"line-{slot}"
    return None


def explain(errors: Sequence[FieldError], state: PageState, amounts: Mapping[str, int],
            t: Translator) -> list[PageError]:
    """The payment check's objections in the payer's language, each on its field."""
    return [_explain(error, state, amounts, t) for error in errors]


def _explain(error: FieldError, state: PageState, amounts: Mapping[str, int],
             t: Translator) -> PageError:
    if error.field == "method":
        return PageError("method", f"method-{state.methods[0]}", t("err_method"))
    if error.field == "amounts":
        return PageError("amounts", "invoices", t("err_choose_one"))
    key = error.field.removeprefix("amounts[").removesuffix("]")
    line = next((line for line in state.lines if line["key"] == key), None)
    anchor = anchor_of(key, state)
    if line is None or error.code == "not_payable":
        return PageError(error.field, anchor, t("err_not_payable"))
    if error.code == "partial_not_allowed":
        return PageError(error.field, anchor, t("err_partial"))
    if key not in amounts:
        return PageError(error.field, anchor, t("err_must_pay_all"))
    currency = state.row.currency
    if amounts[key] > line["balance_due_minor"]:
        return PageError(error.field, anchor, t("err_amount_over",
                                                balance=t.money(line["balance_due_minor"],
                                                                currency)))
    minimum = line.get("minimum_amount_due_minor") or 1
    return PageError(error.field, anchor, t("err_amount_under",
                                            minimum=t.money(minimum, currency)))


def read_details(form: FormData, method: str, t: Translator
                 ) -> tuple[CardDetails | BankDetails | None, list[PageError]]:
    return read_card(form, t) if method == "card" else read_bank(form, t)


def read_card(form: FormData, t: Translator) -> tuple[CardDetails | None, list[PageError]]:
    name = field_text(form, "card_name")
    number = re.sub(r"[\s\-\u00a0]", "", field_text(form, "card_number"))
    cvc = field_text(form, "card_cvc")
    expiry = _expiry(field_text(form, "card_expiry"))
    brand = card_brand(number) if luhn_ok(number) else None
    errors = []
    if not name:
        errors.append(PageError("card_name", "card-name", t("err_card_name")))
    if brand is None:
        errors.append(PageError("card_number", "card-number", t("err_card_number")))
    if expiry is None:
        errors.append(PageError("card_expiry", "card-expiry", t("err_card_expiry")))
    if not is_digits(cvc) or len(cvc) not in ((4,) if brand == "amex" else (3, 4)):
        errors.append(PageError("card_cvc", "card-cvc", t("err_card_cvc")))
    if errors or expiry is None:
        return None, errors
    return CardDetails(number=number, exp_month=expiry[0], exp_year=expiry[1], cvc=cvc,
                       name=name), []


def _expiry(text: str) -> tuple[int, int] | None:
    match = _EXPIRY.fullmatch(text)
    if match is None:
        return None
    month, year = (int(match.group(1) or match.group(3)), match.group(2) or match.group(4))
    if not 1 <= month <= 12:
        return None
    return month, int(year) + (2000 if len(year) == 2 else 0)


def read_bank(form: FormData, t: Translator) -> tuple[BankDetails | None, list[PageError]]:
    holder = field_text(form, "bank_holder")
    routing = _SPACES.sub("", field_text(form, "routing_number"))
    account = re.sub(r"[\s\-\u00a0]", "", field_text(form, "account_number"))
    kind = field_text(form, "account_type")
    errors = []
    if not holder:
        errors.append(PageError("bank_holder", "bank-holder", t("err_bank_holder")))
    if not aba_ok(routing):
        errors.append(PageError("routing_number", "routing-number", t("err_routing")))
    if not (is_digits(account) and 4 <= len(account) <= 17):
        errors.append(PageError("account_number", "account-number", t("err_account_number")))
    if kind not in ACCOUNT_TYPES:
        errors.append(PageError("account_type", "account-type", t("err_account_type")))
    if errors:
        return None, errors
    return BankDetails(routing_number=routing, account_number=account, account_type=kind,
                       holder_name=holder), []


def wants_saved(form: FormData) -> bool:
    """Whether the payer ticked "Save this payment method for future payments"."""
    return field_text(form, "save_method") == "1"


def echo(form: FormData | None) -> dict[str, str]:
    """What the payer typed that may be shown again: never a card or account number or CVC."""
    if form is None:
        return {}
    return {name: field_text(form, name) for name in ECHOED}


def nonce_of(form: FormData) -> str | None:
    value = field_text(form, "nonce")
    return value if NONCE.fullmatch(value) else None


def by_field(errors: Sequence[PageError]) -> dict[str, PageError]:
    """The first error of each field, for the template to show beside its input."""
    found: dict[str, Any] = {}
    for error in errors:
        found.setdefault(error.field, error)
    return found
