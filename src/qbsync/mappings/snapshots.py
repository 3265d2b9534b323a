"""The platform's entity snapshots: the `data` of its events (architecture.md §3).

The preview takes them as they are, and the push engine validates events with the same models.
Money and rates are decimal strings, never JSON numbers (a float can't say 0.10 exactly); a rate
is a percentage ("20.00" is 20 %). Keys the platform adds later are ignored, so a newer platform
does not break an older qbsync; a key we know with a bad value is refused, naming its path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_LINES = 750  # QuickBooks' limit on a taxable invoice


# Plain ASCII digits only: Python's Decimal would also take "1_000", "1e3", "+5" or other
# scripts' digits, which a platform never means to send. Each kind of amount has one pattern, which
# the validator applies and the contract states, so the two never disagree.
MONEY_PATTERN = r"^-?[0-9]{1,13}(\.[0-9]{1,2})?$"  # 15 digits, cents
FINE_PATTERN = r"^-?[0-9]{1,11}(\.[0-9]{1,6})?$"  # 17 digits, six places
PERCENT_PATTERN = r"^(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$"  # 0 to 100, four places
# QuickBooks keeps amounts below a hundred billion; a line past that is a typo, not an invoice.
MAX_LINE_AMOUNT = Decimal("99999999999.99")


def _decimal_text(pattern: str, example: str) -> BeforeValidator:
    shape = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(f'must be a decimal string such as "{example}", never a JSON number')
        if not shape.fullmatch(value):
            raise ValueError(f"must be a plain decimal matching {pattern}")
        return value

    return BeforeValidator(check)


def _decimal_schema(pattern: str, what: str) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": pattern, "maxLength": 20, "description": what}
    )


def _plain_zero(value: Decimal) -> Decimal:
    return value + 0  # "-0" is plain zero


def _date_text(value: object) -> object:
    # Lax pydantic would take 0 (1970-01-01) or a datetime string as a date.
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError("must be a date written YYYY-MM-DD")


IsoDate = Annotated[
    date,
    BeforeValidator(_date_text),
    WithJsonSchema({"type": "string", "format": "date", "maxLength": 10}),
]


Money = Annotated[
    Decimal,
    _decimal_text(MONEY_PATTERN, "150.00"),
    AfterValidator(_plain_zero),
    _decimal_schema(MONEY_PATTERN, 'A decimal string, at most two places ("150.00").'),
]
# Unit prices and quantities may be finer than a cent (QuickBooks keeps up to 7 places).
Fine = Annotated[
    Decimal,
    _decimal_text(FINE_PATTERN, "2.5"),
    AfterValidator(_plain_zero),
    _decimal_schema(FINE_PATTERN, 'A decimal string, at most six places ("2.5").'),
]
Percent = Annotated[
    Decimal,
    _decimal_text(PERCENT_PATTERN, "20.00"),
    AfterValidator(_plain_zero),
    _decimal_schema(PERCENT_PATTERN, 'A percentage from 0 to 100 ("20.00").'),
]
# The same rule as the mapping routes' path, so that any id stored can be addressed there.
# `\s` differs between the contract's regex dialect (ECMA-262: no U+0085, but U+FEFF) and
# pydantic's (Unicode White_Space: U+0085, no U+FEFF); naming both makes the two agree.
_SPACE = r"\s\x85\ufeff"
PLATFORM_ID_PATTERN = rf"^[^{_SPACE}/\x00-\x1f\x7f]+$"
PlatformId = Annotated[str, Field(min_length=1, max_length=128, pattern=PLATFORM_ID_PATTERN)]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]
# No control characters in one-line text: pydantic's stripping keeps "\x1c" to "\x1f", which
# Python and QuickBooks then take for whitespace, leaving a name or a number empty.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, Field(max_length=500, pattern=_ONE_LINE)]
Email = Annotated[
    str, Field(max_length=254, pattern=rf"^[^@{_SPACE}\x00-\x1f\x7f]+@[^@{_SPACE}\x00-\x1f\x7f]+$")
]
# A name: at least one character that is not a space.
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        pattern=rf"^[^\x00-\x1f\x7f]*[^{_SPACE}\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    ),
]
# Several lines are fine in a description; other control characters are not.
Description = Annotated[
    str, Field(max_length=4000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
]
AmountsAre = Literal["tax_exclusive", "tax_inclusive", "no_tax"]


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Address(Snapshot):
    line1: Text | None = None
    line2: Text | None = None
    city: Annotated[str, Field(max_length=255)] | None = None
    region: Annotated[str, Field(max_length=255)] | None = None
    postal_code: Annotated[str, Field(max_length=31)] | None = None
    country: Annotated[str, Field(max_length=255)] | None = None


class ClientSnapshot(Snapshot):
    id: PlatformId
    name: Name
    email: Email | None = None
    company_name: Text | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    billing_address: Address | None = None
    currency: Currency | None = None


class ServiceSnapshot(Snapshot):
    id: PlatformId
    name: Name
    description: Description | None = None
    unit_price: Fine | None = None


class TaxRateSnapshot(Snapshot):
    id: PlatformId
    name: Name
    rate: Percent


class InvoiceClient(Snapshot):
    id: PlatformId
    name: Name
    email: Email | None = None


class InvoiceLine(Snapshot):
    service_id: PlatformId | None = None
    description: Description | None = None
    quantity: Fine
    unit_price: Fine
    # No tax rate: the line is untaxed.
    tax_rate_id: PlatformId | None = None

    @model_validator(mode="after")
    def _amount_in_range(self) -> InvoiceLine:
        if abs(self.quantity * self.unit_price) > MAX_LINE_AMOUNT:
            # A rule across two fields, which no JSON Schema states: its own code says so.
            raise PydanticCustomError(
                "line_amount_too_large",
                "quantity times unit_price must stay within {limit}",
                {"limit": str(MAX_LINE_AMOUNT)},
            )
        return self


class InvoiceSnapshot(Snapshot):
    id: PlatformId
    number: Annotated[str, Field(min_length=1, max_length=100, pattern=_ONE_LINE)] | None = None
    status: Annotated[str, Field(min_length=1, max_length=32)]
    currency: Currency
    issue_date: IsoDate
    due_date: IsoDate | None = None
    amounts_are: AmountsAre
    client: InvoiceClient
    lines: Annotated[list[InvoiceLine], Field(min_length=1, max_length=MAX_LINES)]
    # Before tax, whichever way the amounts are given.
    subtotal: Money
    tax_total: Money
    total: Money


class Supplier(Snapshot):
    id: PlatformId
    name: Name
    email: Email | None = None


class ExpenseSnapshot(Snapshot):
    id: PlatformId
    workflow_id: PlatformId | None = None
    date: IsoDate
    supplier: Supplier
    category_code: Annotated[str, Field(min_length=1, max_length=128, pattern=_ONE_LINE)] | None = (
        None
    )
    description: Description | None = None
    amount: Money
    amounts_are: AmountsAre
    tax_rate_id: PlatformId | None = None
    currency: Currency
    paid: bool = Field(strict=True)
    due_date: IsoDate | None = None


class PaymentSnapshot(Snapshot):
    id: PlatformId
    invoice_id: PlatformId
    amount: Money
    date: IsoDate
    method: Annotated[str, Field(max_length=100, pattern=_ONE_LINE)] | None = None
    reference: Annotated[str, Field(max_length=100, pattern=_ONE_LINE)] | None = None
    currency: Currency


class DeletedSnapshot(Snapshot):
    """Every `*.deleted` event carries only the id."""

    id: PlatformId
