"""The portal's words: gettext message catalogs (``web/locale/<lang>/LC_MESSAGES/portal.po``)
read with Babel. The message id is the English text, so English needs no catalog and a
string missing from another language shows in English rather than as a key.

Templates call ``t("Invoice {number}", number=...)``; placeholders are ``str.format``
names, filled in by Python and escaped by Jinja like any other text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from babel.messages.pofile import read_po

from billfold.web.pages.i18n import DEFAULT, PageLocale, format_day, format_money, negotiate

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "portal"
LANGUAGES = ("en", "es")  # a language is offered when its catalog is complete


def _load(language: str) -> dict[str, str]:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in catalog
            if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


CATALOGS: dict[str, dict[str, str]] = {lang: _load(lang) for lang in LANGUAGES if lang != DEFAULT}


def choose(preferred: str | None, accept_language: str | None) -> PageLocale:
    """The user's (or account's) language when the portal speaks it, else the browser's."""
    found = negotiate(preferred, accept_language)
    if found.language in LANGUAGES:
        return found
    found = negotiate(None, accept_language)
    return found if found.language in LANGUAGES else PageLocale(DEFAULT, DEFAULT)


@dataclass(frozen=True, slots=True)
class PortalTranslator:
    locale: PageLocale

    def __call__(self, message: str, **values: object) -> str:
        text = CATALOGS.get(self.locale.language, {}).get(message) or message
        return text.format(**values) if values else text

    def money(self, minor: int, currency: str) -> str:
        return format_money(minor, currency, self.locale)

    def date(self, value: date | str | None) -> str:
        return format_day(value, self.locale)
