"""Cloud Payments V2 request parsing (payments/cloudpayments.py): pure, no database."""

import random
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.core.errors import BillfoldError, ValidationFailed
from billfold.money import MoneyError
from billfold.payments.cloudpayments import (
    CloudPaymentRequest,
    CpCustomer,
    CpInvoice,
    parse_json,
    parse_request,
)

# The "Sample Request" of the seed, verbatim: tabs, trailing spaces and Python's False.
SEED_SAMPLE = """{
	"CreateCustomerRecord": true,
	"Customers": [
		{
			"AccountNumber": "ACCT-TEST-001",
			"Name": "John S",
			"Address": "123 Main Street",
			"City": "Tampa",
			"State": "FL",
			"Zip": "12345",
			"EmailAddress": "none@none.com",
			"Invoices": [
				{
					"InvoiceNumber": "INV-TEST-001",
					"TypeID": 6,
					"DueDate": "08/20/2099",
					"InvoiceDate": "04/27/2024",
					"BalanceDue": 10.00,
					"CCServiceFee": 1.00,
					"AchServiceFee": 1.00
				}
			]
		}
	],
	"AllowSwipe": false,
	"AllowCCPayment": true,
	"AllowACHPayment": true,
	"AllowEMV": false,
	"ReturnURL": "",
	"PostBackURL": "https://www.yourdomain.com/postback.aspx ",
	"BillerReference": "A unique reference number generated from Biller",
	"ViewMode": 0,
	"PageLoadOverride": 1,
	"PageResultOptions": {
                    "AllowRegisterAccount": False,
                    "InvoiceOptions": {
                        "AllowViewStatement": false,
                        "AllowRemove": true, 
                        "AllowViewRelated": False,
                        "AllowRemindMe": False
                    }
                }
}"""  # noqa: W291 (the seed's trailing spaces are part of the sample)


def a_request(**top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Customers": [{"AccountNumber": "A-1", "Invoices": [{"InvoiceNumber": "I-1"}]}],
    }
    data.update(top)
    return data


def with_invoice(**fields: Any) -> dict[str, Any]:
    return a_request(Customers=[{"AccountNumber": "A-1", "Invoices": [{"InvoiceNumber": "I-1", **fields}]}])


def the_invoice(data: dict[str, Any], currency: str = "USD") -> CpInvoice:
    return parse_request(data, currency=currency).customers[0].invoices[0]


def field_errors(data: Any, currency: str = "USD") -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        parse_request(data, currency=currency)
    return {error.field: error.message for error in caught.value.errors}


def json_problem(body: bytes) -> BillfoldError:
    with pytest.raises(BillfoldError) as caught:
        parse_json(body)
    return caught.value


class TestParseJson:
    def test_the_seed_sample_is_refused_at_its_python_false(self):
        problem = json_problem(SEED_SAMPLE.encode())
        assert problem.detail == "line 35, column 45: 'False' is not JSON; use false"
        assert (problem.code, problem.status) == ("invalid_json", 400)
        assert problem.title == "Request body is not valid JSON"

    @pytest.mark.parametrize(("literal", "spelling"), [("True", "true"), ("None", "null")])
    def test_other_python_literals_get_their_json_spelling(self, literal, spelling):
        problem = json_problem(f'{{\n  "a": {literal}}}'.encode())
        assert problem.detail == f"line 2, column 8: '{literal}' is not JSON; use {spelling}"

    def test_other_syntax_errors_carry_jsons_own_message(self):
        assert json_problem(b'{"a": 1 "b": 2}').detail == "line 1, column 9: Expecting ',' delimiter"

    def test_a_word_that_merely_starts_like_a_python_literal_gets_no_hint(self):
        assert "use false" not in json_problem(b'{"a": Falsey}').detail

    def test_valid_json_is_decoded(self):
        assert parse_json(b'{"a": [1, 2.5, "x", true, null]}') == {"a": [1, 2.5, "x", True, None]}

    def test_a_utf8_byte_order_mark_is_tolerated(self):
        assert parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}

    def test_a_body_that_is_not_utf8_is_refused(self):
        problem = json_problem('{"Name": "Müller"}'.encode("latin-1"))
        assert problem.detail == "byte 12 is not UTF-8; send the body as UTF-8"
        assert problem.status == 400

    def test_a_utf16_body_is_refused_rather_than_guessed(self):
        assert "UTF-16" in json_problem('{"a": 1}'.encode("utf-16")).detail

    def test_an_empty_body_is_refused(self):
        assert json_problem(b"  \n").detail == "the body is empty"

    def test_a_key_given_twice_is_refused_instead_of_keeping_the_last(self):
        problem = json_problem(b'{"BalanceDue": 1, "BalanceDue": 100}')
        assert problem.detail == "the key 'BalanceDue' appears twice in one object"

    def test_absurd_nesting_is_a_400_not_a_crash(self):
        assert json_problem(b"[" * 100_000).status == 400

    def test_an_integer_of_thousands_of_digits_is_a_400_not_a_crash(self):
        assert json_problem(b"1" * 5000).status == 400


class TestTheSeedSample:
    def seed_request(self) -> CloudPaymentRequest:
        return parse_request(parse_json(SEED_SAMPLE.replace("False", "false").encode()), currency="USD")

    def test_parses_once_its_python_false_is_spelled_false(self):
        assert replace(self.seed_request(), customers=()) == CloudPaymentRequest(
            create_customer_record=True, customers=(), allow_card=True, allow_ach=True,
            return_url=None, postback_url="https://www.yourdomain.com/postback.aspx", css_url=None,
            biller_reference="A unique reference number generated from Biller", view_mode=0,
            page_load_override=1, allow_register_account=False, allow_view_statement=False,
            allow_remove=True, allow_view_related=False, allow_remind_me=False, ignored_fields=(),
        )

    def test_its_invoice_is_in_minor_units_with_real_dates(self):
        assert self.seed_request().customers == (
            CpCustomer(
                account_number="ACCT-TEST-001", display_account_number=None, name="John S",
                address="123 Main Street", city="Tampa", state="FL", zip="12345", email="none@none.com",
                invoices=(CpInvoice(
                    invoice_number="INV-TEST-001", type_id=6, invoice_date=date(2024, 4, 27),
                    due_date=date(2099, 8, 20), balance_due_minor=1000, cc_fee_minor=100,
                    ach_fee_minor=100, minimum_amount_due_minor=None, allow_partial=False,
                ),),
            ),
        )


class TestFieldNames:
    @pytest.mark.parametrize("spelling", ["ACHServiceFee", "AchServiceFee", "achservicefee", "ACHSERVICEFEE"])
    def test_a_field_name_matches_in_any_letter_case(self, spelling):
        assert the_invoice(with_invoice(**{spelling: "2.50"})).ach_fee_minor == 250

    def test_nested_option_names_match_in_any_letter_case(self):
        data = a_request(pageresultoptions={"INVOICEOPTIONS": {"allowremove": "false"}})
        assert parse_request(data, currency="USD").allow_remove is False

    def test_unknown_fields_are_ignored_but_listed_with_their_path(self):
        data = a_request(EMVDeviceID="D-9", CashierName="Pat", RemoteAuthenticationToken="t")
        data["Customers"][0]["Invoices"][0]["Memo"] = "hi"
        request = parse_request(data, currency="USD")
        assert request.ignored_fields == (
            "EMVDeviceID", "CashierName", "RemoteAuthenticationToken", "Customers[0].Invoices[0].Memo",
        )

    def test_two_spellings_of_one_field_in_one_object_are_refused(self):
        errors = field_errors(with_invoice(BalanceDue="1.00", balancedue="100.00"))
        assert errors == {
            "Customers[0].Invoices[0].BalanceDue": "is given twice, as 'BalanceDue' and 'balancedue'",
        }

    def test_a_non_ascii_lookalike_of_a_field_name_is_not_that_field(self):
        # "\u212a" (KELVIN SIGN) lower-cases to "k"; folding it would invent a PostBackURL.
        request = parse_request(a_request(**{"PostBac\u212aURL": "https://x.example"}), currency="USD")
        assert request.postback_url is None
        assert request.ignored_fields == ("PostBac\u212aURL",)

    def test_error_paths_use_the_canonical_spelling_whatever_the_client_sent(self):
        data = a_request(pageresultoptions={"invoiceoptions": {"ALLOWREMOVE": "maybe"}})
        assert set(field_errors(data)) == {"PageResultOptions.InvoiceOptions.AllowRemove"}


class TestBooleans:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [(True, True), (False, False), ("true", True), ("FALSE", False), (" True ", True),
         ("false\n", False)],
    )
    def test_json_booleans_and_their_strings_in_any_case_are_accepted(self, value, expected):
        request = parse_request(a_request(CreateCustomerRecord=value), currency="USD")
        assert request.create_customer_record is expected

    @pytest.mark.parametrize("value", ["yes", "1", 1, 0, "t", [], {}])
    def test_anything_else_is_refused_naming_the_field(self, value):
        assert set(field_errors(a_request(CreateCustomerRecord=value))) == {"CreateCustomerRecord"}

    def test_the_defaults_are_those_of_the_original_product(self):
        request = parse_request(a_request(), currency="USD")
        assert (request.create_customer_record, request.allow_card, request.allow_ach) == (False, True, True)
        assert (request.allow_register_account, request.allow_view_statement, request.allow_remove,
                request.allow_view_related, request.allow_remind_me) == (False, False, True, False, False)
        assert the_invoice(a_request()).allow_partial is False


class TestAmounts:
    @pytest.mark.parametrize(
        ("value", "minor"),
        [("10.00", 1000), ("10", 1000), (10, 1000), (10.5, 1050), (10.1, 1010), (0.29, 29),
         (" 7.5 ", 750), ("0.01", 1), (0, 0), (1e13, 10**15)],
    )
    def test_numbers_and_decimal_strings_become_minor_units(self, value, minor):
        assert the_invoice(with_invoice(BalanceDue=value)).balance_due_minor == minor

    def test_the_currency_sets_the_minor_unit(self):
        assert the_invoice(with_invoice(BalanceDue="1.234"), "BHD").balance_due_minor == 1234
        assert the_invoice(with_invoice(BalanceDue=1500), "JPY").balance_due_minor == 1500

    def test_a_whole_json_float_is_whole_even_in_a_currency_without_decimals(self):
        assert the_invoice(with_invoice(BalanceDue=1500.0), "JPY").balance_due_minor == 1500

    def test_yen_refuses_a_fraction_naming_the_exponent(self):
        errors = field_errors(with_invoice(CCServiceFee="1.5"), "JPY")
        message = errors["Customers[0].Invoices[0].CCServiceFee"]
        assert "JPY has exponent 0" in message

    def test_more_decimals_than_the_currency_has_are_refused_not_rounded(self):
        errors = field_errors(with_invoice(BalanceDue="10.001", ACHServiceFee=0.125))
        assert set(errors) == {"Customers[0].Invoices[0].BalanceDue",
                               "Customers[0].Invoices[0].ACHServiceFee"}
        assert "USD has exponent 2" in errors["Customers[0].Invoices[0].BalanceDue"]

    @pytest.mark.parametrize(
        "value", ["-1.00", -1, -0.5, float("nan"), float("inf"), True, "1e3", "1,000.00", "$10", "ten",
                  [], {}, "1" * 41, 1e16],
    )
    def test_negative_non_finite_and_non_decimal_amounts_are_refused(self, value):
        assert set(field_errors(with_invoice(BalanceDue=value))) == {"Customers[0].Invoices[0].BalanceDue"}

    def test_the_maximum_is_ten_to_the_fifteenth_minor_units(self):
        assert the_invoice(with_invoice(BalanceDue=10**13), "USD").balance_due_minor == 10**15
        errors = field_errors(with_invoice(BalanceDue=10**15 + 1), "JPY")
        assert errors == {"Customers[0].Invoices[0].BalanceDue": "must be at most 1000000000000000 JPY"}

    def test_absent_amounts_are_none_or_zero_as_their_meaning_requires(self):
        invoice = the_invoice(with_invoice(BalanceDue="", MinimumAmountDue=None))
        assert (invoice.balance_due_minor, invoice.minimum_amount_due_minor) == (None, None)
        assert (invoice.cc_fee_minor, invoice.ach_fee_minor) == (0, 0)


class TestDates:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [("08/20/2099", date(2099, 8, 20)), ("8/2/2099", date(2099, 8, 2)),
         (" 02/29/2024 ", date(2024, 2, 29))],
    )
    def test_month_day_year_is_read_with_or_without_leading_zeros(self, text, expected):
        assert the_invoice(with_invoice(DueDate=text)).due_date == expected

    @pytest.mark.parametrize(
        "text", ["02/30/2024", "02/29/2023", "13/01/2024", "00/10/2024", "2024-02-01", "20/08/99", 20240201],
    )
    def test_impossible_or_differently_written_dates_are_refused_naming_the_field(self, text):
        assert set(field_errors(with_invoice(InvoiceDate=text))) == {"Customers[0].Invoices[0].InvoiceDate"}

    def test_an_impossible_date_is_called_that(self):
        errors = field_errors(with_invoice(DueDate="02/30/2024"))
        assert errors == {"Customers[0].Invoices[0].DueDate": "'02/30/2024' is not a real date"}


class TestWholeNumbers:
    @pytest.mark.parametrize(("value", "expected"), [(6, 6), ("6", 6), (" 6 ", 6), (6.0, 6), ("", None)])
    def test_type_id_is_a_number_or_numeric_string(self, value, expected):
        assert the_invoice(with_invoice(TypeID=value)).type_id == expected

    @pytest.mark.parametrize("value", ["6.5", 6.5, "six", True, -1, "-1", 2**31])
    def test_type_id_refuses_anything_else(self, value):
        assert set(field_errors(with_invoice(TypeID=value))) == {"Customers[0].Invoices[0].TypeID"}

    def test_view_mode_is_zero_or_one(self):
        assert parse_request(a_request(ViewMode="1"), currency="USD").view_mode == 1
        assert field_errors(a_request(ViewMode=2)) == {"ViewMode": "must be 0 (full page) or 1 (iframe)"}

    def test_page_load_override_is_optional(self):
        assert parse_request(a_request(PageLoadOverride=None), currency="USD").page_load_override is None
        assert parse_request(a_request(PageLoadOverride="3"), currency="USD").page_load_override == 3


class TestText:
    def test_strings_are_trimmed_and_blank_ones_are_absent(self):
        data = a_request(PostBackURL=" https://x.example/pb ", ReturnURL="", CssUrl="   ")
        request = parse_request(data, currency="USD")
        assert request.postback_url == "https://x.example/pb"
        assert (request.return_url, request.css_url) == (None, None)

    def test_lengths_are_limited(self):
        errors = field_errors(a_request(ReturnURL="h" * 2001, BillerReference="r" * 201))
        assert errors == {"ReturnURL": "must be at most 2000 characters (got 2001)",
                          "BillerReference": "must be at most 200 characters (got 201)"}

    def test_a_number_is_not_taken_for_a_string(self):
        errors = field_errors(a_request(Customers=[{"AccountNumber": 1001}]))
        assert errors == {"Customers[0].AccountNumber": "must be a string, not 1001"}

    def test_a_lone_surrogate_is_refused(self):
        data = parse_json(b'{"Customers": [{"AccountNumber": "A-1", "Name": "\\ud800"}]}')
        assert field_errors(data) == {"Customers[0].Name": "is not valid Unicode text"}

    def test_customer_fields_are_read(self):
        data = a_request(Customers=[{"AccountNumber": " A-1 ", "DisplayAccountNumber": "***1", "Zip": "02110",
                                     "EmailAddress": "p@example.com"}])
        customer = parse_request(data, currency="USD").customers[0]
        assert (customer.account_number, customer.display_account_number, customer.zip, customer.email) == (
            "A-1", "***1", "02110", "p@example.com")
        assert (customer.name, customer.invoices) == (None, ())


class TestPaymentMethods:
    @pytest.mark.parametrize(
        ("name", "value"), [("AllowEMV", True), ("AllowSwipe", "true"), ("allowemv", " TRUE")]
    )
    def test_card_present_payments_are_refused_naming_the_field(self, name, value):
        errors = field_errors(a_request(**{name: value}))
        canonical = "AllowEMV" if name.lower() == "allowemv" else "AllowSwipe"
        assert errors == {canonical: "card-present payments (swipe/EMV) are not available; "
                                     "set AllowSwipe/AllowEMV to false"}

    def test_turning_off_both_card_and_ach_is_refused(self):
        errors = field_errors(a_request(AllowCCPayment=False, AllowACHPayment="false"))
        assert set(errors) == {"AllowCCPayment"}

    def test_turning_off_one_method_leaves_the_other(self):
        request = parse_request(a_request(AllowCCPayment="false"), currency="USD")
        assert (request.allow_card, request.allow_ach) == (False, True)


class TestRequiredFields:
    def test_customers_are_required(self):
        assert field_errors({"CreateCustomerRecord": True}) == {"Customers": "is required"}

    def test_at_least_one_customer_is_required(self):
        assert field_errors({"Customers": []}) == {"Customers": "must have at least one item"}

    @pytest.mark.parametrize("account", [None, "", "  "])
    def test_an_account_number_is_required(self, account):
        data = a_request(Customers=[{"AccountNumber": account}, {"Name": "No number"}])
        assert field_errors(data) == {"Customers[0].AccountNumber": "is required",
                                      "Customers[1].AccountNumber": "is required"}

    def test_an_invoice_number_is_required(self):
        data = a_request(Customers=[{"AccountNumber": "A-1", "Invoices": [{"BalanceDue": 5}]}])
        assert field_errors(data) == {"Customers[0].Invoices[0].InvoiceNumber": "is required"}

    def test_invoices_are_optional(self):
        data = a_request(Customers=[{"AccountNumber": "A-1", "Invoices": None}, {"AccountNumber": "A-2"}])
        assert [c.invoices for c in parse_request(data, currency="USD").customers] == [(), ()]

    def test_at_most_100_customers_and_500_invoices_each(self):
        customers = [{"AccountNumber": f"A-{n}"} for n in range(101)]
        errors = field_errors({"Customers": customers})
        assert errors == {"Customers": "must have at most 100 items (got 101)"}
        invoices = [{"InvoiceNumber": f"I-{n}"} for n in range(501)]
        errors = field_errors(a_request(Customers=[{"AccountNumber": "A-1", "Invoices": invoices}]))
        assert errors == {"Customers[0].Invoices": "must have at most 500 items (got 501)"}


class TestDuplicates:
    def test_an_invoice_number_twice_for_one_account_is_refused(self):
        invoices = [{"InvoiceNumber": "I-1"}, {"InvoiceNumber": "I-2"}, {"InvoiceNumber": " I-1"}]
        errors = field_errors(a_request(Customers=[{"AccountNumber": "A-1", "Invoices": invoices}]))
        assert errors == {"Customers[0].Invoices[2].InvoiceNumber":
                          "repeats the invoice number of Customers[0].Invoices[0] for this account"}

    def test_an_account_number_twice_is_refused(self):
        data = a_request(Customers=[{"AccountNumber": n} for n in ("A-1", "A-2", "A-1")])
        assert field_errors(data) == {
            "Customers[2].AccountNumber": "repeats the account number of Customers[0]",
        }

    def test_one_invoice_number_under_two_accounts_is_allowed(self):
        data = a_request(Customers=[{"AccountNumber": "A-1", "Invoices": [{"InvoiceNumber": "I-1"}]},
                                    {"AccountNumber": "A-2", "Invoices": [{"InvoiceNumber": "I-1"}]}])
        assert len(parse_request(data, currency="USD").customers) == 2


class TestMinimumAmountDue:
    def test_more_than_the_balance_is_refused(self):
        errors = field_errors(with_invoice(BalanceDue="10.00", MinimumAmountDue="10.01"))
        assert errors == {"Customers[0].Invoices[0].MinimumAmountDue": "must not be more than BalanceDue"}

    def test_up_to_the_balance_is_accepted(self):
        data = with_invoice(BalanceDue="10.00", MinimumAmountDue=10, AllowPartialPayments="true")
        invoice = the_invoice(data)
        assert (invoice.minimum_amount_due_minor, invoice.allow_partial) == (1000, True)

    def test_without_a_balance_there_is_nothing_to_compare(self):
        assert the_invoice(with_invoice(MinimumAmountDue="5")).minimum_amount_due_minor == 500


class TestEveryProblemAtOnce:
    def test_all_problems_are_reported_together(self):
        data = {
            "AllowEMV": True,
            "ViewMode": "x",
            "PageResultOptions": {"AllowRegisterAccount": "nope"},
            "Customers": [
                {"AccountNumber": "A-1", "Invoices": [
                    {"InvoiceNumber": "I-1", "BalanceDue": "-1", "DueDate": "2/30/2024"},
                    {"BalanceDue": "1.001"},
                ]},
                {"Name": "x" * 201},
            ],
        }
        with pytest.raises(ValidationFailed) as caught:
            parse_request(data, currency="USD")
        assert [error.field for error in caught.value.errors] == [
            "AllowEMV",
            "Customers[0].Invoices[0].BalanceDue",
            "Customers[0].Invoices[0].DueDate",
            "Customers[0].Invoices[1].InvoiceNumber",
            "Customers[0].Invoices[1].BalanceDue",
            "Customers[1].AccountNumber",
            "Customers[1].Name",
            "ViewMode",
            "PageResultOptions.AllowRegisterAccount",
        ]
        assert (caught.value.status, caught.value.code) == (422, "validation_failed")


class TestWrongTypes:
    @pytest.mark.parametrize("body", [[], "text", 3, None])
    def test_a_body_that_is_not_an_object_is_a_field_error(self, body):
        assert set(field_errors(body)) == {"request"}

    def test_wrong_shapes_are_field_errors_never_exceptions(self):
        errors = field_errors({"Customers": {"AccountNumber": "A-1"}})
        assert errors == {"Customers": "must be a list, not an object"}
        data = a_request(
            Customers=[{"AccountNumber": "A-1", "Invoices": ["I-1", {"InvoiceNumber": "I-2"}]},
                       {"AccountNumber": "A-2", "Invoices": 7}, "A-3"],
            PageResultOptions=[],
        )
        assert field_errors(data) == {
            "Customers[0].Invoices[0]": "must be an object, not 'I-1'",
            "Customers[1].Invoices": "must be a list, not 7",
            "Customers[2]": "must be an object, not 'A-3'",
            "PageResultOptions": "must be an object, not a list",
        }

    def test_a_wrongly_typed_options_object_leaves_the_defaults(self):
        errors = field_errors(a_request(PageResultOptions={"InvoiceOptions": "all"}))
        assert errors == {"PageResultOptions.InvoiceOptions": "must be an object, not 'all'"}

    def test_an_inactive_currency_is_the_callers_mistake(self):
        with pytest.raises(MoneyError):
            parse_request(a_request(), currency="XTS")


# -- random key casing ---------------------------------------------------------------------

names = st.text(alphabet="ABCXYZ0123456789-", min_size=1, max_size=12)
amount_texts = st.integers(min_value=0, max_value=10**9).map(
    lambda minor: f"{minor // 100}.{minor % 100:02d}")
mm_dd_yyyy = st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31)).map(
    lambda day: f"{day.month:02d}/{day.day:02d}/{day.year}")
flags = st.sampled_from([True, False, "true", "False"])


@st.composite
def invoices(draw: st.DrawFn, number: str) -> dict[str, Any]:
    minimum, balance = sorted(draw(st.lists(st.integers(0, 10**9), min_size=2, max_size=2)))
    optional = {"TypeID": st.integers(0, 99), "InvoiceDate": mm_dd_yyyy, "DueDate": mm_dd_yyyy,
                "CCServiceFee": amount_texts, "ACHServiceFee": st.integers(0, 10**6),
                "AllowPartialPayments": flags, "MinimumAmountDue": st.just(minimum)}
    return {"InvoiceNumber": number, "BalanceDue": balance,
            **draw(st.fixed_dictionaries({}, optional=optional))}


@st.composite
def customers(draw: st.DrawFn, account: str) -> dict[str, Any]:
    numbers = draw(st.lists(names, max_size=4, unique=True))
    optional = {"Name": names, "Zip": names, "EmailAddress": names, "DisplayAccountNumber": names}
    return {"AccountNumber": account, "Invoices": [draw(invoices(number)) for number in numbers],
            **draw(st.fixed_dictionaries({}, optional=optional))}


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    accounts = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    options = {"AllowRemove": flags, "AllowRemindMe": flags, "AllowViewStatement": flags}
    optional = {
        "CreateCustomerRecord": flags, "AllowSwipe": st.just(False), "AllowCCPayment": st.just(True),
        "AllowACHPayment": flags, "PostBackURL": names, "BillerReference": names,
        "ViewMode": st.sampled_from([0, 1]),
        "PageResultOptions": st.fixed_dictionaries(
            {"AllowRegisterAccount": flags}, optional={"InvoiceOptions": st.fixed_dictionaries(options)}),
    }
    return {"Customers": [draw(customers(account)) for account in accounts],
            **draw(st.fixed_dictionaries({}, optional=optional))}


def recased(value: Any, rng: random.Random) -> Any:
    if isinstance(value, list):
        return [recased(item, rng) for item in value]
    if not isinstance(value, dict):
        return value
    return {"".join(rng.choice((c.lower(), c.upper())) for c in key): recased(item, rng)
            for key, item in value.items()}


class TestKeyCasingProperty:
    @settings(max_examples=100, deadline=None)
    @given(valid_requests(), st.randoms(use_true_random=False))
    def test_any_key_casing_parses_to_the_canonical_result(self, canonical, rng):
        expected = parse_request(canonical, currency="USD")
        assert parse_request(recased(canonical, rng), currency="USD") == expected
        assert expected.ignored_fields == ()
