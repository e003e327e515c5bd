"""Autopay enrollments and the attempts made under them.

An enrollment is the billing account's standing instruction (``authorize_auto_payment``
and ``auto_pay_offset_days`` on the account say the same, for the API and exports); an
attempt is made once per invoice, which its unique key guarantees however many workers
run.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped, UTCDateTime

ATTEMPT_STATUSES = ("processing", "succeeded", "pending", "failed", "skipped")


class AutopayEnrollment(TenantScoped, Base):
    __tablename__ = "autopay_enrollment"
    __table_args__ = (Index(None, "billing_account_id", unique=True),
                      Index(None, "tenant_id", "mode"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    saved_method_id: Mapped[str] = mapped_column(ForeignKey("saved_method.id"))
    payer_user_id: Mapped[str] = mapped_column(ForeignKey("payer_user.id"))  # who enrolled
    offset_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AutopayAttempt(TenantScoped, Base):
    __tablename__ = "autopay_attempt"
    __table_args__ = (Index(None, "invoice_id", unique=True),
                      Index(None, "tenant_id", "mode", "billing_account_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoice.id"))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    enrollment_id: Mapped[str] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(Integer)
    charge_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(12))  # ATTEMPT_STATUSES
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
