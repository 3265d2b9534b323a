from __future__ import annotations

import enum
from datetime import date

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from qbsync.models.base import Base, Timestamps, enum_column


class CustomerSyncMode(enum.StrEnum):
    AUTO_CREATE = "auto_create"
    MATCH_THEN_CREATE = "match_then_create"
    MATCH_ONLY = "match_only"


class ExpenseMode(enum.StrEnum):
    BILL = "bill"
    EXPENSE = "expense"


class SyncSettings(Timestamps, Base):
    __tablename__ = "sync_settings"
    __table_args__ = (
        CheckConstraint(
            "reconcile_interval_minutes BETWEEN 5 AND 1440", name="reconcile_interval_range"
        ),
    )

    org_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_sync_mode: Mapped[CustomerSyncMode] = mapped_column(
        enum_column(CustomerSyncMode, "customer_sync_mode"),
        default=CustomerSyncMode.MATCH_THEN_CREATE,
    )
    invoice_auto_push: Mapped[bool] = mapped_column(default=False)
    default_income_account_id: Mapped[str | None] = mapped_column(String(32))
    expense_mode: Mapped[ExpenseMode] = mapped_column(
        enum_column(ExpenseMode, "expense_mode"), default=ExpenseMode.BILL
    )
    default_expense_account_id: Mapped[str | None] = mapped_column(String(32))
    ap_account_id: Mapped[str | None] = mapped_column(String(32))
    payment_account_id: Mapped[str | None] = mapped_column(String(32))
    sync_start_date: Mapped[date | None]
    reconcile_interval_minutes: Mapped[int] = mapped_column(default=60)
