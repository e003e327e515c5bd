"""The pages' words in each supported language, and the choice of language for a request.

A catalog is a plain dict per language; a string missing from one falls back to English,
so a half-translated language still renders a whole page. Placeholders use ``str.format``
names; the values are filled in by Python and escaped by Jinja like any other text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from billfold.money import Money

SUPPORTED = ("en", "es", "fr", "de")
DEFAULT = "en"
MAX_ACCEPT_ENTRIES = 20  # a longer Accept-Language header is someone else's problem

EN: dict[str, str] = {
    "pay_title": "Pay {biller}",
    "nav_label": "Biller",
    "accounts": "Accounts",
    "account_item": "{name}, account {number}",
    "invoices": "Invoices",
    "col_invoice": "Invoice",
    "col_account": "Account",
    "col_invoice_date": "Invoice date",
    "col_due_date": "Due date",
    "col_balance": "Balance",
    "col_amount": "Amount to pay",
    "col_statement": "Invoice PDF",
    "view_statement": "View invoice {number} (PDF)",
    "statement_missing_title": "This invoice's PDF is not available",
    "statement_missing_note": "The invoice's details are on the payment page, and it can be "
                              "paid there as usual.",
    "back_to_page": "Back to the payment page",
    "amount_label": "Amount for {number}",
    "amount_hint": "From {minimum} to {balance}",
    "in_full": "Paid in full",
    "remove_hint": "Untick an invoice to leave it out of this payment.",
    "method": "Payment method",
    "method_card": "Card",
    "method_ach": "Bank account",
    "method_new_card": "New card",
    "method_new_ach": "New bank account",
    "saved_card": "{brand} ending {last4}, expires {month}/{year}",
    "saved_card_plain": "{brand} ending {last4}",
    "saved_checking": "Checking account ending {last4}",
    "saved_savings": "Savings account ending {last4}",
    "saved_bank": "Bank account ending {last4}",
    "paying_with": "Payment method",
    "save_method": "Save this payment method for future payments",
    "review_button": "Review payment",
    "review_heading": "Review your payment",
    "paying_for": "Invoices you are paying",
    "amount": "Amount",
    "service_fee": "Service fee",
    "total": "Total",
    "pay_button": "Pay {total}",
    "change_button": "Change invoices or amounts",
    "card_details": "Card details",
    "bank_details": "Bank account details",
    "card_name": "Name on card",
    "card_number": "Card number",
    "card_expiry": "Expiry (MM/YY)",
    "card_cvc": "CVC",
    "bank_holder": "Account holder",
    "routing_number": "Routing number",
    "account_number": "Account number",
    "account_type": "Account type",
    "checking": "Checking",
    "savings": "Savings",
    "errors_heading": "There is a problem",
    "err_amount_format": "Enter an amount such as {example}",
    "err_amount_over": "Enter no more than the balance of {balance}",
    "err_amount_under": "Enter at least the minimum of {minimum}",
    "err_partial": "This invoice can only be paid in full",
    "err_not_payable": "This invoice can no longer be paid on this page",
    "err_must_pay_all": "Every invoice on this page must be paid",
    "err_choose_one": "Choose at least one invoice to pay",
    "err_method": "Choose a payment method",
    "err_card_name": "Enter the name on the card",
    "err_card_number": "Enter a valid card number",
    "err_card_expiry": "Enter the expiry date as MM/YY",
    "err_card_cvc": "Enter the security code from the card",
    "err_bank_holder": "Enter the account holder's name",
    "err_routing": "Enter a valid 9-digit routing number",
    "err_account_number": "Enter an account number of 4 to 17 digits",
    "err_account_type": "Choose checking or savings",
    "failed_heading": "Your payment did not go through",
    "failed_note": "Nothing was charged. Check the details and try again, or use another "
                   "payment method.",
    "receipt_title": "Receipt",
    "receipt_heading": "Thank you for your payment",
    "receipt_number": "Receipt number",
    "payment_date": "Date",
    "paid_to": "Paid to",
    "invoices_paid": "Invoices paid",
    "pending_note": "Pending: bank payments settle in a few business days",
    "unknown_title": "Payment not confirmed",
    "unknown_note": "We could not confirm your payment. Do not pay again; you will be told "
                    "the outcome.",
    "processing_title": "Your payment is being processed",
    "processing_note": "Do not pay again. Your receipt will be ready in a moment.",
    "view_receipt": "View the receipt",
    "return_to": "Return to {biller}",
    "register_link": "Register to see and pay your bills online",
    "card_masked": "{brand} •••• {last4}",
    "bank_masked": "Bank account •••• {last4}",
    "nothing_due": "There is nothing left to pay on this page.",
    "expired_title": "This payment link has expired",
    "expired_note": "Ask {biller} for a new payment link. Nothing was charged.",
    "not_found_title": "Payment page not found",
    "not_found_note": "Check the link you were given, or ask the biller for a new one.",
    "csrf_title": "This form has expired",
    "csrf_note": "For your security the form could not be accepted, and nothing was charged. "
                 "Reload the page and try again.",
    "reload": "Reload the page",
    "unavailable_title": "Payments are unavailable",
    "unavailable_note": "{biller} cannot take payments here right now. Nothing was charged; "
                        "try again later.",
}

ES: dict[str, str] = {
    "pay_title": "Pagar a {biller}",
    "nav_label": "Emisor",
    "accounts": "Cuentas",
    "account_item": "{name}, cuenta {number}",
    "invoices": "Facturas",
    "col_invoice": "Factura",
    "col_account": "Cuenta",
    "col_invoice_date": "Fecha de factura",
    "col_due_date": "Vencimiento",
    "col_balance": "Saldo",
    "col_amount": "Importe a pagar",
    "col_statement": "Factura en PDF",
    "view_statement": "Ver la factura {number} (PDF)",
    "statement_missing_title": "El PDF de esta factura no está disponible",
    "statement_missing_note": "Los datos de la factura están en la página de pago, donde se "
                              "puede pagar como de costumbre.",
    "back_to_page": "Volver a la página de pago",
    "amount_label": "Importe de {number}",
    "amount_hint": "De {minimum} a {balance}",
    "in_full": "Se paga completa",
    "remove_hint": "Desmarque una factura para dejarla fuera de este pago.",
    "method": "Forma de pago",
    "method_card": "Tarjeta",
    "method_ach": "Cuenta bancaria",
    "method_new_card": "Tarjeta nueva",
    "method_new_ach": "Cuenta bancaria nueva",
    "saved_card": "{brand} terminada en {last4}, vence {month}/{year}",
    "saved_card_plain": "{brand} terminada en {last4}",
    "saved_checking": "Cuenta corriente terminada en {last4}",
    "saved_savings": "Cuenta de ahorros terminada en {last4}",
    "saved_bank": "Cuenta bancaria terminada en {last4}",
    "paying_with": "Forma de pago",
    "save_method": "Guardar esta forma de pago para futuros pagos",
    "review_button": "Revisar el pago",
    "review_heading": "Revise su pago",
    "paying_for": "Facturas que va a pagar",
    "amount": "Importe",
    "service_fee": "Cargo por servicio",
    "total": "Total",
    "pay_button": "Pagar {total}",
    "change_button": "Cambiar facturas o importes",
    "card_details": "Datos de la tarjeta",
    "bank_details": "Datos de la cuenta bancaria",
    "card_name": "Nombre en la tarjeta",
    "card_number": "Número de tarjeta",
    "card_expiry": "Vencimiento (MM/AA)",
    "card_cvc": "CVC",
    "bank_holder": "Titular de la cuenta",
    "routing_number": "Número de ruta (ABA)",
    "account_number": "Número de cuenta",
    "account_type": "Tipo de cuenta",
    "checking": "Corriente",
    "savings": "Ahorros",
    "errors_heading": "Hay un problema",
    "err_amount_format": "Escriba un importe como {example}",
    "err_amount_over": "Escriba como máximo el saldo de {balance}",
    "err_amount_under": "Escriba al menos el mínimo de {minimum}",
    "err_partial": "Esta factura solo se puede pagar completa",
    "err_not_payable": "Esta factura ya no se puede pagar en esta página",
    "err_must_pay_all": "Hay que pagar todas las facturas de esta página",
    "err_choose_one": "Elija al menos una factura para pagar",
    "err_method": "Elija una forma de pago",
    "err_card_name": "Escriba el nombre que figura en la tarjeta",
    "err_card_number": "Escriba un número de tarjeta válido",
    "err_card_expiry": "Escriba el vencimiento como MM/AA",
    "err_card_cvc": "Escriba el código de seguridad de la tarjeta",
    "err_bank_holder": "Escriba el nombre del titular de la cuenta",
    "err_routing": "Escriba un número de ruta válido de 9 dígitos",
    "err_account_number": "Escriba un número de cuenta de 4 a 17 dígitos",
    "err_account_type": "Elija corriente o ahorros",
    "failed_heading": "Su pago no se ha realizado",
    "failed_note": "No se ha cobrado nada. Revise los datos e inténtelo de nuevo, o use otra "
                   "forma de pago.",
    "receipt_title": "Recibo",
    "receipt_heading": "Gracias por su pago",
    "receipt_number": "Número de recibo",
    "payment_date": "Fecha",
    "paid_to": "Pagado a",
    "invoices_paid": "Facturas pagadas",
    "pending_note": "Pendiente: los pagos bancarios se liquidan en unos días hábiles",
    "unknown_title": "Pago sin confirmar",
    "unknown_note": "No hemos podido confirmar su pago. No vuelva a pagar; le informaremos "
                    "del resultado.",
    "processing_title": "Su pago se está procesando",
    "processing_note": "No vuelva a pagar. Su recibo estará listo en un momento.",
    "view_receipt": "Ver el recibo",
    "return_to": "Volver a {biller}",
    "register_link": "Regístrese para ver y pagar sus facturas en línea",
    "card_masked": "{brand} •••• {last4}",
    "bank_masked": "Cuenta bancaria •••• {last4}",
    "nothing_due": "No queda nada por pagar en esta página.",
    "expired_title": "Este enlace de pago ha caducado",
    "expired_note": "Pida a {biller} un nuevo enlace de pago. No se ha cobrado nada.",
    "not_found_title": "Página de pago no encontrada",
    "not_found_note": "Revise el enlace que recibió o pida uno nuevo al emisor.",
    "csrf_title": "Este formulario ha caducado",
    "csrf_note": "Por su seguridad no se ha aceptado el formulario y no se ha cobrado nada. "
                 "Vuelva a cargar la página e inténtelo de nuevo.",
    "reload": "Volver a cargar la página",
    "unavailable_title": "Pagos no disponibles",
    "unavailable_note": "{biller} no puede aceptar pagos aquí en este momento. No se ha cobrado "
                        "nada; inténtelo más tarde.",
    "decline_card_declined": "Su tarjeta ha sido rechazada.",
    "decline_insufficient_funds": "Su tarjeta no tiene fondos suficientes.",
    "decline_expired_card": "Su tarjeta ha caducado.",
    "decline_invalid_number": "El número de tarjeta no es correcto.",
    "decline_invalid_cvc": "El código de seguridad de la tarjeta no es correcto.",
    "decline_invalid_expiry": "La fecha de vencimiento de la tarjeta no es correcta.",
    "decline_invalid_routing_number": "El número de ruta bancaria no es correcto.",
    "decline_invalid_account_number": "El número de cuenta bancaria no es correcto.",
    "decline_bank_account_blocked": "No se puede cargar en esta cuenta bancaria: un cargo "
                                    "anterior fue devuelto. Use otra cuenta o una tarjeta.",
}

FR: dict[str, str] = {
    "pay_title": "Payer {biller}",
    "accounts": "Comptes",
    "account_item": "{name}, compte {number}",
    "invoices": "Factures",
    "col_invoice": "Facture",
    "col_account": "Compte",
    "col_invoice_date": "Date de facture",
    "col_due_date": "Échéance",
    "col_balance": "Solde",
    "col_amount": "Montant à payer",
    "col_statement": "Facture PDF",
    "view_statement": "Voir la facture {number} (PDF)",
    "amount_label": "Montant pour {number}",
    "amount_hint": "De {minimum} à {balance}",
    "in_full": "Payée en totalité",
    "method": "Moyen de paiement",
    "method_card": "Carte",
    "method_ach": "Compte bancaire",
    "method_new_card": "Nouvelle carte",
    "method_new_ach": "Nouveau compte bancaire",
    "saved_card": "{brand} se terminant par {last4}, expire {month}/{year}",
    "saved_card_plain": "{brand} se terminant par {last4}",
    "saved_checking": "Compte courant se terminant par {last4}",
    "saved_savings": "Compte d'épargne se terminant par {last4}",
    "saved_bank": "Compte bancaire se terminant par {last4}",
    "paying_with": "Moyen de paiement",
    "save_method": "Enregistrer ce moyen de paiement pour les prochains paiements",
    "review_button": "Vérifier le paiement",
    "review_heading": "Vérifiez votre paiement",
    "amount": "Montant",
    "service_fee": "Frais de service",
    "total": "Total",
    "pay_button": "Payer {total}",
    "card_name": "Nom sur la carte",
    "card_number": "Numéro de carte",
    "card_expiry": "Expiration (MM/AA)",
    "card_cvc": "CVC",
    "bank_holder": "Titulaire du compte",
    "routing_number": "Numéro d'acheminement (ABA)",
    "account_number": "Numéro de compte",
    "account_type": "Type de compte",
    "checking": "Compte courant",
    "savings": "Compte d'épargne",
    "errors_heading": "Il y a un problème",
    "receipt_title": "Reçu",
    "receipt_heading": "Merci pour votre paiement",
    "receipt_number": "Numéro de reçu",
    "payment_date": "Date",
    "return_to": "Retour à {biller}",
    "register_link": "Inscrivez-vous pour consulter et payer vos factures en ligne",
    "bank_masked": "Compte bancaire •••• {last4}",
}

DE: dict[str, str] = {
    "pay_title": "{biller} bezahlen",
    "accounts": "Konten",
    "account_item": "{name}, Konto {number}",
    "invoices": "Rechnungen",
    "col_invoice": "Rechnung",
    "col_account": "Konto",
    "col_invoice_date": "Rechnungsdatum",
    "col_due_date": "Fällig am",
    "col_balance": "Offener Betrag",
    "col_amount": "Zu zahlender Betrag",
    "col_statement": "Rechnung als PDF",
    "view_statement": "Rechnung {number} ansehen (PDF)",
    "amount_label": "Betrag für {number}",
    "amount_hint": "Von {minimum} bis {balance}",
    "in_full": "Wird vollständig bezahlt",
    "method": "Zahlungsart",
    "method_card": "Karte",
    "method_ach": "Bankkonto",
    "method_new_card": "Neue Karte",
    "method_new_ach": "Neues Bankkonto",
    "saved_card": "{brand} mit Endziffern {last4}, gültig bis {month}/{year}",
    "saved_card_plain": "{brand} mit Endziffern {last4}",
    "saved_checking": "Girokonto mit Endziffern {last4}",
    "saved_savings": "Sparkonto mit Endziffern {last4}",
    "saved_bank": "Bankkonto mit Endziffern {last4}",
    "paying_with": "Zahlungsart",
    "save_method": "Diese Zahlungsart für künftige Zahlungen speichern",
    "review_button": "Zahlung prüfen",
    "review_heading": "Prüfen Sie Ihre Zahlung",
    "amount": "Betrag",
    "service_fee": "Servicegebühr",
    "total": "Gesamt",
    "pay_button": "{total} bezahlen",
    "card_name": "Name auf der Karte",
    "card_number": "Kartennummer",
    "card_expiry": "Gültig bis (MM/JJ)",
    "card_cvc": "CVC",
    "bank_holder": "Kontoinhaber",
    "routing_number": "Bankleitzahl (ABA)",
    "account_number": "Kontonummer",
    "account_type": "Kontoart",
    "checking": "Girokonto",
    "savings": "Sparkonto",
    "errors_heading": "Es gibt ein Problem",
    "receipt_title": "Beleg",
    "receipt_heading": "Vielen Dank für Ihre Zahlung",
    "receipt_number": "Belegnummer",
    "payment_date": "Datum",
    "return_to": "Zurück zu {biller}",
    "register_link": "Registrieren Sie sich, um Ihre Rechnungen online zu sehen und zu bezahlen",
    "bank_masked": "Bankkonto •••• {last4}",
}

CATALOGS = {"en": EN, "es": ES, "fr": FR, "de": DE}


@dataclass(frozen=True, slots=True)
class PageLocale:
    language: str  # one of SUPPORTED: picks the catalog
    babel: str  # e.g. "es_MX": formats money and dates the way that region writes them

    @property
    def tag(self) -> str:
        """BCP 47, for ``<html lang>``."""
        return self.babel.replace("_", "-")


def negotiate(preferred: str | None, accept_language: str | None) -> PageLocale:
    """The session's own locale if supported, else the browser's best supported one."""
    for candidate in [preferred or "", *_accepted(accept_language or "")]:
        found = _parse(candidate)
        if found is not None:
            return found
    return PageLocale(DEFAULT, DEFAULT)


def _accepted(header: str) -> list[str]:
    weighted = []
    for position, entry in enumerate(header.split(",")[:MAX_ACCEPT_ENTRIES]):
        tag, _, params = entry.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and tag != "*" and weight > 0:
            weighted.append((-weight, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def _parse(tag: str) -> PageLocale | None:
    tag = tag.strip().replace("-", "_")
    if not tag or len(tag) > 35:
        return None
    try:
        locale = Locale.parse(tag)
    except (UnknownLocaleError, ValueError, TypeError):
        language = tag.split("_")[0].lower()
        return PageLocale(language, language) if language in SUPPORTED else None
    if locale.language not in SUPPORTED:
        return None
    return PageLocale(locale.language, str(locale))


@dataclass(frozen=True, slots=True)
class Translator:
    locale: PageLocale

    def __call__(self, key: str, **values: object) -> str:
        text = CATALOGS[self.locale.language].get(key) or EN[key]
        return text.format(**values) if values else text

    def decline(self, code: str | None, message: str | None) -> str:
        """A gateway's reason for the payer: the gateway's own (English) words, or ours
        where this language has them."""
        if self.locale.language != DEFAULT and code:
            translated = CATALOGS[self.locale.language].get(f"decline_{code}")
            if translated:
                return translated
        return message or EN["failed_heading"]

    def money(self, minor: int, currency: str) -> str:
        return format_money(minor, currency, self.locale)

    def date(self, value: date | str | None) -> str:
        return format_day(value, self.locale)


def format_money(minor: int, currency: str, locale: PageLocale) -> str:
    """An amount as people of ``locale`` write it."""
    return Money(minor, currency).format(locale.babel)


def format_day(value: date | str | None, locale: PageLocale) -> str:
    """A date (or an ISO date string) as people of ``locale`` write it; "" for none."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return str(format_date(value, format="medium", locale=locale.babel))
