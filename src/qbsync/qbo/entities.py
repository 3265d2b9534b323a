"""QuickBooks entities as pydantic models.

Python names are snake_case; on the wire every field uses Intuit's spelling (`DisplayName`,
`SyncToken`, but `domain`, `sparse`, `value`). Models accept either. Unknown fields are kept
(`extra="allow"`) so a read-modify-write never drops what QuickBooks added. Money is `Decimal`.

`to_payload()` sends only the fields that were set: a sparse update built as
`Invoice(id="5", sync_token="2", private_note="x")` changes nothing else.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal


class QboModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="python", by_alias=True, exclude_unset=True)


class Ref(QboModel):
    value: str = Field(alias="value")
    name: str | None = Field(default=None, alias="name")
    type: str | None = Field(default=None, alias="type")


class MetaData(QboModel):
    create_time: datetime | None = None
    last_updated_time: datetime | None = None


class EmailAddress(QboModel):
    address: str | None = None


class PhoneNumber(QboModel):
    free_form_number: str | None = None


class PhysicalAddress(QboModel):
    id: str | None = None
    line1: str | None = None
    line2: str | None = None
    line3: str | None = None
    city: str | None = None
    country_sub_division_code: str | None = None
    postal_code: str | None = None
    country: str | None = None


class LinkedTxn(QboModel):
    txn_id: str
    txn_type: str
    txn_line_id: str | None = None


class SalesItemLineDetail(QboModel):
    item_ref: Ref | None = None
    qty: Decimal | None = None
    unit_price: Decimal | None = None
    tax_code_ref: Ref | None = None
    service_date: date | None = None


class AccountBasedExpenseLineDetail(QboModel):
    account_ref: Ref
    tax_code_ref: Ref | None = None
    tax_amount: Decimal | None = None
    customer_ref: Ref | None = None
    billable_status: str | None = None


class ItemBasedExpenseLineDetail(QboModel):
    item_ref: Ref
    qty: Decimal | None = None
    unit_price: Decimal | None = None
    tax_code_ref: Ref | None = None
    customer_ref: Ref | None = None
    billable_status: str | None = None


class Line(QboModel):
    """A transaction line; detail types we do not model (discount, subtotal, group) stay extra."""

    id: str | None = None
    line_num: int | None = None
    description: str | None = None
    amount: Decimal | None = None
    detail_type: str | None = None
    sales_item_line_detail: SalesItemLineDetail | None = None
    account_based_expense_line_detail: AccountBasedExpenseLineDetail | None = None
    item_based_expense_line_detail: ItemBasedExpenseLineDetail | None = None
    linked_txn: list[LinkedTxn] | None = None


class TaxLineDetail(QboModel):
    tax_rate_ref: Ref | None = None
    percent_based: bool | None = None
    tax_percent: Decimal | None = None
    net_amount_taxable: Decimal | None = None


class TaxLine(QboModel):
    amount: Decimal | None = None
    detail_type: str | None = None
    tax_line_detail: TaxLineDetail | None = None


class TxnTaxDetail(QboModel):
    txn_tax_code_ref: Ref | None = None
    total_tax: Decimal | None = None
    tax_line: list[TaxLine] | None = None


class QboEntity(QboModel):
    """Fields every entity has. `status` is "Deleted" for deleted objects in CDC and deletes."""

    entity_name: ClassVar[str] = ""

    id: str | None = None
    sync_token: str | None = None
    meta_data: MetaData | None = None
    domain: str | None = Field(default=None, alias="domain")
    sparse: bool | None = Field(default=None, alias="sparse")
    status: str | None = Field(default=None, alias="status")

    @property
    def is_deleted(self) -> bool:
        return self.status == "Deleted"


class CompanyInfo(QboEntity):
    entity_name = "CompanyInfo"

    company_name: str | None = None
    legal_name: str | None = None
    country: str | None = None
    company_addr: PhysicalAddress | None = None
    legal_addr: PhysicalAddress | None = None
    email: EmailAddress | None = None
    fiscal_year_start_month: str | None = None


class TaxPrefs(QboModel):
    using_sales_tax: bool | None = None
    # True means US Automated Sales Tax: QuickBooks picks the tax code itself.
    partner_tax_enabled: bool | None = None
    tax_group_code_ref: Ref | None = None


class CurrencyPrefs(QboModel):
    multi_currency_enabled: bool | None = None
    home_currency: Ref | None = None


class SalesFormsPrefs(QboModel):
    custom_txn_numbers: bool | None = None


class AccountingInfoPrefs(QboModel):
    use_account_numbers: bool | None = None
    # The closing date: transactions on or before it are refused (6210).
    book_close_date: date | None = None


class Preferences(QboEntity):
    entity_name = "Preferences"

    tax_prefs: TaxPrefs | None = None
    currency_prefs: CurrencyPrefs | None = None
    sales_forms_prefs: SalesFormsPrefs | None = None
    accounting_info_prefs: AccountingInfoPrefs | None = None


class _Party(QboEntity):
    display_name: str | None = None
    title: str | None = None
    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    suffix: str | None = None
    company_name: str | None = None
    primary_email_addr: EmailAddress | None = None
    primary_phone: PhoneNumber | None = None
    bill_addr: PhysicalAddress | None = None
    active: bool | None = None
    currency_ref: Ref | None = None
    balance: Decimal | None = None


class Customer(_Party):
    entity_name = "Customer"

    fully_qualified_name: str | None = None
    ship_addr: PhysicalAddress | None = None
    taxable: bool | None = None
    default_tax_code_ref: Ref | None = None
    parent_ref: Ref | None = None
    job: bool | None = None
    notes: str | None = None


class Vendor(_Party):
    entity_name = "Vendor"

    acct_num: str | None = None


class Employee(_Party):
    entity_name = "Employee"


class Item(QboEntity):
    entity_name = "Item"

    name: str | None = None
    type: str | None = None
    active: bool | None = None
    description: str | None = None
    fully_qualified_name: str | None = None
    unit_price: Decimal | None = None
    income_account_ref: Ref | None = None
    expense_account_ref: Ref | None = None
    asset_account_ref: Ref | None = None
    taxable: bool | None = None
    sales_tax_code_ref: Ref | None = None
    purchase_tax_code_ref: Ref | None = None


class Account(QboEntity):
    entity_name = "Account"

    name: str | None = None
    account_type: str | None = None
    account_sub_type: str | None = None
    classification: str | None = None
    active: bool | None = None
    acct_num: str | None = None
    fully_qualified_name: str | None = None
    current_balance: Decimal | None = None
    currency_ref: Ref | None = None


class TaxRateDetail(QboModel):
    tax_rate_ref: Ref | None = None
    tax_type_applicable: str | None = None
    tax_order: int | None = None


class TaxRateList(QboModel):
    tax_rate_detail: list[TaxRateDetail] = Field(default_factory=list)


class TaxCode(QboEntity):
    entity_name = "TaxCode"

    name: str | None = None
    description: str | None = None
    active: bool | None = None
    taxable: bool | None = None
    tax_group: bool | None = None
    hidden: bool | None = None
    sales_tax_rate_list: TaxRateList | None = None
    purchase_tax_rate_list: TaxRateList | None = None


class TaxRate(QboEntity):
    entity_name = "TaxRate"

    name: str | None = None
    description: str | None = None
    active: bool | None = None
    # A percentage: 20 means 20 %.
    rate_value: Decimal | None = None
    agency_ref: Ref | None = None
    special_tax_type: str | None = None
    display_type: str | None = None


class _Transaction(QboEntity):
    doc_number: str | None = None
    txn_date: date | None = None
    private_note: str | None = None
    currency_ref: Ref | None = None
    exchange_rate: Decimal | None = None
    line: list[Line] | None = None
    txn_tax_detail: TxnTaxDetail | None = None
    total_amt: Decimal | None = None
    # TaxExcluded | TaxInclusive | NotApplicable; required outside the US.
    global_tax_calculation: str | None = None
    linked_txn: list[LinkedTxn] | None = None


class MemoRef(QboModel):
    value: str = Field(alias="value")


class Invoice(_Transaction):
    entity_name = "Invoice"

    customer_ref: Ref | None = None
    due_date: date | None = None
    # Read-only: TotalAmt until paid, 0 when fully paid (or voided).
    balance: Decimal | None = None
    home_balance: Decimal | None = None
    home_total_amt: Decimal | None = None
    bill_email: EmailAddress | None = None
    bill_addr: PhysicalAddress | None = None
    ship_addr: PhysicalAddress | None = None
    customer_memo: MemoRef | None = None
    sales_term_ref: Ref | None = None
    email_status: str | None = None


class Payment(_Transaction):
    entity_name = "Payment"

    customer_ref: Ref | None = None
    unapplied_amt: Decimal | None = None
    payment_ref_num: str | None = None
    payment_method_ref: Ref | None = None
    deposit_to_account_ref: Ref | None = None


class Bill(_Transaction):
    entity_name = "Bill"

    vendor_ref: Ref | None = None
    due_date: date | None = None
    balance: Decimal | None = None
    ap_account_ref: Ref | None = Field(default=None, alias="APAccountRef")
    sales_term_ref: Ref | None = None


class Purchase(_Transaction):
    entity_name = "Purchase"

    # Cash | Check | CreditCard
    payment_type: str | None = None
    account_ref: Ref | None = None
    entity_ref: Ref | None = None
    credit: bool | None = None


ENTITY_TYPES: dict[str, type[QboEntity]] = {
    cls.entity_name: cls
    for cls in (
        CompanyInfo,
        Preferences,
        Customer,
        Vendor,
        Employee,
        Item,
        Account,
        TaxCode,
        TaxRate,
        Invoice,
        Payment,
        Bill,
        Purchase,
    )
}


def entity_from_wire(name: str, data: dict[str, Any]) -> QboEntity:
    """A typed entity for a name QuickBooks used as a key; a plain `QboEntity` for others."""
    return ENTITY_TYPES.get(name, QboEntity).model_validate(data)
