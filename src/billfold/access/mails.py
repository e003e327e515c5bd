"""The emails the portal sends payers, in English and Spanish: the payer's own language
when they chose one, else the account's, else English. Placeholders are ``str.format``
names; the values are plain text (these are text emails)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mail:
    subject: str
    text: str


_EN = {
    "registration": (
        "{biller}: confirm your registration",
        "Confirm that you want to see and pay the bills of account {account} online:\n\n"
        "{link}\n\nThe link works for two days. If you did not ask for this, ignore this "
        "email.\n"),
    "already_registered": (
        "{biller}: sign in to add account {account}",
        "Someone asked to register account {account} with this email address, which already "
        "has a login. If it was you, sign in and add the account from your profile:\n\n"
        "{link}\n\nIf it was not you, ignore this email.\n"),
    "reset": (
        "{biller}: reset your password",
        "Choose a new password here:\n\n{link}\n\nThe link works for one hour, once. If you "
        "did not ask for this, ignore this email; your password stays as it is.\n"),
    "invitation": (
        "{biller}: {inviter} invited you to account {account}",
        "{inviter} ({inviter_email}) invited you to {what} the bills of account {account} "
        "online. Accept here:\n\n{link}\n\nThe link works for seven days, once. If you do "
        "not know {inviter}, ignore this email.\n"),
}
_ES = {
    "registration": (
        "{biller}: confirme su registro",
        "Confirme que quiere ver y pagar en línea las facturas de la cuenta {account}:\n\n"
        "{link}\n\nEl enlace funciona durante dos días. Si no lo pidió usted, ignore este "
        "correo.\n"),
    "already_registered": (
        "{biller}: inicie sesión para añadir la cuenta {account}",
        "Alguien pidió registrar la cuenta {account} con este correo electrónico, que ya "
        "tiene un acceso. Si fue usted, inicie sesión y añada la cuenta desde su perfil:\n\n"
        "{link}\n\nSi no fue usted, ignore este correo.\n"),
    "reset": (
        "{biller}: restablezca su contraseña",
        "Elija una contraseña nueva aquí:\n\n{link}\n\nEl enlace funciona durante una hora y "
        "una sola vez. Si no lo pidió usted, ignore este correo; su contraseña no cambia.\n"),
    "invitation": (
        "{biller}: {inviter} le invitó a la cuenta {account}",
        "{inviter} ({inviter_email}) le invitó a {what} en línea las facturas de la cuenta "
        "{account}. Acepte aquí:\n\n{link}\n\nEl enlace funciona durante siete días y una "
        "sola vez. Si no conoce a {inviter}, ignore este correo.\n"),
}
_WHAT = {"en": {"owner": "see, pay and manage", "payer": "see and pay", "viewer": "see"},
         "es": {"owner": "ver, pagar y administrar", "payer": "ver y pagar", "viewer": "ver"}}
_TEXTS = {"en": _EN, "es": _ES}


def language_of(*preferences: str | None) -> str:
    """The first of ``preferences`` (e.g. "es_MX", "es") these emails are written in."""
    for preference in preferences:
        language = (preference or "").replace("-", "_").split("_")[0].lower()
        if language in _TEXTS:
            return language
    return "en"


def mail(kind: str, language: str, **values: str) -> Mail:
    if "role" in values:
        values["what"] = _WHAT[language][values.pop("role")]
    subject, text = _TEXTS[language][kind]
    return Mail(subject.format(**values), text.format(**values))
