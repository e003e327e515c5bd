"""Request and response shapes. Inputs refuse unknown fields so typos never pass silently;
business rules are checked by the services, which name the field they refuse."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

Text = Annotated[StrictStr, Field(max_length=200)]
ShortText = Annotated[StrictStr, Field(max_length=100)]
Code = Annotated[StrictStr, Field(max_length=40)]
Id = Annotated[StrictStr, Field(max_length=40, pattern=r"^[a-z]+_[0-9a-f]{32}$")]
Currency = Annotated[StrictStr, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]
Minor = Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]
CustomValue = StrictStr | StrictBool | StrictInt | float | None
InvoiceType = Literal["none", "email", "paper", "paper_and_email"]
Status = Literal["active", "suspended", "deactivated", "pending_collection"]
Rendering = Literal["aggregated", "per_account"]


def _nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding a NUL character, "" for the
    value itself, None when there is none."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here.replace("\x00", "\\0")
            found = _nul_path(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        path = _nul_path(data)
        if path is not None:
            # The web edge appends ctx["field"] to the error's location to name the field.
            raise PydanticCustomError("nul_character", "text may not contain NUL characters",
                                      {"field": path})
        return data


# -- settings and reference data --------------------------------------------------------


class SettingsPatch(Input):
    allow_multi_customer_accounts: StrictBool | None = None
    enable_responsible_account_management: StrictBool | None = None
    enable_account_hierarchy_management: StrictBool | None = None
    require_same_bill_cycle_for_account_hierarchy: StrictBool | None = None
    invoice_distribution_options: list[InvoiceType] | None = Field(None, min_length=1)
    time_zone: Annotated[StrictStr, Field(max_length=64)] | None = None
    allowed_origins: list[Annotated[StrictStr, Field(max_length=300)]] | None = Field(
        None, max_length=50, description="Origins that ReturnURL, PostBackURL and CssUrl must "
        "match, e.g. https://shop.example.com")
    allow_private_postback_targets: StrictBool | None = Field(
        None, description="Test mode only: postbacks may go to private and loopback addresses")
    pay_session_minutes: Annotated[StrictInt, Field(ge=5, le=1440)] | None = None
    ach_return_fee_minor: Annotated[StrictInt, Field(ge=0, le=10**9)] | None = None
    invoice_history_enabled: StrictBool | None = Field(
        None, description="The payer portal shows invoice history")
    sso_enabled: StrictBool | None = Field(
        None, description="Payers may arrive signed in from the biller's site (POST /v1/sso/credentials)")
    paper_bill: StrictBool | None = Field(
        None, description="Payers keep a paper bill after going paperless, and SSO leaves paper on")
    email_notify: StrictBool | None = Field(
        None, description="SSO turns on the new-invoice email")
    email_confirmations: StrictBool | None = Field(
        None, description="SSO turns on payment confirmation emails")
    payer_controlled_preferences: StrictBool | None = Field(
        None, description="The payer's own preferences win over the three above")
    sso_key_overlap_minutes: Annotated[StrictInt, Field(ge=0, le=10080)] | None = None
    registration_check: Literal["postal_code", "last_invoice_amount"] | None = None
    autopay_min_offset_days: Annotated[StrictInt, Field(ge=0, le=60)] | None = None
    autopay_max_offset_days: Annotated[StrictInt, Field(ge=0, le=60)] | None = None


class SettingsOut(BaseModel):
    allow_multi_customer_accounts: bool
    enable_responsible_account_management: bool
    enable_account_hierarchy_management: bool
    require_same_bill_cycle_for_account_hierarchy: bool
    invoice_distribution_options: list[str]
    time_zone: str
    allowed_origins: list[str]
    allow_private_postback_targets: bool
    pay_session_minutes: int
    ach_return_fee_minor: int
    invoice_history_enabled: bool
    sso_enabled: bool
    paper_bill: bool
    email_notify: bool
    email_confirmations: bool
    payer_controlled_preferences: bool
    sso_key_overlap_minutes: int
    registration_check: str
    autopay_min_offset_days: int
    autopay_max_offset_days: int
    clock_offset_days: int
    mode: str
    updated_at: datetime


class BillCycleIn(Input):
    name: ShortText
    currency: Currency | None = None
    frequency: Literal["weekly", "monthly", "quarterly", "semiannual", "annual"]
    bill_day: Annotated[StrictInt, Field(ge=1, le=31)]
    start_date: date


class BillCycleOut(BaseModel):
    id: str
    name: str
    currency: str | None
    frequency: str
    bill_day: int
    start_date: date
    created_at: datetime


class AccountCategoryIn(Input):
    name: ShortText


class AccountCategoryOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class PaymentTermIn(Input):
    name: ShortText
    net_days: Annotated[StrictInt, Field(ge=0, le=3650)]


class PaymentTermOut(BaseModel):
    id: str
    name: str
    net_days: int
    created_at: datetime


class CustomFieldIn(Input):
    object_type: Literal["customer", "billing_account"]
    key: Annotated[StrictStr, Field(max_length=64)]
    label: Text
    field_type: Literal["text", "number", "date", "boolean", "dropdown"]
    options: Annotated[list[Text], Field(max_length=200)] | None = None
    required: StrictBool = False


class CustomFieldOut(BaseModel):
    id: str
    object_type: str
    key: str
    label: str
    field_type: str
    options: list[str] | None
    required: bool
    created_at: datetime


# -- customers and billing accounts ----------------------------------------------------


class Phone(Input):
    type: Literal["mobile", "home", "work", "fax", "other"] = "other"
    number: Annotated[StrictStr, Field(max_length=40)]


class Address(Input):
    line1: Text | None = None
    line2: Text | None = None
    city: Text | None = None
    region: Text | None = None
    postal_code: Annotated[StrictStr, Field(max_length=20)] | None = None
    country: Annotated[StrictStr, Field(max_length=2)] | None = None
    same_as_billing: StrictBool | None = None


class BillingAccountFields(Input):
    number: Code | None = None
    external_number: Code | None = None
    currency: Currency | None = None
    invoice_currency: Currency | None = None
    bill_cycle_id: Id | None = None
    start_date: date | None = None
    status: Status | None = None
    taxable: StrictBool | None = None
    responsible_account_id: Id | None = None
    parent_account_id: Id | None = None
    invoice_rendering_type: Rendering | None = None
    account_category_id: Id | None = None
    minimum_invoice_amount_minor: Annotated[StrictInt, Field(ge=0, le=10**15)] | None = None
    preferred_language: Annotated[StrictStr, Field(max_length=35)] | None = None
    invoice_type: InvoiceType | None = None
    payment_term_id: Id | None = None
    authorize_auto_payment: StrictBool | None = None
    auto_pay_offset_days: Annotated[StrictInt, Field(ge=-30, le=30)] | None = None
    email_confirmations: StrictBool | None = Field(
        None, description="Email the payer a confirmation with the receipt of every payment")
    email_notify: StrictBool | None = Field(
        None, description="Email the payer when a new invoice is ready")
    custom_fields: dict[Annotated[str, Field(max_length=64)], CustomValue] | None = None


class BillingAccountCreate(BillingAccountFields):
    currency: Currency
    bill_cycle_id: Id
    start_date: date
    account_category_id: Id
    invoice_type: InvoiceType


class BillingAccountAdd(BillingAccountCreate):
    set_as_default: StrictBool = False


class BillingAccountPatch(BillingAccountFields):
    is_default: StrictBool | None = None


class CustomerFields(Input):
    external_number: Code | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    company_name: Text | None = None
    customer_name: Text | None = None
    date_of_birth: date | None = None
    tax_number: Code | None = None
    tax_id_validated: StrictBool | None = None
    phones: Annotated[list[Phone], Field(max_length=10)] | None = None
    primary_email: Annotated[StrictStr, Field(max_length=254)] | None = None
    secondary_emails: Annotated[list[Annotated[StrictStr, Field(max_length=254)]],
                                Field(max_length=10)] | None = None
    billing_address: Address | None = None
    service_address: Address | None = None
    shipping_address: Address | None = None
    custom_fields: dict[Annotated[str, Field(max_length=64)], CustomValue] | None = None


class CustomerCreate(CustomerFields):
    number: Code | None = None
    primary_email: Annotated[StrictStr, Field(max_length=254)]
    billing_account: BillingAccountCreate


class CustomerPatch(CustomerFields):
    default_billing_account_id: Id | None = None


class PhoneOut(BaseModel):
    type: str
    number: str


class CustomerOut(BaseModel):
    id: str
    number: str
    external_number: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    customer_name: str
    date_of_birth: date | None
    tax_number: str | None
    tax_id_validated: bool
    phones: list[PhoneOut]
    primary_email: str
    secondary_emails: list[str]
    billing_address: dict[str, Any] | None
    service_address: dict[str, Any] | None
    shipping_address: dict[str, Any] | None
    custom_fields: dict[str, Any]
    default_billing_account_id: str | None
    mode: str
    created_at: datetime
    updated_at: datetime


class BillingAccountOut(BaseModel):
    id: str
    customer_id: str
    number: str
    external_number: str | None
    currency: str
    invoice_currency: str
    bill_cycle_id: str
    start_date: date
    status: str
    taxable: bool
    responsible_account_id: str | None
    parent_account_id: str | None
    invoice_rendering_type: str | None
    account_category_id: str
    minimum_invoice_amount_minor: int
    preferred_language: str
    invoice_type: str
    payment_term_id: str | None
    authorize_auto_payment: bool
    auto_pay_offset_days: int
    email_confirmations: bool
    email_notify: bool
    custom_fields: dict[str, Any]
    is_default: bool
    mode: str
    created_at: datetime
    updated_at: datetime


class CustomerCreated(CustomerOut):
    billing_account: BillingAccountOut


class NoteIn(Input):
    body: Annotated[StrictStr, Field(max_length=10_000)]


class NoteOut(BaseModel):
    id: str
    billing_account_id: str
    body: str
    author: str
    created_at: datetime


class ContactIn(Input):
    name: Text
    email: Annotated[StrictStr, Field(max_length=254)] | None = None
    phone: Annotated[StrictStr, Field(max_length=40)] | None = None
    category: Literal["billing", "technical", "sales", "support", "legal", "other"] | None = None


class ContactOut(BaseModel):
    id: str
    billing_account_id: str
    name: str
    email: str | None
    phone: str | None
    category: str | None
    created_at: datetime


class ChangeOut(BaseModel):
    field: str
    old_value: Any
    new_value: Any


class HistoryOut(BaseModel):
    id: str
    object_type: str
    object_id: str
    action: str
    actor: str
    at: datetime
    changes: list[ChangeOut]


class AmountOut(BaseModel):
    amount_minor: int
    currency: str


class SummaryOut(BaseModel):
    billing_account_id: str
    account_number: str
    external_number: str | None
    customer_id: str
    customer_number: str
    customer_name: str
    primary_email: str
    status: str
    start_date: date
    currency: str
    balance: AmountOut
    unapplied_payments: AmountOut
    pending_charges: AmountOut
    pending_charges_count: int
    next_invoice_date: date | None
    bill_cycle: BillCycleOut
    payment_term: PaymentTermOut | None
    authorize_auto_payment: bool
    auto_pay_offset_days: int
    email_confirmations: bool
    email_notify: bool
    is_default: bool
    managed_accounts_count: int
    responsible_account_id: str | None
    parent_account_id: str | None


class LedgerAccountOut(BaseModel):
    id: str
    kind: str
    currency: str
    billing_account_id: str | None
    balance_minor: int
    created_at: datetime


class PostingOut(BaseModel):
    ledger_account_id: str
    amount_minor: int
    currency: str


class LedgerEntryOut(BaseModel):
    id: str
    source_type: str
    source_id: str
    description: str
    reverses_entry_id: str | None
    effective_date: date
    posted_at: datetime
    postings: list[PostingOut]


def page_of(item: type[BaseModel]) -> Any:
    """A list envelope {data, has_more} for OpenAPI."""
    return type(f"{item.__name__}List", (BaseModel,), {
        "__annotations__": {"data": list[item], "has_more": bool},  # type: ignore[valid-type]
    })
