"""Pure checks and normalisation of customer and billing-account field values.

Each function takes the field's API name so its errors point at the right field. None of
this touches the database; rules that need other rows live in the services.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import phonenumbers
import pycountry
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from stdnum import get_cc_module
from stdnum.exceptions import ValidationError as StdnumError

from billfold.core.errors import FieldError

PHONE_TYPES = ("mobile", "home", "work", "fax", "other")
ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")
_EU_VAT_COUNTRIES = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}


class Problems(list[FieldError]):
    def add(self, field: str, message: str, code: str = "invalid") -> None:
        self.append(FieldError(field, message, code))


def text(value: Any, field: str, problems: Problems, *, max_length: int) -> str | None:
    """Trimmed text, ``None`` for missing or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(field, "must be a string")
        return None
    value = value.strip()
    if len(value) > max_length:
        problems.add(field, f"must be at most {max_length} characters")
        return None
    return value or None


def number(raw: Any, field: str, problems: Problems) -> str | None:
    """An account or customer number: 1-40 letters, digits and . _ / -."""
    value = text(raw, field, problems, max_length=40)
    if value is not None and not _NUMBER.match(value):
        problems.add(field, "must be 1-40 letters, digits, '.', '_', '/' or '-', "
                            "starting with a letter or digit")
        return None
    return value


def email(value: Any, field: str, problems: Problems) -> str | None:
    value = text(value, field, problems, max_length=254)
    if value is None:
        return None
    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        problems.add(field, f"is not a valid email address: {exc}")
        return None


def country(value: Any, field: str, problems: Problems) -> str | None:
    if not isinstance(value, str) or len(value) != 2 or not value.isalpha() \
            or pycountry.countries.get(alpha_2=value.upper()) is None:
        problems.add(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return None
    return value.upper()


def address(value: Any, field: str, problems: Problems, *, may_be_same: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(field, "must be an object")
        return None
    if may_be_same and value.get("same_as_billing") is True:
        if len(value) > 1:
            problems.add(field, "give either same_as_billing or an address, not both")
            return None
        return {"same_as_billing": True}
    unknown = set(value) - set(ADDRESS_FIELDS) - ({"same_as_billing"} if may_be_same else set())
    for key in sorted(unknown):
        problems.add(f"{field}.{key}", "is not an address field", "unknown_field")
    if value.get("same_as_billing") not in (None, False):
        problems.add(f"{field}.same_as_billing", "must be true or false")
    result: dict[str, Any] = {}
    for key in ADDRESS_FIELDS:
        if key == "country":
            continue
        result[key] = text(value.get(key), f"{field}.{key}", problems, max_length=200)
    if result["line1"] is None:
        problems.add(f"{field}.line1", "is required", "required")
    result["country"] = country(value.get("country"), f"{field}.country", problems)
    return result


def phones(value: Any, field: str, problems: Problems, *, region: str | None) -> list[dict[str, str]]:
    """Phones normalised to E.164. A number without a + is read in the billing country."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10:
        problems.add(field, "must be a list of at most 10 phones")
        return []
    result = []
    for i, phone in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(phone, dict) or set(phone) - {"type", "number"}:
            problems.add(where, "must be an object with type and number")
            continue
        kind = phone.get("type", "other")
        if kind not in PHONE_TYPES:
            problems.add(f"{where}.type", f"must be one of {', '.join(PHONE_TYPES)}")
            continue
        raw = phone.get("number")
        if not isinstance(raw, str) or not raw.strip() or len(raw) > 40:
            problems.add(f"{where}.number", "is required")
            continue
        e164 = e164_phone(raw, region)
        if e164 is None:
            problems.add(f"{where}.number", f"{raw!r} is not a valid phone number"
                         + ("" if region else " (give it with its +country code)"))
            continue
        result.append({"type": kind, "number": e164})
    return result


def e164_phone(raw: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def tax_number(raw: Any, field: str, problems: Problems, *, country_code: str | None) -> str | None:
    """Checked with python-stdnum where it knows the country's tax or VAT number format;
    accepted as given where it does not."""
    value = text(raw, field, problems, max_length=40)
    if value is None or country_code is None:
        return value
    modules = [m for m in (_cc_module(country_code, "tin"), _cc_module(country_code, "vat")) if m]
    if country_code in _EU_VAT_COUNTRIES:
        modules.append(_cc_module("eu", "vat"))
    modules = [m for m in modules if m is not None]
    if not modules:
        return value
    for module in modules:
        try:
            module.validate(value)
        except StdnumError:
            continue
        return value
    problems.add(field, f"{value!r} is not a valid tax number for {country_code}")
    return None


def _cc_module(cc: str, name: str) -> Any:
    try:
        return get_cc_module(cc.lower(), name)
    except (ImportError, ValueError):
        return None


def language(raw: Any, field: str, problems: Problems) -> str | None:
    value = text(raw, field, problems, max_length=35)
    if value is None:
        return None
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        problems.add(field, f"{value!r} is not a known language tag (e.g. en, en-US, es-MX)")
        return None
    return value


def birth_date(value: Any, field: str, problems: Problems, *, today: date) -> date | None:
    if value is None:
        return None
    if not isinstance(value, date):
        problems.add(field, "must be a date")
        return None
    if value >= today or value.year < 1900:
        problems.add(field, "must be in the past and after 1900")
        return None
    return value


def search_key(value: str | None) -> str | None:
    return value.casefold() if value else None


def prefix_bounds(query: str) -> tuple[str, str]:
    """Lower and upper bounds of the strings that start with ``query`` (already casefolded)."""
    return query, query + "\U0010ffff"
