"""What the payment page's templates show, already formatted in the payer's language: the
templates print these values and decide nothing about money."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from billfold.payments.models import Payment, SavedMethod
from billfold.payments.notify import CARD_TYPES
from billfold.payments.paying import Plan
from billfold.web.pages.i18n import Translator
from billfold.web.pages.pay_forms import Choices
from billfold.web.pages.pay_state import SAVED_PREFIX, PageState


@dataclass(frozen=True, slots=True)
class LineView:
    key: str
    slot: int  # 1-based position: element ids use it, since a key may hold any character
    number: str
    account: str
    invoice_date: str
    due_date: str
    balance: str
    partial: bool
    hint: str  # the range a part payment may take
    included: bool
    amount_text: str
    statement_url: str  # the invoice's PDF, when the page offers it; else ""


@dataclass(frozen=True, slots=True)
class MethodChoice:
    value: str  # what the form sends as ``method``
    anchor: str  # the radio's id
    label: str  # "Visa ending 4242, expires 12/30", "Bank account"


@dataclass(frozen=True, slots=True)
class PaidLine:
    number: str
    account: str
    amount: str


@dataclass(frozen=True, slots=True)
class PlanView:
    lines: list[PaidLine]
    amount: str
    fee: str
    total: str
    pay_label: str  # "Pay $21.00"
    hidden: list[tuple[str, str]]  # the step-1 choices, carried to the Pay form


@dataclass(frozen=True, slots=True)
class ReceiptView:
    number: str
    date: str
    lines: list[PaidLine]
    amount: str
    fee: str
    total: str
    method: str  # "Visa •••• 4242"
    pending: bool


def account_shown(item: dict[str, Any]) -> str:
    """The account number a payer is shown for a line or payer: the biller's display form
    (Cloud Payments V2's DisplayAccountNumber) when it gave one."""
    return str(item.get("display_account_number") or item.get("account_number") or "")


def accounts(state: PageState, t: Translator) -> list[str]:
    seen = dict.fromkeys((p.get("name") or "", account_shown(p)) for p in state.row.payers)
    if not seen:
        seen = dict.fromkeys(("", account_shown(line)) for line in state.lines)
    return [t("account_item", name=name, number=number) if name else number
            for name, number in seen if number]


def line_views(state: PageState, choices: Choices, t: Translator, page_url: str
               ) -> list[LineView]:
    currency = state.row.currency
    return [LineView(
        key=line["key"], slot=slot, number=str(line.get("invoice_number") or ""),
        account=account_shown(line), invoice_date=t.date(line.get("invoice_date")),
        due_date=t.date(line.get("due_date")), balance=t.money(line["balance_due_minor"], currency),
        partial=bool(line.get("allow_partial")), hint=_hint(line, currency, t),
        included=line["key"] in choices.included,
        amount_text=choices.amount_texts.get(line["key"], ""),
        statement_url=statement_url(page_url, line["key"])
        if state.statement_of(line["key"]) else "")
        for slot, line in enumerate(state.lines, start=1)]


def statement_url(page_url: str, key: str) -> str:
    return f"{page_url}/invoices/{quote(key, safe='')}/pdf"


def _hint(line: dict[str, Any], currency: str, t: Translator) -> str:
    minimum = line.get("minimum_amount_due_minor") or 1
    return t("amount_hint", minimum=t.money(minimum, currency),
             balance=t.money(line["balance_due_minor"], currency))


def method_choices(state: PageState, t: Translator) -> list[MethodChoice]:
    """The payer's saved methods first, then a new card or bank account (called so only
    when there are saved ones to tell them from)."""
    saved = [MethodChoice(SAVED_PREFIX + method.id, f"method-saved-{slot}", saved_label(method, t))
             for slot, method in enumerate(state.saved, start=1)]
    prefix = "method_new_" if saved else "method_"
    return saved + [MethodChoice(m, f"method-{m}", t(prefix + m)) for m in state.methods]


def saved_label(method: SavedMethod, t: Translator) -> str:
    if method.kind == "card":
        brand = CARD_TYPES.get(method.brand or "", t("method_card"))
        if method.exp_month is None or method.exp_year is None:
            return t("saved_card_plain", brand=brand, last4=method.last4)
        return t("saved_card", brand=brand, last4=method.last4,
                 month=f"{method.exp_month:02d}", year=f"{method.exp_year % 100:02d}")
    key = {"checking": "saved_checking", "savings": "saved_savings"}.get(
        method.account_type or "", "saved_bank")
    return t(key, last4=method.last4)


def plan_view(plan: Plan, choices: Choices, currency: str, t: Translator) -> PlanView:
    total = t.money(plan.total_minor, currency)
    hidden = [("include", key) for key in choices.included]
    hidden += [(f"amounts[{key}]", choices.amount_texts[key]) for key in choices.included
               if key in choices.amount_texts]
    hidden.append(("method", choices.method))
    return PlanView(
        lines=[PaidLine(str(line.get("invoice_number") or ""), account_shown(line),
                        t.money(line["pay_minor"], currency)) for line in plan.lines],
        amount=t.money(plan.amount_minor, currency), fee=t.money(plan.fee_minor, currency),
        total=total, pay_label=t("pay_button", total=total), hidden=hidden)


def receipt_view(payment: Payment, t: Translator) -> ReceiptView:
    currency = payment.currency
    return ReceiptView(
        number=payment.receipt_number or payment.id, date=t.date(payment.payment_date),
        lines=[PaidLine(str(line.get("invoice_number") or ""), account_shown(line),
                        t.money(int(line["pay_minor"]), currency)) for line in payment.lines],
        amount=t.money(payment.amount_minor, currency), fee=t.money(payment.fee_minor, currency),
        total=t.money(payment.amount_minor + payment.fee_minor, currency),
        method=method_label(payment, t), pending=payment.status == "pending")


def method_label(payment: Payment, t: Translator) -> str:
    last4 = payment.last4 or ""
    if payment.method == "ach":
        return t("bank_masked", last4=last4)
    brand = CARD_TYPES.get(payment.brand or "", t("method_card"))
    return t("card_masked", brand=brand, last4=last4)
