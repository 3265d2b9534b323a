"""Mappings: a platform id paired with a QuickBooks id inside the org's current company.

A mapping is checked in QuickBooks first (`mapping_checks`), outside any transaction (R13). The
store then re-reads the connection under a share lock, so a company switched meanwhile refuses
the write; a switch takes the same row's update lock before it archives the old company's
mappings.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.errors import ConflictError, NotFoundError
from qbsync.mappings.company import Company, find_company, same_company
from qbsync.mappings.mapping_checks import Resolved
from qbsync.mappings.references import (
    decode_cursor,
    encode_cursor,
)
from qbsync.mappings.schemas import MappingKindPath, MappingView, Page
from qbsync.models import (
    EntityMapping,
    MappingKind,
    MappingSource,
    RecordKind,
    SyncRecord,
)
from qbsync.models.base import utcnow

KINDS: dict[MappingKindPath, MappingKind] = {
    "clients": MappingKind.CLIENT,
    "services": MappingKind.SERVICE,
    "tax-rates": MappingKind.TAX_RATE,
    "expense-categories": MappingKind.EXPENSE_CATEGORY,
}
PATHS: dict[MappingKind, MappingKindPath] = {kind: path for path, kind in KINDS.items()}
# One QuickBooks customer is one platform client (a partial unique index, so races lose too).
CUSTOMER_TAKEN_INDEX = "uq_entity_mappings_client_customer"


class MappingNotFoundError(NotFoundError):
    code = "mapping_not_found"


class ReferenceTakenError(ConflictError):
    code = "qbo_reference_taken"


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


async def store(
    db: Database,
    company: Company,
    path: MappingKindPath,
    platform_id: str,
    resolved: Resolved,
    source: MappingSource = MappingSource.MANUAL,
) -> MappingView:
    async with db.sessions() as session, session.begin():
        await same_company(session, company)
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
            # Another request linked this customer between our check and our write; it has
            # committed, so asking again names the client.
            await _refuse_taken(session, company, platform_id, resolved.qbo_id)
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
    db: Database, company: Company, kinds: Sequence[MappingKind]
) -> dict[MappingKind, dict[str, EntityMapping]]:
    """platform id → mapping, for each kind, in the company's current mappings (one session)."""
    found: dict[MappingKind, dict[str, EntityMapping]] = {kind: {} for kind in kinds}
    async with db.sessions() as session:
        rows = await session.scalars(
            select(EntityMapping).where(
                EntityMapping.org_id == company.org_id,
                EntityMapping.realm_id == company.realm_id,
                EntityMapping.kind.in_(list(kinds)),
                EntityMapping.archived_at.is_(None),
            )
        )
        for row in rows:
            found[row.kind][row.platform_id] = row
    return found


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
