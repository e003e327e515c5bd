# ruff: noqa: RUF001, RUF003  (expected text in Cyrillic and with typographic punctuation)
import csv
import gc
import io
import json
import os
import random
import re
import threading
from datetime import date

import pytest
from pypdf import PdfReader

from billfold.invoicing import labels as labels_module
from billfold.invoicing import render as render_module
from billfold.invoicing.document import (
    DocumentLine,
    InvoiceDocument,
    Party,
    PostalAddress,
    to_json,
)
from billfold.invoicing.labels import LABELS, SUPPORTED_LANGUAGES, formatter, money_format
from billfold.invoicing.render import MANIFEST_COLUMNS, InvoiceRenderer, InvoiceRenderError
from billfold.money import Money, MoneyError


def make_lines(count: int, *, groups: tuple[str, ...] = (), unit_minor: int = 1250,
               **overrides) -> tuple[DocumentLine, ...]:
    return tuple(
        DocumentLine(**({
            "description": f"Line item {i + 1:02d}",
            "quantity": i + 1,
            "amount_minor": unit_minor * (i + 1),
            "tax_minor": unit_minor * (i + 1) * 825 // 10_000,
            "unit_amount_minor": unit_minor,
            "tax_percent": "8.25",
            "period_start": date(2025, 3, 1),
            "period_end": date(2025, 3, 31),
            "group": groups[i % len(groups)] if groups else None,
        } | overrides))
        for i in range(count)
    )


def make_document(*, lines: tuple[DocumentLine, ...] | None = None, amount_paid_minor: int = 1000,
                  **overrides) -> InvoiceDocument:
    lines = make_lines(10) if lines is None else lines
    subtotal = sum(line.amount_minor for line in lines)
    tax = sum(line.tax_minor for line in lines)
    fields = {
        "invoice_id": "inv_0192f5a0",
        "number": "INV-000123",
        "status": "open",
        "language": "en_US",
        "currency": "USD",
        "issue_date": date(2025, 4, 1),
        "due_date": date(2025, 4, 30),
        "period_start": date(2025, 3, 1),
        "period_end": date(2025, 3, 31),
        "biller": Party("Northwind Utilities",
                        PostalAddress("1 Main St", "Suite 200", "Springfield", "IL", "62701", "US"),
                        email="billing@northwind.example", tax_number="12-3456789"),
        "bill_to": Party("Åsa Öberg",
                         PostalAddress("Storgatan 1", None, "Stockholm", None, "111 22", "SE"),
                         email="asa@example.se"),
        "account_number": "ACCT-000042",
        "lines": lines,
        "subtotal_minor": subtotal,
        "tax_minor": tax,
        "total_minor": subtotal + tax,
        "amount_paid_minor": amount_paid_minor,
        "amount_due_minor": subtotal + tax - amount_paid_minor,
        "payment_url": "https://billing.example/pay/ps_123",
        "notes": ("Thank you for your business.",),
    }
    return InvoiceDocument(**(fields | overrides))


def pages_text(pdf: bytes) -> list[str]:
    """The text of each page, with the thin and no-break spaces Babel uses made plain."""
    reader = PdfReader(io.BytesIO(pdf))
    return [_plain(page.extract_text()) for page in reader.pages]


def _plain(text: str) -> str:
    return re.sub(r"[\u00a0\u2000-\u200a\u202f]", " ", text)


def money(minor: int, currency: str, locale: str) -> str:
    return _plain(Money(minor, currency).format(locale))


@pytest.fixture(scope="module")
def renderer():
    return InvoiceRenderer()


def record_compilations(monkeypatch) -> list[dict]:
    """The data of every compilation from here on, in order."""
    compiled: list[dict] = []
    compile_ = render_module._Workspace.compile

    def recording(self, data: bytes, **options):
        compiled.append(json.loads(data))
        return compile_(self, data, **options)

    monkeypatch.setattr(render_module._Workspace, "compile", recording)
    return compiled


class TestRenderInvoice:
    def test_shows_number_customer_lines_and_totals(self, renderer):
        doc = make_document()
        [text] = pages_text(renderer.render(doc))
        for expected in ("INV-000123", "Åsa Öberg", "Northwind Utilities", "ACCT-000042",
                         "Line item 01", "Line item 10", "Amount due", "Page 1 of 1",
                         "https://billing.example/pay/ps_123", "Thank you for your business.",
                         "Sweden", "April 30, 2025", "Mar 1 – 31, 2025", "8.25%"):
            assert expected in text
        for amount in (doc.subtotal_minor, doc.tax_minor, doc.total_minor, doc.amount_due_minor):
            assert money(amount, "USD", "en_US") in text
        assert f"Please pay {money(doc.amount_due_minor, 'USD', 'en_US')} by April 30, 2025." in text

    def test_declares_pdf_a_3b_in_its_xmp_metadata(self, renderer):
        xmp = PdfReader(io.BytesIO(renderer.render(make_document()))).xmp_metadata
        assert xmp is not None
        assert (str(xmp.pdfaid_part), str(xmp.pdfaid_conformance).upper()) == ("3", "B")

    def test_attaches_the_document_as_invoice_json(self, renderer):
        doc = make_document(language="sv_SE", currency="SEK")
        reader = PdfReader(io.BytesIO(renderer.render(doc)))
        [data] = reader.attachments["invoice.json"]
        assert json.loads(data) == to_json(doc)
        names = reader.trailer["/Root"]["/Names"]["/EmbeddedFiles"]["/Names"]
        spec = names[names.index("invoice.json") + 1].get_object()
        assert spec["/Desc"] == "Fakturadata (JSON)"
        assert spec["/AFRelationship"] == "/Data"
        assert [f.get_object()["/F"] for f in reader.trailer["/Root"]["/AF"]] == ["invoice.json"]

    def test_the_same_document_renders_to_the_same_bytes(self, renderer):
        assert renderer.render(make_document()) == renderer.render(make_document())

    @pytest.mark.parametrize(("locale", "currency", "words"), [
        ("sv_SE", "SEK", ("Faktura", "Att betala", "Förfallodatum", "Sida 1 av 1", "30 april 2025")),
        ("es_MX", "MXN", ("Factura", "Importe adeudado", "Fecha de vencimiento",
                          "30 de abril de 2025")),
        ("ru_RU", "RUB", ("Счёт", "К оплате", "Срок оплаты", "Итого", "Страница 1 из 1",
                          "30 апреля 2025 г.")),
        ("fr", "EUR", ("Facture", "Montant dû", "Date d’échéance", "Page 1 sur 1")),
        ("de_DE", "EUR", ("Rechnung", "Offener Betrag", "Fälligkeitsdatum", "Seite 1 von 1")),
        ("pt_BR", "BRL", ("Fatura", "Valor devido", "Data de vencimento", "Página 1 de 1")),
    ])
    def test_labels_and_amounts_follow_the_document_locale(self, renderer, locale, currency, words):
        doc = make_document(language=locale, currency=currency)
        [text] = pages_text(renderer.render(doc))
        for word in words:
            assert word in text
        assert "Åsa Öberg" in text
        for amount in (doc.subtotal_minor, doc.total_minor, doc.amount_due_minor):
            assert money(amount, currency, locale) in text
        assert "Amount due" not in text

    def test_swedish_kronor_print_with_a_decimal_comma(self, renderer):
        doc = make_document(language="sv_SE", currency="SEK")
        [text] = pages_text(renderer.render(doc))
        assert money(doc.total_minor, "SEK", "sv_SE").endswith(" kr")
        assert money(doc.total_minor, "SEK", "sv_SE") in text
        assert "687,50 kr" in text  # the subtotal of make_lines(10)

    def test_yen_print_without_decimals(self, renderer):
        lines = make_lines(10, unit_minor=1500)
        doc = make_document(currency="JPY", lines=lines, amount_paid_minor=0)
        [text] = pages_text(renderer.render(doc))
        assert "¥82,500" in text  # 1500 × (1 + … + 10)
        assert not re.search(r"¥[\d,]+\.\d", text)

    def test_a_draft_prints_the_translated_draft_mark_instead_of_a_number(self, renderer):
        doc = make_document(number=None, status="draft", language="de")
        [text] = pages_text(renderer.render(doc))
        assert "ENTWURF" in text
        assert "DRAFT" not in text
        assert "INV-000123" not in text

    def test_grouped_lines_print_under_a_heading_with_a_subtotal_per_group(self, renderer):
        groups = ("ACCT-000012 · Zimbabwe", "ACCT-000013 · Zambia")
        doc = make_document(lines=make_lines(6, groups=groups) + make_lines(1, description="Late fee"))
        [text] = pages_text(renderer.render(doc))
        for group in groups:
            subtotal = sum(line.amount_minor for line in doc.lines if line.group == group)
            assert f"Subtotal for {group} {money(subtotal, 'USD', 'en_US')}" in text
        assert text.index(groups[0]) < text.index(groups[1]) < text.index("Other charges")
        assert f"Subtotal for Other charges {money(1250, 'USD', 'en_US')}" in text

    def test_an_ungrouped_invoice_has_no_group_subtotals(self, renderer):
        [text] = pages_text(renderer.render(make_document()))
        assert "Subtotal for" not in text

    def test_a_long_invoice_flows_over_pages_repeating_the_table_header(self, renderer):
        doc = make_document(lines=make_lines(60))
        pages = pages_text(renderer.render(doc))
        assert len(pages) >= 2
        for number, text in enumerate(pages, 1):
            assert f"Page {number} of {len(pages)}" in text
            assert "Description Quantity Unit price Tax Amount" in text
        everything = "\n".join(pages)
        assert all(f"Line item {i:02d}" in everything for i in range(1, 61))
        assert money(doc.amount_due_minor, "USD", "en_US") in pages[-1]

    def test_a_line_period_is_printed_only_where_it_differs_from_the_invoice(self, renderer):
        lines = make_lines(3) + make_lines(1, description="Setup", period_start=date(2025, 2, 10),
                                           period_end=date(2025, 2, 28))
        [text] = pages_text(renderer.render(make_document(lines=lines)))
        assert text.count("Mar 1 – 31, 2025") == 1  # the invoice's period, in its facts
        assert "Feb 10 – 28, 2025" in text

    def test_a_tax_inclusive_line_says_so(self, renderer):
        lines = make_lines(2) + make_lines(1, description="Gift card", tax_inclusive=True)
        [text] = pages_text(renderer.render(make_document(lines=lines, language="sv_SE",
                                                          currency="SEK")))
        assert text.count("inkl. moms") == 1

    def test_a_minimal_invoice_renders_without_the_optional_parts(self, renderer):
        doc = make_document(lines=(), biller=Party("Solo Biller"), bill_to=Party("Bo Ek"),
                            due_date=None, period_start=None, period_end=None,
                            payment_url=None, notes=(), amount_paid_minor=0)
        [text] = pages_text(renderer.render(doc))
        assert "Solo Biller" in text
        assert "Bo Ek" in text
        assert "Due on receipt" in text
        assert "Period" not in text
        assert "Pay online" not in text
        assert "Notes" not in text
        assert f"Amount due {money(0, 'USD', 'en_US')}" in text

    def test_a_paid_invoice_asks_for_no_payment(self, renderer):
        doc = make_document(amount_paid_minor=make_document().total_minor)
        [text] = pages_text(renderer.render(doc))
        assert doc.amount_due_minor == 0
        assert "Please pay" not in text

    @pytest.mark.parametrize(("country", "size"), [("US", (612, 792)), ("SE", (595, 842))])
    def test_the_paper_follows_the_biller_country(self, renderer, country, size):
        biller = Party("Biller", PostalAddress("1 Road", city="Town", country=country))
        page = PdfReader(io.BytesIO(renderer.render(make_document(biller=biller)))).pages[0]
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == size

    def test_countries_are_named_in_the_document_language(self, renderer):
        [text] = pages_text(renderer.render(make_document(language="de")))
        assert "Schweden" in text
        assert "Vereinigte Staaten" in text

    def test_an_unknown_language_falls_back_to_english(self, renderer):
        [text] = pages_text(renderer.render(make_document(language="xx_YY")))
        assert "Invoice" in text
        assert "Amount due" in text
        assert "April 30, 2025" in text

    def test_customer_text_is_printed_literally_never_run_as_typst(self, renderer):
        hostile = '#set page(fill: red) *bold* $x^2$ #read("/etc/passwd") <label> @ref \\ `raw`'
        doc = make_document(bill_to=Party(hostile), lines=make_lines(1, description=hostile),
                            notes=(hostile,))
        [text] = pages_text(renderer.render(doc))
        assert text.count(hostile) == 3

    def test_text_no_bundled_font_can_show_is_refused(self, renderer):
        with pytest.raises(InvoiceRenderError, match="could not be displayed"):
            renderer.render(make_document(bill_to=Party("王小明")))

    def test_invoices_in_two_languages_alternately_keep_their_own_formatting(self, renderer):
        english = make_document(language="en_US", currency="EUR")
        german = make_document(language="de_DE", currency="EUR")
        for _ in range(2):
            for doc, locale, due in ((english, "en_US", "April 30, 2025"),
                                     (german, "de_DE", "30. April 2025")):
                [text] = pages_text(renderer.render(doc))
                assert money(doc.amount_due_minor, "EUR", locale) in text
                assert due in text

    def test_a_one_page_invoice_is_typeset_once(self, renderer, monkeypatch):
        compiled = record_compilations(monkeypatch)
        [text] = pages_text(renderer.render(make_document()))
        assert [batch["invoices"][0]["one_page"] for batch in compiled] == [True]
        assert "Page 1 of 1" in text

    def test_it_prints_the_same_bytes_whether_or_not_it_counts_the_pages(self, renderer,
                                                                          monkeypatch):
        doc = make_document()
        once = renderer.render(doc)
        monkeypatch.setattr(render_module, "_likely_one_page", lambda doc: False)
        assert renderer.render(doc) == once

    def test_an_invoice_that_runs_over_after_all_is_typeset_again_counting_pages(
            self, renderer, monkeypatch):
        compiled = record_compilations(monkeypatch)
        doc = make_document(notes=tuple(f"Note {i}" for i in range(70)))
        pages = pages_text(renderer.render(doc))
        assert [batch["invoices"][0]["one_page"] for batch in compiled] == [True, False]
        assert len(pages) >= 2
        for number, text in enumerate(pages, 1):
            assert f"Page {number} of {len(pages)}" in text

    def test_a_biller_name_that_looks_like_a_page_tree_cannot_pass_as_one(self, renderer):
        doc = make_document(biller=Party("<</Type/Pages/Count 1/Kids[1 0 R]>>"),
                            notes=tuple(f"Note {i}" for i in range(70)))
        pages = pages_text(renderer.render(doc))
        assert len(pages) >= 2
        assert f"Page {len(pages)} of {len(pages)}" in pages[-1]

    def test_long_invoices_count_their_pages_from_the_start(self, renderer, monkeypatch):
        compiled = record_compilations(monkeypatch)
        renderer.render(make_document(lines=make_lines(30)))
        assert [batch["invoices"][0]["one_page"] for batch in compiled] == [False]

    def test_a_renderers_working_directory_goes_when_it_does(self):
        directory = (local := InvoiceRenderer())._workspace.directory
        local.render(make_document())
        assert directory.is_dir()
        assert not (directory / "data.json").exists()  # nobody's address lies about
        del local
        gc.collect()
        assert not directory.exists()

    def test_a_renderer_whose_working_directory_was_cleaned_away_makes_another(self):
        local = InvoiceRenderer()
        gone = local._workspace.directory
        render_module._remove_workspace(gone, os.getpid())
        [text] = pages_text(local.render(make_document()))
        assert "INV-000123" in text
        assert local._workspace.directory != gone

    def test_a_forked_child_leaves_its_parents_working_directory_alone(self, renderer):
        directory = renderer._workspace.directory
        render_module._remove_workspace(directory, os.getpid() + 1)
        assert directory.is_dir()

    def test_a_shared_renderer_serves_several_threads(self, renderer):
        docs = [make_document(number=f"INV-{i:06d}") for i in range(6)]
        expected = [renderer.render(doc) for doc in docs]
        results: dict[int, bytes] = {}

        def render(i: int) -> None:
            results[i] = renderer.render(docs[i])

        threads = [threading.Thread(target=render, args=(i,)) for i in range(len(docs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [results[i] for i in range(len(docs))] == expected


class TestPrintBatch:
    def test_each_invoice_starts_on_an_odd_page_and_the_manifest_says_where(self, renderer):
        docs = [
            make_document(number="INV-1", account_number="ACCT-1"),
            make_document(number="INV-2", account_number="ACCT-2", lines=make_lines(60),
                          bill_to=Party("Иван Петров", PostalAddress(
                              "ул. Ленина, 1", "кв. 5", "Москва", None, "101000", "RU"))),
            make_document(number="INV-3", account_number="ACCT-3", language="sv_SE",
                          currency="SEK"),
        ]
        batch = renderer.render_print_batch(docs)
        pages = pages_text(batch.pdf)
        long_pages = len(pages_text(renderer.render(docs[1])))
        assert batch.pages == [1, long_pages, 1]
        assert batch.first_pages == [1, 3, 3 + long_pages + long_pages % 2]
        assert len(pages) == batch.first_pages[-1]

        rows = list(csv.DictReader(io.StringIO(batch.manifest_csv)))
        assert tuple(rows[0]) == MANIFEST_COLUMNS
        assert [r["sequence"] for r in rows] == ["1", "2", "3"]
        assert [r["invoice_number"] for r in rows] == ["INV-1", "INV-2", "INV-3"]
        assert [r["account_number"] for r in rows] == ["ACCT-1", "ACCT-2", "ACCT-3"]
        assert rows[1]["name"] == "Иван Петров"
        assert (rows[1]["line1"], rows[1]["line2"], rows[1]["postal_code"], rows[1]["city"],
                rows[1]["region"], rows[1]["country"]) == (
            "ул. Ленина, 1", "кв. 5", "101000", "Москва", "", "RU")
        assert [int(r["first_page"]) for r in rows] == batch.first_pages
        assert [int(r["page_count"]) for r in rows] == batch.pages

        for doc, first in zip(docs, batch.first_pages, strict=True):
            assert doc.number in pages[first - 1]
            assert doc.bill_to.name in pages[first - 1]
        assert f"Page 1 of {long_pages}" in pages[2]
        assert f"Page {long_pages} of {long_pages}" in pages[2 + long_pages - 1]
        assert "Sida 1 av 1" in pages[batch.first_pages[2] - 1]
        assert pages[1] == ""  # the blank back of the one-page first invoice
        if long_pages % 2:
            assert pages[batch.first_pages[2] - 2] == ""

    def test_an_empty_batch_is_refused(self, renderer):
        with pytest.raises(ValueError, match="at least one invoice"):
            renderer.render_print_batch([])


class TestLabels:
    def test_every_language_translates_every_label(self):
        english = LABELS["en"]
        for language in SUPPORTED_LANGUAGES - {"en"}:
            labels = LABELS[language]
            for field in english.__dataclass_fields__:
                value = getattr(labels, field)
                assert value, (language, field)
                assert set(re.findall(r"{\w+}", value)) == set(
                    re.findall(r"{\w+}", getattr(english, field))), (language, field)
            assert labels.invoice != english.invoice

    @pytest.mark.parametrize(("language", "labels_from", "locale"), [
        ("es_MX", "es", "es_MX"), ("es-MX", "es", "es_MX"), ("sv_SE", "sv", "sv_SE"),
        ("ru", "ru", "ru"), ("en_GB", "en", "en_GB"), ("it_IT", "en", "en"), ("xx", "en", "en"),
        ("", "en", "en"),
    ])
    def test_a_regional_locale_takes_its_language_labels(self, language, labels_from, locale):
        fmt = formatter(language)
        assert fmt.labels is LABELS[labels_from]
        assert fmt.locale == locale

    def test_periods_dates_and_countries_are_in_the_document_language(self):
        fmt = formatter("ru_RU")
        assert fmt.country("SE") == "Швеция"
        assert _plain(fmt.date(date(2025, 4, 30))) == "30 апреля 2025 г."
        assert _plain(fmt.period(date(2025, 3, 1), date(2025, 3, 31))) == "1–31 мар. 2025 г."
        assert _plain(fmt.period(None, date(2025, 3, 31))) == "31 марта 2025 г."
        assert _plain(fmt.percent("8.25")) == "8,25 %"


class TestMoneyFormat:
    LOCALES = ("en", "en_US", "en_GB", "en_IN", "es", "es_MX", "fr", "fr_FR", "fr_CH", "de",
               "de_DE", "de_CH", "pt", "pt_BR", "sv", "sv_SE", "ru", "ru_RU", "ja_JP", "ar_EG")
    CURRENCIES = ("USD", "EUR", "SEK", "CHF", "JPY", "BHD", "IQD", "RUB", "MXN", "BRL", "INR")

    @pytest.mark.parametrize("locale", LOCALES)
    def test_prints_what_money_format_prints(self, locale):
        rng = random.Random(locale)
        amounts = [0, 1, -1, 99, 100, -1_050, 123_456, 10**15 + 1] + [
            rng.randint(-10**digits, 10**digits) for digits in range(1, 14) for _ in range(3)]
        for currency in self.CURRENCIES:
            for minor in amounts:
                assert formatter(locale).money(minor, currency) == \
                    Money(minor, currency).format(formatter(locale).locale), (currency, minor)

    def test_two_locales_asked_for_alternately_each_keep_their_own_format(self):
        english, german = formatter("en_US"), formatter("de_DE")
        for _ in range(3):
            assert _plain(english.money(123_456, "EUR")) == "€1,234.56"
            assert _plain(german.money(123_456, "EUR")) == "1.234,56 €"
            assert _plain(english.money(-5, "SEK")) == "-SEK0.05"
            assert _plain(german.money(-5, "SEK")) == "-0,05 SEK"

    def test_falls_back_to_money_format_where_its_own_would_differ(self, monkeypatch):
        money_format.cache_clear()
        monkeypatch.setattr(labels_module._CurrencyFormat, "of",
                            classmethod(lambda cls, currency, locale: lambda minor: "wrong"))
        try:
            assert money_format("EUR", "de_DE")(123_456) == Money(123_456, "EUR").format("de_DE")
        finally:
            monkeypatch.undo()
            money_format.cache_clear()

    def test_refuses_a_currency_money_does_not_take(self):
        with pytest.raises(MoneyError):
            formatter("en_US").money(100, "XXX")


class TestToJson:
    def test_amounts_are_minor_units_and_dates_iso(self):
        doc = make_document(lines=make_lines(1, group="ACCT-1 · Zimbabwe", tax_inclusive=True))
        data = to_json(doc)
        assert json.loads(json.dumps(data)) == data
        assert data["currency"] == "USD"
        assert data["issue_date"] == "2025-04-01"
        assert data["total_minor"] == doc.total_minor
        assert data["lines"][0] == {
            "description": "Line item 01", "quantity": 1, "amount_minor": 1250, "tax_minor": 103,
            "unit_amount_minor": 1250, "tax_percent": "8.25", "tax_inclusive": True,
            "period_start": "2025-03-01", "period_end": "2025-03-31", "group": "ACCT-1 · Zimbabwe",
        }
        assert data["bill_to"]["address"]["country"] == "SE"
        assert data["notes"] == ["Thank you for your business."]
