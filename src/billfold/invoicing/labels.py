# ruff: noqa: RUF001, RUF002  (translations are written in their own script and punctuation)
"""Every fixed word printed on an invoice, in each language Billfold ships, and the
formatting of numbers, money, dates and countries in the document's locale.

A regional locale ("es_MX", "sv_SE") takes its labels from the language ("es", "sv") and
its numbers, dates and money from the full locale. A language without labels here, or a
locale Babel does not know, falls back to English as a whole (labels *and* formatting), so
a document never mixes English words with, say, Japanese dates.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_interval
from babel.numbers import (
    format_decimal,
    format_percent,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

from billfold.money import Money, exponent

FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class Labels:
    invoice: str
    draft: str
    bill_to: str
    invoice_number: str
    account: str
    period: str
    issue_date: str
    due_date: str
    description: str
    quantity: str
    unit_price: str
    tax: str
    amount: str
    subtotal: str
    total: str
    amount_paid: str
    amount_due: str
    pay_online: str
    due_on_receipt: str
    pay_by: str  # {amount}, {date}
    group_subtotal: str  # {group}
    other_charges: str  # heading of ungrouped lines on a grouped invoice
    tax_included: str
    email: str
    phone: str
    tax_number: str
    notes: str
    page_x_of_y: str  # {page}, {total}; filled in by the template
    attachment_description: str


LABELS: dict[str, Labels] = {
    "en": Labels(
        invoice="Invoice", draft="DRAFT", bill_to="Bill to", invoice_number="Invoice number",
        account="Account", period="Period", issue_date="Issue date", due_date="Due date",
        description="Description", quantity="Quantity", unit_price="Unit price", tax="Tax",
        amount="Amount", subtotal="Subtotal", total="Total", amount_paid="Amount paid",
        amount_due="Amount due", pay_online="Pay online", due_on_receipt="Due on receipt",
        pay_by="Please pay {amount} by {date}.", group_subtotal="Subtotal for {group}",
        other_charges="Other charges", tax_included="incl. tax", email="Email", phone="Phone",
        tax_number="Tax ID", notes="Notes", page_x_of_y="Page {page} of {total}",
        attachment_description="Invoice data (JSON)",
    ),
    "es": Labels(
        invoice="Factura", draft="BORRADOR", bill_to="Facturar a",
        invoice_number="Número de factura", account="Cuenta", period="Período",
        issue_date="Fecha de emisión", due_date="Fecha de vencimiento",
        description="Descripción", quantity="Cantidad", unit_price="Precio unitario",
        tax="Impuesto", amount="Importe", subtotal="Subtotal", total="Total",
        amount_paid="Importe pagado", amount_due="Importe adeudado", pay_online="Pagar en línea",
        due_on_receipt="Pagadera a la recepción", pay_by="Pague {amount} a más tardar el {date}.",
        group_subtotal="Subtotal de {group}", other_charges="Otros cargos",
        tax_included="impuesto incluido", email="Correo electrónico", phone="Teléfono",
        tax_number="Identificación fiscal", notes="Notas", page_x_of_y="Página {page} de {total}",
        attachment_description="Datos de la factura (JSON)",
    ),
    "fr": Labels(
        invoice="Facture", draft="BROUILLON", bill_to="Facturer à",
        invoice_number="Numéro de facture", account="Compte", period="Période",
        issue_date="Date d’émission", due_date="Date d’échéance", description="Description",
        quantity="Quantité", unit_price="Prix unitaire", tax="Taxe", amount="Montant",
        subtotal="Sous-total", total="Total", amount_paid="Montant payé", amount_due="Montant dû",
        pay_online="Payer en ligne", due_on_receipt="Payable à réception",
        pay_by="Veuillez payer {amount} au plus tard le {date}.",
        group_subtotal="Sous-total {group}", other_charges="Autres frais",
        tax_included="taxe incluse", email="Courriel", phone="Téléphone",
        tax_number="Numéro fiscal", notes="Remarques", page_x_of_y="Page {page} sur {total}",
        attachment_description="Données de la facture (JSON)",
    ),
    "de": Labels(
        invoice="Rechnung", draft="ENTWURF", bill_to="Rechnungsempfänger",
        invoice_number="Rechnungsnummer", account="Kundenkonto", period="Zeitraum",
        issue_date="Rechnungsdatum", due_date="Fälligkeitsdatum", description="Beschreibung",
        quantity="Menge", unit_price="Einzelpreis", tax="Steuer", amount="Betrag",
        subtotal="Zwischensumme", total="Gesamtbetrag", amount_paid="Bereits bezahlt",
        amount_due="Offener Betrag", pay_online="Online bezahlen",
        due_on_receipt="Zahlbar sofort nach Erhalt",
        pay_by="Bitte zahlen Sie {amount} bis zum {date}.", group_subtotal="Zwischensumme {group}",
        other_charges="Sonstige Posten", tax_included="inkl. Steuer", email="E-Mail",
        phone="Telefon", tax_number="Steuernummer", notes="Hinweise",
        page_x_of_y="Seite {page} von {total}", attachment_description="Rechnungsdaten (JSON)",
    ),
    "pt": Labels(
        invoice="Fatura", draft="RASCUNHO", bill_to="Faturar a", invoice_number="Número da fatura",
        account="Conta", period="Período", issue_date="Data de emissão",
        due_date="Data de vencimento", description="Descrição", quantity="Quantidade",
        unit_price="Preço unitário", tax="Imposto", amount="Valor", subtotal="Subtotal",
        total="Total", amount_paid="Valor pago", amount_due="Valor devido",
        pay_online="Pagar online", due_on_receipt="Pagamento no recebimento",
        pay_by="Pague {amount} até {date}.", group_subtotal="Subtotal de {group}",
        other_charges="Outras cobranças", tax_included="imposto incluído", email="E-mail",
        phone="Telefone", tax_number="Número fiscal", notes="Observações",
        page_x_of_y="Página {page} de {total}", attachment_description="Dados da fatura (JSON)",
    ),
    "sv": Labels(
        invoice="Faktura", draft="UTKAST", bill_to="Fakturamottagare",
        invoice_number="Fakturanummer", account="Kundkonto", period="Period",
        issue_date="Fakturadatum", due_date="Förfallodatum", description="Beskrivning",
        quantity="Antal", unit_price="À-pris", tax="Moms", amount="Belopp", subtotal="Delsumma",
        total="Totalt", amount_paid="Betalt", amount_due="Att betala", pay_online="Betala online",
        due_on_receipt="Förfaller vid mottagandet", pay_by="Betala {amount} senast {date}.",
        group_subtotal="Delsumma för {group}", other_charges="Övriga avgifter",
        tax_included="inkl. moms", email="E-post", phone="Telefon",
        tax_number="Momsregistreringsnummer", notes="Meddelanden",
        page_x_of_y="Sida {page} av {total}", attachment_description="Fakturadata (JSON)",
    ),
    "ru": Labels(
        invoice="Счёт", draft="ЧЕРНОВИК", bill_to="Плательщик", invoice_number="Номер счёта",
        account="Лицевой счёт", period="Период", issue_date="Дата выставления",
        due_date="Срок оплаты", description="Описание", quantity="Количество",
        unit_price="Цена за единицу", tax="Налог", amount="Сумма", subtotal="Промежуточный итог",
        total="Итого", amount_paid="Оплачено", amount_due="К оплате", pay_online="Оплатить онлайн",
        due_on_receipt="Оплата по получении", pay_by="Просим оплатить {amount} не позднее {date}",
        group_subtotal="Промежуточный итог: {group}", other_charges="Прочие начисления",
        tax_included="вкл. налог", email="Эл. почта", phone="Телефон", tax_number="ИНН",
        notes="Примечания", page_x_of_y="Страница {page} из {total}",
        attachment_description="Данные счёта (JSON)",
    ),
}

SUPPORTED_LANGUAGES = frozenset(LABELS)


@dataclass(frozen=True, slots=True)
class Formatter:
    """Labels and Babel formatting for one document locale."""

    locale: str  # the Babel locale used for numbers, money and dates, e.g. "sv_SE"
    language: str  # the key of ``labels`` in LABELS, e.g. "sv"
    labels: Labels

    @property
    def region(self) -> str | None:
        territory: str | None = _parse(self.locale).territory
        return territory

    def money(self, minor: int, currency: str) -> str:
        """``Money(minor, currency).format(self.locale)``, character for character."""
        return money_format(currency, self.locale)(minor)

    def date(self, value: datetime.date) -> str:
        return _date(value, self.locale)

    def period(self, start: datetime.date | None, end: datetime.date | None) -> str:
        """A date range in the locale's interval format ("Mar 1 – 31, 2025"); one open end
        prints the other date alone."""
        if start is not None and end is not None:
            return _interval(start, end, self.locale)
        if start is not None:
            return self.date(start)
        return "" if end is None else self.date(end)

    def quantity(self, value: int) -> str:
        return _decimal(value, self.locale)

    def percent(self, value: str) -> str:
        """A decimal percentage string ("8.25") as the locale prints it ("8,25 %")."""
        return _percent(value, self.locale)

    def country(self, code: str) -> str:
        """The country's name in the document's language; an unknown code prints as given."""
        return str(_parse(self.locale).territories.get(code.upper(), code))


@lru_cache(maxsize=256)
def formatter(language: str) -> Formatter:
    """The formatter for a document language: "es_MX" gets Spanish labels and Mexican
    formatting; a language without labels, or that Babel does not know, gets English."""
    tag = language.strip().replace("-", "_")
    try:
        locale = Locale.parse(tag) if tag else None
    except (UnknownLocaleError, ValueError):
        locale = None
    if locale is None or locale.language not in LABELS:
        return Formatter(locale=FALLBACK_LANGUAGE, language=FALLBACK_LANGUAGE,
                         labels=LABELS[FALLBACK_LANGUAGE])
    return Formatter(locale=str(locale), language=locale.language, labels=LABELS[locale.language])


@cache
def _parse(locale: str) -> Locale:
    return Locale.parse(locale)


@lru_cache(maxsize=256)
def money_format(currency: str, locale: str) -> Callable[[int], str]:
    """``Money(minor, currency).format(locale)`` as a function of ``minor``.

    Babel looks the locale, pattern, symbols and the currency's digits up again on every
    call, about 0.1 ms: three dozen amounts on an invoice made money formatting most of
    the Python time of rendering one. Here they are looked up once per currency and
    locale. Where Babel's pattern is of a kind ``_CurrencyFormat`` does not reproduce, or
    it disagrees with ``Money.format`` on any of ``_PROBES``, ``Money.format`` is used.
    Raises ``MoneyError`` for a currency Money does not take.
    """
    exponent(currency)

    def money(minor: int) -> str:
        return Money(minor, currency).format(locale)

    fast = _CurrencyFormat.of(currency, locale)
    if fast is None or any(fast(minor) != money(minor) for minor in _PROBES):
        return money
    return fast


# Signs, zero, every digit count up to 15, fractions with and without trailing zeros.
_PROBES = (0, 1, -1, 7, 10, -10, 99, 100, 101, 1_000, -1_050, 12_345, 100_000, 1_000_001,
           12_345_678, -99_999_999, 123_456_789_012, -100_000_000_000_000)


@dataclass(frozen=True, slots=True)
class _CurrencyFormat:
    """What Babel's ``format_currency(..., decimal_quantization=False)`` does with the
    standard currency pattern of a locale, for an integer amount of minor units."""

    exponent: int  # the currency's minor-unit digits, as Money counts them (ISO 4217)
    digits: int  # decimals Babel prints at least (CLDR's, which may differ from ISO's)
    positive: tuple[str, str]  # prefix and suffix, with the currency's sign or code
    negative: tuple[str, str]
    group: str
    decimal: str
    grouping: tuple[int, int]
    min_int: int

    @classmethod
    def of(cls, currency: str, locale: str) -> _CurrencyFormat | None:
        """None for a pattern this does not reproduce: scaled, scientific, significant
        digits, the currency's plural name (¤¤¤), or quotes where they could pair up
        across the number."""
        loc = _parse(locale)
        pattern = loc.currency_formats["standard"]
        group = get_group_symbol(loc, numbering_system="latn")
        decimal = get_decimal_symbol(loc, numbering_system="latn")
        symbol = get_currency_symbol(currency, loc)
        affixes = []
        for prefix, suffix in zip(pattern.prefix, pattern.suffix, strict=True):
            shown = [affix.replace("¤¤", currency.upper()).replace("¤", symbol)
                     for affix in (prefix, suffix)]
            if "¤¤¤" in prefix + suffix or "'" in "".join(shown):
                return None
            affixes.append((shown[0], shown[1]))
        if (pattern.scale or pattern.exp_prec or "@" in pattern.pattern
                or not pattern.number_pattern or "'" in group + decimal):
            return None
        return cls(exponent=exponent(currency), digits=get_currency_precision(currency),
                   positive=affixes[0], negative=affixes[1], group=group, decimal=decimal,
                   grouping=pattern.grouping, min_int=pattern.int_prec[0])

    def __call__(self, minor: int) -> str:
        whole, fraction = divmod(abs(minor), 10**self.exponent)
        cents = f"{fraction:0{self.exponent}d}".rstrip("0") if self.exponent else ""
        number = self._grouped(str(whole).rjust(self.min_int, "0"))
        if cents or self.digits:
            number += self.decimal + cents.ljust(self.digits, "0")
        prefix, suffix = self.negative if minor < 0 else self.positive
        return prefix + number + suffix

    def _grouped(self, digits: str) -> str:
        size, groups = self.grouping[0], []
        while len(digits) > size:
            groups.append(digits[-size:])
            digits, size = digits[:-size], self.grouping[1]
        groups.append(digits)
        return self.group.join(reversed(groups))


@lru_cache(maxsize=1024)
def _date(value: datetime.date, locale: str) -> str:
    return str(format_date(value, "long", locale=locale))


@lru_cache(maxsize=1024)
def _interval(start: datetime.date, end: datetime.date, locale: str) -> str:
    return str(format_interval(start, end, "yMMMd", locale=locale))


@lru_cache(maxsize=1024)
def _percent(value: str, locale: str) -> str:
    try:
        rate = Decimal(value)
    except InvalidOperation:
        return value
    return str(format_percent(rate.scaleb(-2), locale=locale, decimal_quantization=False))


@lru_cache(maxsize=1024)
def _decimal(value: int, locale: str) -> str:
    return str(format_decimal(value, locale=locale))
