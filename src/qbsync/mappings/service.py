"""Mappings: a platform id paired with a QuickBooks id inside the org's current company.

A mapping is checked against the company's cached lists before it is stored (the id must exist,
be active and be of the right kind), outside any transaction (R13). The store then re-reads the
connection under a share lock, so a company switched meanwhile refuses the write; a switch takes
the same row's update lock before it archives the old company's mappings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.errors import AppError, ConflictError, NotFoundError
from qbsync.mappings.company import Company, find_company
from qbsync.mappings.references import (
    EXPENSE_TYPES,
    ITEM_TYPES_FOR_SERVICES,
    US_LINE_CODES,
    ReferenceNotFoundError,
    References,
    ReferenceWrongTypeError,
    check_account,
    decode_cursor,
    encode_cursor,
    is_active,
    rate_percents,
)
from qbsync.mappings.schemas import MappingBody, MappingKindPath, MappingView, Page
from qbsync.mappings.settings_service import CompanyChangedError
from qbsync.models import (
    Connection,
    EntityMapping,
    MappingKind,
    MappingSource,
    RecordKind,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.qbo import Account, Customer, Item, TaxCode

KINDS: dict[MappingKindPath, MappingKind] = {
    "clients": MappingKind.CLIENT,
    "services": MappingKind.SERVICE,
    "tax-rates": MappingKind.TAX_RATE,
    "expense-categories": MappingKind.EXPENSE_CATEGORY,
}
PATHS: dict[MappingKind, MappingKindPath] = {kind: path for path, kind in KINDS.items()}
# One QuickBooks customer is one platform client (a partial unique index, so races lose too).
CUSTOMER_TAKEN_INDEX = "uq_entity_mappings_client_customer"
QBO_NAME_LENGTH = 500


class MappingNotFoundError(NotFoundError):
    code = "mapping_not_found"


class ReferenceTakenError(ConflictError):
    code = "qbo_reference_taken"


class TaxRateMismatchError(AppError):
    status = 422
    code = "tax_rate_mismatch"


@dataclass(frozen=True)
class Resolved:
    """What a mapping body resolves to in QuickBooks."""

    qbo_id: str
    qbo_name: str | None
    details: dict[str, str] = field(default_factory=dict)


async def list_mappings(
    db: Database, org_id: str, path: MappingKindPath, *, limit: int, cursor: str | None
) -> Page[MappingView]:
    """The org's mappings of one kind in its current company (kept while disconnected)."""
    after = decode_cursor(cursor)[1] if cursor is not None else None
    company = await find_company(db, org_id)
    if company is None:
        return Page[MappingView](items=[], next_cursor=None)
    async with db.sessions() as session:
        statement = (
            select(EntityMapping)
            .where(
                EntityMapping.org_id == org_id,
                EntityMapping.realm_id == company.realm_id,
                EntityMapping.kind == KINDS[path],
                EntityMapping.archived_at.is_(None),
            )
            .order_by(EntityMapping.platform_id)
            .limit(limit + 1)
        )
        if after is not None:
            statement = statement.where(EntityMapping.platform_id > after)
        rows = list(await session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(("", rows[-1].platform_id)) if more and rows else None
    return Page[MappingView](items=[view(row) for row in rows], next_cursor=next_cursor)


async def resolve(
    refs: References, company: Company, path: MappingKindPath, body: MappingBody
) -> Resolved:
    """Check the body against the company's lists; every refusal names the field at fault."""
    _only_fields_of(path, body)
    if path == "expense-categories":
        return await _expense_account(refs, body)
    qbo_id = _required(body.qbo_id, "qbo_id")
    if path == "clients":
        return await _customer(refs, qbo_id)
    if path == "services":
        return await _item(refs, qbo_id)
    return await _tax_code(refs, company, qbo_id, body.rate)


async def store(
    db: Database,
    company: Company,
    path: MappingKindPath,
    platform_id: str,
    resolved: Resolved,
    source: MappingSource = MappingSource.MANUAL,
) -> MappingView:
    async with db.sessions() as session, session.begin():
        await _same_company(session, company)
        row = await upsert(session, company, KINDS[path], platform_id, resolved, source)
        assert row is not None  # a replace always writes
        return view(row)


async def upsert(
    session: AsyncSession,
    company: Company,
    kind: MappingKind,
    platform_id: str,
    resolved: Resolved,
    source: MappingSource,
    *,
    replace: bool = True,
) -> EntityMapping | None:
    """Insert or replace one mapping (an archived one of this company comes back to life).

    With `replace=False` a current mapping of the platform id is kept, atomically, and None
    says so: a link the user confirmed never overwrites a mapping someone made meanwhile.
    """
    if kind is MappingKind.CLIENT:
        await _refuse_taken(session, company, platform_id, resolved.qbo_id)
    now = utcnow()
    values = {
        "qbo_id": resolved.qbo_id,
        "qbo_name": resolved.qbo_name,
        "source": source,
        "details": resolved.details,
        "archived_at": None,
        "updated_at": now,
    }
    statement = (
        insert(EntityMapping)
        .values(
            org_id=company.org_id,
            realm_id=company.realm_id,
            kind=kind,
            platform_id=platform_id,
            created_at=now,
            **values,
        )
        .on_conflict_do_update(
            index_elements=["org_id", "realm_id", "kind", "platform_id"],
            set_=values,
            where=None if replace else EntityMapping.archived_at.is_not(None),
        )
        .returning(EntityMapping.id)
    )
    try:
        async with session.begin_nested():
            mapping_id = (await session.execute(statement)).scalar_one_or_none()
    except IntegrityError as error:
        if CUSTOMER_TAKEN_INDEX in str(error.orig):
            # Another request linked this customer between our check and our write.
            raise _taken(resolved.qbo_id, None) from error
        raise
    if mapping_id is None:
        return None
    row = await session.get(EntityMapping, mapping_id, populate_existing=True)
    assert row is not None
    return row


async def delete_mapping(
    db: Database, org_id: str, path: MappingKindPath, platform_id: str
) -> None:
    company = await find_company(db, org_id)
    async with db.sessions() as session, session.begin():
        row = None
        if company is not None:
            row = await session.scalar(
                select(EntityMapping)
                .where(
                    EntityMapping.org_id == org_id,
                    EntityMapping.realm_id == company.realm_id,
                    EntityMapping.kind == KINDS[path],
                    EntityMapping.platform_id == platform_id,
                    EntityMapping.archived_at.is_(None),
                )
                .with_for_update()
            )
        if row is None:
            raise MappingNotFoundError(f"No {path} mapping for {platform_id!r} in this company.")
        await session.delete(row)


async def active_mappings(
    db: Database, company: Company, kind: MappingKind, platform_ids: Sequence[str] | None = None
) -> dict[str, EntityMapping]:
    """platform id → mapping, in the company's current mappings (all, or those asked for)."""
    async with db.sessions() as session:
        statement = select(EntityMapping).where(
            EntityMapping.org_id == company.org_id,
            EntityMapping.realm_id == company.realm_id,
            EntityMapping.kind == kind,
            EntityMapping.archived_at.is_(None),
        )
        if platform_ids is not None:
            statement = statement.where(EntityMapping.platform_id.in_(list(platform_ids)))
        return {row.platform_id: row for row in await session.scalars(statement)}


async def client_mappings(
    session: AsyncSession, company: Company, platform_ids: Sequence[str]
) -> dict[str, str]:
    """platform id → QuickBooks customer id of these clients' current mappings."""
    rows = await session.execute(
        select(EntityMapping.platform_id, EntityMapping.qbo_id).where(
            EntityMapping.org_id == company.org_id,
            EntityMapping.realm_id == company.realm_id,
            EntityMapping.kind == MappingKind.CLIENT,
            EntityMapping.archived_at.is_(None),
            EntityMapping.platform_id.in_(list(platform_ids)),
        )
    )
    return {str(platform_id): str(qbo_id) for platform_id, qbo_id in rows.all()}


async def pushed_invoices(
    db: Database, company: Company, platform_ids: Sequence[str]
) -> dict[str, str]:
    """platform invoice id → the QuickBooks invoice it was pushed as, in this company."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(SyncRecord.platform_id, SyncRecord.qbo_id).where(
                SyncRecord.org_id == company.org_id,
                SyncRecord.kind == RecordKind.INVOICE,
                SyncRecord.realm_id == company.realm_id,
                SyncRecord.qbo_id.is_not(None),
                SyncRecord.platform_id.in_(list(platform_ids)),
            )
        )
        return {str(platform_id): str(qbo_id) for platform_id, qbo_id in rows.all()}


async def same_company(session: AsyncSession, company: Company) -> None:
    await _same_company(session, company)


def view(row: EntityMapping) -> MappingView:
    return MappingView(
        kind=PATHS[row.kind],
        platform_id=row.platform_id,
        qbo_id=row.qbo_id,
        qbo_name=row.qbo_name,
        source=row.source,
        details={key: str(value) for key, value in (row.details or {}).items()},
        updated_at=row.updated_at,
    )


async def _same_company(session: AsyncSession, company: Company) -> None:
    realm_id = await session.scalar(
        select(Connection.realm_id)
        .where(Connection.org_id == company.org_id)
        .with_for_update(read=True)
    )
    if realm_id != company.realm_id:
        raise CompanyChangedError(
            "The QuickBooks company changed while this was being checked; nothing was saved."
        )


async def _refuse_taken(
    session: AsyncSession, company: Company, platform_id: str, qbo_id: str
) -> None:
    other = await session.scalar(
        select(EntityMapping.platform_id).where(
            EntityMapping.org_id == company.org_id,
            EntityMapping.realm_id == company.realm_id,
            EntityMapping.kind == MappingKind.CLIENT,
            EntityMapping.qbo_id == qbo_id,
            EntityMapping.archived_at.is_(None),
            EntityMapping.platform_id != platform_id,
        )
    )
    if other is not None:
        raise _taken(qbo_id, other)


def _taken(qbo_id: str, other: str | None) -> ReferenceTakenError:
    whom = f"client {other!r}" if other else "another client"
    return ReferenceTakenError(
        f"QuickBooks customer {qbo_id} is already mapped to {whom}. One QuickBooks customer "
        "can stand for one client only: unmap it there first.",
        field="qbo_id",
        extra={"mapped_to": other} if other else None,
    )


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
        details = {"rate": rate} if rate is not None else {}
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
            f'Tax code "{code.name}" charges {_plain(sales) if sales is not None else "an unknown"}'
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
            "accounts), not both.",
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
        # QuickBooks can't be asked by number (AcctNum is not filterable): what is stored is
        # checked against the chart of accounts read now.
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
