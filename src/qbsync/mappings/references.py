"""One company's reference lists, read through the shared cache, and the checks against them.

Every list is read whole (all pages, inactive records included, so that "inactive" can be told
apart from "does not exist") and filtered here, so a search or the next page costs no call.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from qbsync.errors import AppError
from qbsync.qbo import (
    Account,
    Customer,
    Employee,
    Invoice,
    Item,
    QboClient,
    QboEntity,
    TaxCode,
    TaxRate,
    Vendor,
    in_list,
)
from qbsync.qbo.query import EVERY_STATUS
from qbsync.reference_cache import ReferenceCache

E = TypeVar("E", bound=QboEntity)
V = TypeVar("V")

IDS_PER_QUERY = 100
INCOME_TYPES = frozenset({"Income"})
EXPENSE_TYPES = frozenset({"Expense", "Other Expense", "Cost of Goods Sold"})
AP_TYPES = frozenset({"Accounts Payable"})
PAYMENT_TYPES = frozenset({"Bank", "Credit Card"})
ACCOUNT_TYPES = frozenset(
    {
        "Bank",
        "Accounts Receivable",
        "Other Current Asset",
        "Fixed Asset",
        "Other Asset",
        "Accounts Payable",
        "Credit Card",
        "Other Current Liability",
        "Long Term Liability",
        "Equity",
        "Income",
        "Cost of Goods Sold",
        "Expense",
        "Other Income",
        "Other Expense",
        "Non-Posting",
    }
)
ITEM_TYPES_FOR_SERVICES = frozenset({"Service", "NonInventory"})
# US automated sales tax: a line is taxable or not, and QuickBooks picks the code.
US_LINE_CODES = ("TAX", "NON")


def us_default_code(percent: Decimal) -> str:
    """An unmapped platform rate on a US company with automated sales tax: a rate above zero
    makes the line taxable, and QuickBooks works out the tax."""
    return "TAX" if percent > 0 else "NON"


class ReferenceNotFoundError(AppError):
    status = 422
    code = "qbo_reference_not_found"


class ReferenceWrongTypeError(AppError):
    status = 422
    code = "qbo_reference_wrong_type"


class InvalidCursorError(AppError):
    status = 422
    code = "invalid_cursor"


class References:
    """The lists of one company; each read from QuickBooks at most once per cache lifetime."""

    def __init__(self, cache: ReferenceCache, realm_id: str, client: QboClient) -> None:
        self._cache = cache
        self._realm_id = realm_id
        self._client = client
        self._loaded: dict[str, list[Any]] = {}

    async def accounts(self) -> list[Account]:
        return await self._list(Account)

    async def items(self) -> list[Item]:
        return await self._list(Item)

    async def tax_codes(self) -> list[TaxCode]:
        return await self._list(TaxCode)

    async def tax_rates(self) -> list[TaxRate]:
        return await self._list(TaxRate)

    async def customers(self) -> list[Customer]:
        return await self._list(Customer)

    async def vendors(self) -> list[Vendor]:
        return await self._list(Vendor)

    async def employees(self) -> list[Employee]:
        """Employees by name only: their names take display names, and nothing else of an
        employee's record (addresses, birth dates, ids) is needed or kept."""
        return await self._list(Employee, slim=_name_only)

    async def invoices_numbered(self, numbers: Sequence[str]) -> list[Invoice]:
        """Invoices already holding one of these numbers: read now, never cached (invoices are
        not reference data, and a number taken a minute ago matters)."""
        found: list[Invoice] = []
        for start in range(0, len(numbers), IDS_PER_QUERY):
            chunk = in_list(numbers[start : start + IDS_PER_QUERY])
            found += await self._client.query_all(Invoice, f"DocNumber IN {chunk}")
        return found

    async def current(self, entity_type: type[E], ids: Sequence[str]) -> dict[str, E]:
        """These records as QuickBooks holds them now, in one query (inactive ones included).

        What is about to be stored is checked against this, never against a cached list that
        may predate a change made in QuickBooks a minute ago. A cached list that disagrees is
        dropped, so the settings page shows the change too.
        """
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found: dict[str, E] = {}
        # A few ids per query keep the statement well inside a URL's length.
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = in_list(wanted[start : start + IDS_PER_QUERY])
            for row in await self._client.query_all(
                entity_type, f"Id IN {chunk} AND {EVERY_STATUS}"
            ):
                if row.id:
                    found[row.id] = row
        cached = await self._cache.peek(self._realm_id, entity_type)
        if cached is not None:
            known = {row.id: row.sync_token for row in cached}
            changed = any(known.get(row_id) != row.sync_token for row_id, row in found.items())
            gone = any(row_id in known and row_id not in found for row_id in wanted)
            if changed or gone:
                await self._cache.drop(self._realm_id, entity_type.entity_name)
                self._loaded.pop(entity_type.entity_name, None)
        return found

    def created(self, row: QboEntity) -> None:
        """A record this process just created, seen by its later look-ups. The shared cache
        keeps its list until it expires (5 minutes): re-reading a whole customer list after
        each created customer would cost more reads than the documents pushed."""
        rows = self._loaded.get(type(row).entity_name)
        if rows is not None:
            rows.append(row)

    async def reload(self, entity_type: type[E]) -> list[E]:
        """The list read again now: a search of it found nothing, and the cache may predate
        the record sought."""
        await self._cache.drop(self._realm_id, entity_type.entity_name)
        self._loaded.pop(entity_type.entity_name, None)
        return await self._list(entity_type)

    async def rates_of(self, code: TaxCode) -> list[TaxRate]:
        """The rates a tax code names, as QuickBooks holds them now."""
        ids = [
            detail.tax_rate_ref.value
            for rate_list in (code.sales_tax_rate_list, code.purchase_tax_rate_list)
            for detail in (rate_list.tax_rate_detail if rate_list is not None else ())
            if detail.tax_rate_ref is not None
        ]
        return list((await self.current(TaxRate, ids)).values())

    async def _list(self, entity_type: type[E], slim: Callable[[E], E] | None = None) -> list[E]:
        name = entity_type.entity_name
        if name not in self._loaded:

            async def fetch() -> list[E]:
                rows = await self._client.query_all(entity_type, EVERY_STATUS)
                return [slim(row) for row in rows] if slim else rows

            self._loaded[name] = await self._cache.load(self._realm_id, entity_type, fetch)
        rows: list[E] = self._loaded[name]
        return rows


def _name_only(employee: Employee) -> Employee:
    return Employee(
        id=employee.id,
        sync_token=employee.sync_token,
        display_name=employee.display_name,
        active=employee.active,
    )


def usable_item(item: Item) -> bool:
    """An item a platform service can stand for."""
    return is_active(item) and item.type in ITEM_TYPES_FOR_SERVICES


def by_id(rows: Sequence[E], qbo_id: str) -> E | None:
    return next((row for row in rows if row.id == qbo_id), None)


def is_active(row: QboEntity) -> bool:
    # QuickBooks leaves Active out of some answers; only an explicit false is inactive.
    return getattr(row, "active", None) is not False


@dataclass(frozen=True)
class RatePercents:
    """A tax code's rates, resolved to percentages."""

    sales: tuple[tuple[str, str | None, Decimal | None], ...]
    purchase: tuple[tuple[str, str | None, Decimal | None], ...]

    @property
    def sales_percent(self) -> Decimal | None:
        return _sum(self.sales)

    @property
    def purchase_percent(self) -> Decimal | None:
        return _sum(self.purchase)


def rate_percents(code: TaxCode, rates: Sequence[TaxRate]) -> RatePercents:
    by_rate = {rate.id: rate for rate in rates}

    def resolve(details: Any) -> tuple[tuple[str, str | None, Decimal | None], ...]:
        found = []
        for detail in details.tax_rate_detail if details is not None else ():
            ref = detail.tax_rate_ref
            if ref is None:
                continue
            rate = by_rate.get(ref.value)
            found.append(
                (ref.value, rate.name if rate else ref.name, rate.rate_value if rate else None)
            )
        return tuple(found)

    return RatePercents(
        sales=resolve(code.sales_tax_rate_list), purchase=resolve(code.purchase_tax_rate_list)
    )


def _sum(rates: tuple[tuple[str, str | None, Decimal | None], ...]) -> Decimal | None:
    if not rates or any(percent is None for _, _, percent in rates):
        return None
    return sum((percent for _, _, percent in rates if percent is not None), Decimal(0))


def account_kind(account: Account) -> str:
    """How a person would name this account in an error: "an inactive Bank account"."""
    kind = account.account_type or "untyped"
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    if not is_active(account):
        return f"an inactive {kind} account"
    return f"{article} {kind} account"


def check_account(
    account: Account | None, account_id: str, allowed: frozenset[str], field: str, want: str
) -> Account:
    """The account if it exists, is active and of an allowed type; else a 422 naming `field`."""
    if account is None:
        raise ReferenceNotFoundError(
            f"QuickBooks has no account with id {account_id}.", field=field
        )
    if not is_active(account) or account.account_type not in allowed:
        raise ReferenceWrongTypeError(
            f'Account {account_id} ("{account.name}") is {account_kind(account)}; '
            f"{field} needs {want}.",
            field=field,
            extra={
                "found": {"id": account_id, "name": account.name, "kind": account_kind(account)}
            },
        )
    return account


def page(
    rows: Sequence[V],
    *,
    key: Callable[[V], tuple[str, str]],
    limit: int,
    cursor: str | None,
) -> tuple[list[V], str | None]:
    """A keyset page over rows sorted by `key`: a list reloaded between pages skips nothing."""
    ordered = sorted(rows, key=key)
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        ordered = [row for row in ordered if key(row) > after]
    chunk = ordered[:limit]
    more = len(ordered) > limit
    return chunk, encode_cursor(key(chunk[-1])) if more and chunk else None


def encode_cursor(position: tuple[str, str]) -> str:
    raw = json.dumps(list(position), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise _bad_cursor() from error
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) and _storable(part) for part in value)
    ):
        raise _bad_cursor()
    return value[0], value[1]


def _storable(text: str) -> bool:
    """Text Postgres can compare: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _bad_cursor() -> InvalidCursorError:
    return InvalidCursorError(
        "This cursor is not one qbsync gave out; start again without it.", field="cursor"
    )


def sort_key(name: str | None, row_id: str | None) -> tuple[str, str]:
    return ((name or "").casefold(), (row_id or "").zfill(32))
