"""The reference lists the settings page shows: filtered, searched and paged from the cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from qbsync.errors import AppError
from qbsync.mappings.references import (
    ACCOUNT_TYPES,
    RatePercents,
    References,
    is_active,
    page,
    rate_percents,
    sort_key,
)
from qbsync.mappings.schemas import (
    AccountView,
    ItemView,
    Page,
    PartyView,
    RefName,
    TaxCodeView,
    TaxRateView,
)
from qbsync.qbo import Account, Customer, Item, QboEntity, TaxCode, Vendor

R = TypeVar("R", bound=QboEntity)


def _found(query: str | None, *texts: str | None) -> bool:
    if not query:
        return True
    needle = query.casefold()
    return any(needle in text.casefold() for text in texts if text)


def _visible(row: QboEntity, asked: PageArgs) -> bool:
    return asked.include_inactive or is_active(row)


def account_types(raw: str | None) -> frozenset[str] | None:
    """`type=Expense,Other Expense`: QuickBooks' own account type names, any case."""
    if not raw:
        return None
    by_folded = {name.casefold(): name for name in ACCOUNT_TYPES}
    wanted = set()
    for part in raw.split(","):
        name = by_folded.get(part.strip().casefold())
        if name is None:
            raise AppError(
                f"Unknown account type {part.strip()!r}; use QuickBooks' names: "
                + ", ".join(sorted(ACCOUNT_TYPES))
                + ".",
                status=422,
                code="validation_error",
                field="type",
            )
        wanted.add(name)
    return frozenset(wanted)


@dataclass(frozen=True)
class PageArgs:
    query: str | None
    include_inactive: bool
    limit: int
    cursor: str | None


async def accounts(
    refs: References, asked: PageArgs, *, types: frozenset[str] | None
) -> Page[AccountView]:
    rows = [
        row
        for row in await refs.accounts()
        if _visible(row, asked)
        and (types is None or row.account_type in types)
        and _found(asked.query, row.name, row.fully_qualified_name, row.acct_num)
    ]
    chunk, after = _page(
        rows, lambda row: sort_key(row.fully_qualified_name or row.name, row.id), asked
    )
    return Page[AccountView](items=[_account(row) for row in chunk], next_cursor=after)


async def items(refs: References, asked: PageArgs) -> Page[ItemView]:
    rows = [
        row
        for row in await refs.items()
        if _visible(row, asked)
        and _found(asked.query, row.name, row.fully_qualified_name, row.description)
    ]
    chunk, after = _page(
        rows, lambda row: sort_key(row.fully_qualified_name or row.name, row.id), asked
    )
    return Page[ItemView](items=[_item(row) for row in chunk], next_cursor=after)


async def tax_codes(refs: References, asked: PageArgs) -> Page[TaxCodeView]:
    codes = [
        row
        for row in await refs.tax_codes()
        if _visible(row, asked) and _found(asked.query, row.name, row.description)
    ]
    rates = await refs.tax_rates()
    chunk, after = _page(codes, lambda row: sort_key(row.name, row.id), asked)
    views = [_tax_code(code, rate_percents(code, rates)) for code in chunk]
    return Page[TaxCodeView](items=views, next_cursor=after)


async def customers(refs: References, asked: PageArgs) -> Page[PartyView]:
    return _parties(await refs.customers(), asked)


async def vendors(refs: References, asked: PageArgs) -> Page[PartyView]:
    return _parties(await refs.vendors(), asked)


def _parties(rows: Sequence[Customer | Vendor], asked: PageArgs) -> Page[PartyView]:
    wanted = [
        row
        for row in rows
        if _visible(row, asked)
        and _found(asked.query, row.display_name, row.company_name, _email(row))
    ]
    chunk, after = _page(wanted, lambda row: sort_key(row.display_name, row.id), asked)
    return Page[PartyView](
        items=[
            PartyView(
                id=row.id or "",
                display_name=row.display_name,
                company_name=row.company_name,
                email=_email(row),
                currency=row.currency_ref.value if row.currency_ref else None,
                active=is_active(row),
            )
            for row in chunk
        ],
        next_cursor=after,
    )


def _page(
    rows: Sequence[R], key: Callable[[R], tuple[str, str]], asked: PageArgs
) -> tuple[list[R], str | None]:
    return page(rows, key=key, limit=asked.limit, cursor=asked.cursor)


def _email(row: Customer | Vendor) -> str | None:
    return row.primary_email_addr.address if row.primary_email_addr else None


def _account(row: Account) -> AccountView:
    return AccountView(
        id=row.id or "",
        name=row.name,
        fully_qualified_name=row.fully_qualified_name,
        account_type=row.account_type,
        account_sub_type=row.account_sub_type,
        classification=row.classification,
        account_number=row.acct_num,
        currency=row.currency_ref.value if row.currency_ref else None,
        active=is_active(row),
    )


def _item(row: Item) -> ItemView:
    income = row.income_account_ref
    return ItemView(
        id=row.id or "",
        name=row.name,
        type=row.type,
        description=row.description,
        unit_price=row.unit_price,
        income_account=RefName(id=income.value, name=income.name) if income else None,
        taxable=row.taxable,
        active=is_active(row),
    )


def _tax_code(code: TaxCode, percents: RatePercents) -> TaxCodeView:
    return TaxCodeView(
        id=code.id or "",
        name=code.name,
        description=code.description,
        taxable=code.taxable,
        tax_group=code.tax_group,
        active=is_active(code),
        sales_rates=[TaxRateView(id=i, name=n, percent=p) for i, n, p in percents.sales],
        purchase_rates=[TaxRateView(id=i, name=n, percent=p) for i, n, p in percents.purchase],
        sales_percent=percents.sales_percent,
        purchase_percent=percents.purchase_percent,
    )
