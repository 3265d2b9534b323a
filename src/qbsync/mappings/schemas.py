"""Request and response bodies of the settings, mappings and reference-list routes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from qbsync.mappings.snapshots import IsoDate
from qbsync.models import CustomerSyncMode, ExpenseMode, MappingSource

# QuickBooks ids are whole numbers written without leading zeros.
QboId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[1-9][0-9]*$")]


T = TypeVar("T")


def _whole_number(value: object) -> object:
    # JSON has one number type: 30.0 is the integer 30 to a JSON Schema, so it is here too. A
    # string or a boolean stays refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Strict(BaseModel):
    """A body of ours: an unknown key is a mistake worth naming, not something to ignore."""

    model_config = ConfigDict(extra="forbid")


class SyncSettingsBody(Strict):
    """A full replace: a field left out takes its default."""

    customer_sync_mode: CustomerSyncMode = CustomerSyncMode.MATCH_THEN_CREATE
    invoice_auto_push: bool = Field(default=False, strict=True)
    default_income_account_id: QboId | None = Field(
        default=None, description="An Income account, for items created for unmapped services."
    )
    expense_mode: ExpenseMode = ExpenseMode.BILL
    default_expense_account_id: QboId | None = Field(
        default=None,
        description="An Expense, Other Expense or Cost of Goods Sold account, for expenses "
        "whose category is not mapped.",
    )
    ap_account_id: QboId | None = Field(
        default=None, description="The Accounts Payable account bills are posted to."
    )
    payment_account_id: QboId | None = Field(
        default=None,
        description="The Bank or Credit Card account an expense entry is paid from.",
    )
    sync_start_date: IsoDate | None = Field(
        default=None, description="Nothing issued before this date is pushed."
    )
    reconcile_interval_minutes: Annotated[int, BeforeValidator(_whole_number)] = Field(
        default=60, ge=5, le=1440, strict=True
    )


class SyncSettingsView(SyncSettingsBody):
    model_config = ConfigDict(extra="ignore")

    saved: bool = Field(description="False while the org has never saved: these are defaults.")
    updated_at: datetime | None = None


MappingKindPath = Literal["clients", "services", "tax-rates", "expense-categories"]


class MappingBody(Strict):
    qbo_id: Annotated[str, Field(max_length=32, pattern=r"^([1-9][0-9]{0,31}|TAX|NON)$")] | None = (
        Field(
            default=None,
            description="The QuickBooks id; `TAX` or `NON` for a tax rate on a US company.",
        )
    )
    account_number: Annotated[str, Field(min_length=1, max_length=20)] | None = Field(
        default=None,
        description="expense-categories only: the account's number in the chart of accounts.",
    )
    rate: Annotated[str, Field(max_length=8, pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$")] | None = (
        Field(
            default=None,
            description='tax-rates only: the platform rate as a percentage ("20.00"); required '
            "outside the US, where it must equal the tax code's sales rate.",
        )
    )


class MappingView(BaseModel):
    kind: MappingKindPath
    platform_id: str
    qbo_id: str
    qbo_name: str | None = Field(description="The QuickBooks name when the mapping was saved.")
    source: MappingSource
    details: dict[str, str] = Field(
        default_factory=dict, description="For tax rates, the rates compared."
    )
    updated_at: datetime


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class RefName(BaseModel):
    id: str
    name: str | None


class AccountView(BaseModel):
    id: str
    name: str | None
    fully_qualified_name: str | None
    account_type: str | None
    account_sub_type: str | None
    classification: str | None
    account_number: str | None
    currency: str | None
    active: bool


class ItemView(BaseModel):
    id: str
    name: str | None
    type: str | None
    description: str | None
    unit_price: Decimal | None
    income_account: RefName | None
    taxable: bool | None
    active: bool


class TaxRateView(BaseModel):
    id: str
    name: str | None
    percent: Decimal | None


class TaxCodeView(BaseModel):
    id: str
    name: str | None
    description: str | None
    taxable: bool | None
    tax_group: bool | None
    active: bool
    sales_rates: list[TaxRateView]
    purchase_rates: list[TaxRateView]
    sales_percent: Decimal | None = Field(description="The sum of the sales rates; null if none.")
    purchase_percent: Decimal | None = Field(
        description="The sum of the purchase rates; null if none."
    )


class PartyView(BaseModel):
    id: str
    display_name: str | None
    company_name: str | None
    email: str | None
    currency: str | None
    active: bool
