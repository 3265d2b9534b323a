"""What a mapping body means in the company: the QuickBooks record it names, checked as
QuickBooks holds it now (it must exist, be active and be of the right kind), with every refusal
naming the field at fault. Nothing here opens a transaction (R13)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from qbsync.errors import AppError
from qbsync.mappings.company import Company
from qbsync.mappings.references import (
    EXPENSE_TYPES,
    ITEM_TYPES_FOR_SERVICES,
    US_LINE_CODES,
    ReferenceNotFoundError,
    References,
    ReferenceWrongTypeError,
    check_account,
    is_active,
    rate_percents,
)
from qbsync.mappings.schemas import MappingBody, MappingKindPath
from qbsync.qbo import Account, Customer, Item, TaxCode

QBO_NAME_LENGTH = 500


class TaxRateMismatchError(AppError):
    status = 422
    code = "tax_rate_mismatch"


@dataclass(frozen=True)
class Resolved:
    """What a mapping body resolves to in QuickBooks."""

    qbo_id: str
    qbo_name: str | None
    details: dict[str, str] = field(default_factory=dict)


async def resolve(
    refs: References, company: Company, path: MappingKindPath, body: MappingBody
) -> Resolved:
    """Check the body against the company's lists; every refusal names the field at fault."""
    _only_fields_of(path, body)
    if path == "expense-categories":
        return await _expense_account(refs, body)
    qbo_id = _required(body.qbo_id, "qbo_id")
    if path != "tax-rates" and qbo_id in US_LINE_CODES:
        raise ReferenceNotFoundError(
            f"{qbo_id} is a tax flag, not a QuickBooks id: give the id of the record.",
            field="qbo_id",
        )
    if path == "clients":
        return await _customer(refs, qbo_id)
    if path == "services":
        return await _item(refs, qbo_id)
    return await _tax_code(refs, company, qbo_id, body.rate)


_FIELDS_BY_KIND: dict[MappingKindPath, frozenset[str]] = {
    "clients": frozenset({"qbo_id"}),
    "services": frozenset({"qbo_id"}),
    "tax-rates": frozenset({"qbo_id", "rate"}),
    "expense-categories": frozenset({"qbo_id", "account_number"}),
}


def _only_fields_of(path: MappingKindPath, body: MappingBody) -> None:
    for name in sorted(body.model_fields_set - _FIELDS_BY_KIND[path]):
        if getattr(body, name) is not None:
            raise AppError(
                f"{name} does not apply to {path} mappings.",
                status=422,
                code="field_not_allowed",
                field=name,
            )


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise AppError(f"{name} is required.", status=422, code="missing", field=name)
    return value


async def _customer(refs: References, qbo_id: str) -> Resolved:
    customer = (await refs.current(Customer, [qbo_id])).get(qbo_id)
    if customer is None:
        raise ReferenceNotFoundError(
            f"QuickBooks has no customer with id {qbo_id}.", field="qbo_id"
        )
    if not is_active(customer):
        raise ReferenceWrongTypeError(
            f'QuickBooks customer {qbo_id} ("{customer.display_name}") is inactive; '
            "reactivate it in QuickBooks or choose another.",
            field="qbo_id",
            extra={
                "found": {"id": qbo_id, "name": customer.display_name, "kind": "inactive customer"}
            },
        )
    return Resolved(qbo_id=qbo_id, qbo_name=_fits(customer.display_name))


async def _item(refs: References, qbo_id: str) -> Resolved:
    item = (await refs.current(Item, [qbo_id])).get(qbo_id)
    if item is None:
        raise ReferenceNotFoundError(f"QuickBooks has no item with id {qbo_id}.", field="qbo_id")
    if not is_active(item) or item.type not in ITEM_TYPES_FOR_SERVICES:
        kind = f"an inactive {item.type} item" if not is_active(item) else f"a {item.type} item"
        raise ReferenceWrongTypeError(
            f'QuickBooks item {qbo_id} ("{item.name}") is {kind}; a service maps to an active '
            "Service or Non-inventory item.",
            field="qbo_id",
            extra={"found": {"id": qbo_id, "name": item.name, "kind": kind}},
        )
    return Resolved(qbo_id=qbo_id, qbo_name=_fits(item.name))


async def _tax_code(refs: References, company: Company, qbo_id: str, rate: str | None) -> Resolved:
    if company.tax_by_flag:
        if qbo_id not in US_LINE_CODES:
            raise ReferenceWrongTypeError(
                "This US company uses automated sales tax: QuickBooks picks the rate, and a "
                "platform tax rate maps to TAX (taxable) or NON (not taxable).",
                field="qbo_id",
            )
        details = {"rate": _plain(Decimal(rate))} if rate is not None else {}
        return Resolved(qbo_id=qbo_id, qbo_name=qbo_id, details=details)
    code = (await refs.current(TaxCode, [qbo_id])).get(qbo_id)
    if code is None:
        raise ReferenceNotFoundError(
            f"QuickBooks has no tax code with id {qbo_id}.", field="qbo_id"
        )
    percents = rate_percents(code, await refs.rates_of(code))
    sales = percents.sales_percent
    if not is_active(code) or not percents.sales:
        kind = "inactive" if not is_active(code) else "for purchases only"
        raise ReferenceWrongTypeError(
            f'Tax code {qbo_id} ("{code.name}") is {kind}; a platform tax rate maps to an '
            "active code with a sales rate.",
            field="qbo_id",
            extra={"found": {"id": qbo_id, "name": code.name, "kind": f"tax code {kind}"}},
        )
    details = {"sales_percent": _plain(sales)} if sales is not None else {}
    if percents.purchase_percent is not None:
        details["purchase_percent"] = _plain(percents.purchase_percent)
    # The body's pattern admits only plain decimals.
    platform = Decimal(_required(rate, "rate"))
    if sales is None:
        raise ReferenceWrongTypeError(
            f'Tax code {qbo_id} ("{code.name}") names a sales rate QuickBooks did not return, '
            "so its percentage is unknown: choose another code.",
            field="qbo_id",
        )
    if sales != platform:
        raise TaxRateMismatchError(
            f'Tax code "{code.name}" charges {_plain(sales)}'
            f" % on sales, but the platform rate is {_plain(platform)} %. Choose the code whose "
            "rate matches, so that QuickBooks' VAT/GST equals the platform's.",
            field="rate",
            extra={"quickbooks_percent": _plain(sales)},
        )
    details["rate"] = _plain(platform)
    return Resolved(qbo_id=qbo_id, qbo_name=_fits(code.name), details=details)


async def _expense_account(refs: References, body: MappingBody) -> Resolved:
    if (body.qbo_id is None) == (body.account_number is None):
        raise AppError(
            "Give the account as qbo_id or as account_number (its number in the chart of "
            "accounts)" + (", not both." if body.qbo_id is not None else "."),
            status=422,
            code="missing" if body.qbo_id is None else "field_not_allowed",
            field="qbo_id",
        )
    want = "an active Expense, Other Expense or Cost of Goods Sold account"
    if body.qbo_id is not None:
        found_now = await refs.current(Account, [body.qbo_id])
        account = check_account(
            found_now.get(body.qbo_id), body.qbo_id, EXPENSE_TYPES, "qbo_id", want
        )
    else:
        number = body.account_number
        # QuickBooks can't be asked by number (AcctNum is not filterable): the cached chart of
        # accounts finds the account, which is then read as it is now; a miss reads the chart
        # again in case the account is new.
        found = _numbered(await refs.accounts(), number)
        if found:
            now = await refs.current(Account, [row.id for row in found if row.id])
            found = [row for row in now.values() if row.acct_num == number]
        if not found:
            found = _numbered(await refs.reload(Account), number)
        if not found:
            raise ReferenceNotFoundError(
                f"No QuickBooks account has the number {number}.", field="account_number"
            )
        active = [row for row in found if is_active(row)]
        if len(active) > 1:
            raise ReferenceWrongTypeError(
                f"{len(active)} QuickBooks accounts have the number {number}; use qbo_id.",
                field="account_number",
            )
        chosen = (active or found)[0]
        account = check_account(chosen, chosen.id or "", EXPENSE_TYPES, "account_number", want)
    details = {"account_number": account.acct_num} if account.acct_num else {}
    return Resolved(
        qbo_id=account.id or "",
        qbo_name=_fits(account.fully_qualified_name or account.name),
        details=details,
    )


def _fits(name: str | None) -> str | None:
    """A name as the mapping keeps it: QuickBooks' five levels of sub-accounts can exceed the
    column, and a shortened name is only for people (the id is what counts)."""
    return (
        name if name is None or len(name) <= QBO_NAME_LENGTH else name[: QBO_NAME_LENGTH - 1] + "…"
    )


def _numbered(accounts: Sequence[Account], number: str | None) -> list[Account]:
    return [row for row in accounts if row.acct_num and row.acct_num == number]


def _plain(value: Decimal) -> str:
    """20 for 20.00, 8.25 for 8.250: how a person writes a percentage."""
    return format(value.normalize(), "f")
