"""The portal's emails exist in every language for every kind, with the same
placeholders, and go out in the payer's language, else the account's, else English."""

from __future__ import annotations

import string

from billfold.access import mails


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_kind_in_every_language_with_the_same_placeholders() -> None:
    english = mails._TEXTS["en"]
    for language, texts in mails._TEXTS.items():
        assert set(texts) == set(english), language
        for kind, (subject, text) in texts.items():
            assert _fields(subject) == _fields(english[kind][0]), (language, kind)
            assert _fields(text) == _fields(english[kind][1]), (language, kind)


def test_the_first_known_preference_wins() -> None:
    assert mails.language_of(None, "es_MX") == "es"
    assert mails.language_of("en", "es") == "en"
    assert mails.language_of("sv", "de-DE") == "en"
    assert mails.language_of("ES-419") == "es"


def test_an_invitation_in_spanish_names_what_the_role_allows() -> None:
    sent = mails.mail("invitation", "es", biller="Aguas del Sur", inviter="Ana",
                      inviter_email="ana@example.com", role="payer", account="ACCT-9",
                      link="https://b.example/portal/invitation?token=x")
    assert sent.subject == "Aguas del Sur: Ana le invitó a la cuenta ACCT-9"
    assert "le invitó a ver y pagar en línea las facturas de la cuenta ACCT-9" in sent.text
    assert "https://b.example/portal/invitation?token=x" in sent.text
