"""Every word the portal shows has a Spanish translation, and every placeholder in a
translation is one the English text has (a typo there would raise at render time)."""

from __future__ import annotations

import re
import string
from pathlib import Path

from billfold.web.pages import portal_i18n

WEB = Path(portal_i18n.__file__).resolve().parent.parent
# t("...") or t('...'), with adjacent literals joined as Python and Jinja join them.
_CALL = re.compile(r'''\bt\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+|(?:'(?:[^'\\]|\\.)*'\s*)+)''')
_LITERAL = re.compile(r'''"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)\'''')


def portal_messages() -> set[str]:
    files = [*(WEB / "templates" / "portal").glob("*.html"),
             *(p for p in (WEB / "pages").glob("*.py") if p.name.startswith(("portal", "sso")))]
    found = set()
    for path in files:
        for call in _CALL.finditer(path.read_text()):
            text = "".join(a or b for a, b in _LITERAL.findall(call.group(1)))
            found.add(text.replace("\\'", "'").replace('\\"', '"'))
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_pages_use_words_at_all() -> None:
    assert {"Sign in", "Invoices", "We could not sign you in"} <= portal_messages()


def test_every_portal_message_has_a_spanish_translation() -> None:
    missing = sorted(portal_messages() - set(portal_i18n.CATALOGS["es"]))
    assert missing == []


def test_the_catalog_holds_no_message_the_pages_no_longer_use() -> None:
    assert sorted(set(portal_i18n.CATALOGS["es"]) - portal_messages()) == []


def test_translations_use_only_the_english_placeholders() -> None:
    for english, spanish in portal_i18n.CATALOGS["es"].items():
        assert _fields(spanish) <= _fields(english), english


def test_a_spanish_browser_gets_spanish_and_an_unknown_language_english() -> None:
    assert portal_i18n.choose(None, "es-MX,es;q=0.9").language == "es"
    assert portal_i18n.choose("de", "de-DE").language == "en"
    assert portal_i18n.choose("es", "en-US").language == "es"
    spanish = portal_i18n.PortalTranslator(portal_i18n.choose("es", None))
    assert spanish("Sign in") == "Iniciar sesión"
    assert spanish("Something new") == "Something new"
