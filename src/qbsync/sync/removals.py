"""Name-list records merged, made inactive or deleted in QuickBooks: their mappings follow.

A merge points every mapping (and the client records) at the surviving record; an inactive or
deleted record's mappings are cleared, and so are the settings' accounts that named it, so no
later push refers to a record that is gone. The next push then matches or creates again, or
fails with an error that names what to map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, select, update

from qbsync.db import Database
from qbsync.mappings.company import Company
from qbsync.models import EntityMapping, MappingKind, RecordKind, SyncRecord, SyncSettings
from qbsync.models.base import utcnow
from qbsync.qbo import QboClient, QboEntity
from qbsync.qbo.entities import Account, Customer, Item, Vendor
from qbsync.qbo.query import EVERY_STATUS, in_list
from qbsync.sync.changes import Applied, Change

log = structlog.get_logger(__name__)
KINDS: dict[str, MappingKind] = {
    "Customer": MappingKind.CLIENT,
    "Vendor": MappingKind.SUPPLIER,
    "Item": MappingKind.SERVICE,
    "Account": MappingKind.EXPENSE_CATEGORY,
}
TYPES: dict[str, type[QboEntity]] = {
    "Customer": Customer,
    "Vendor": Vendor,
    "Item": Item,
    "Account": Account,
}
ACCOUNT_SETTINGS = (
    "default_income_account_id",
    "default_expense_account_id",
    "ap_account_id",
    "payment_account_id",
)
IDS_PER_QUERY = 100


async def apply(
    db: Database,
    company: Company,
    client: QboClient,
    changes: Sequence[Change],
    known: Mapping[tuple[str, str], QboEntity],
) -> Applied:
    applied = Applied()
    merges: list[tuple[str, str, str]] = []
    gone: set[tuple[str, str]] = set()
    to_check: set[tuple[str, str]] = set()
    for (entity, entity_id), obj in known.items():
        if obj.is_deleted or getattr(obj, "active", None) is False:
            gone.add((entity, entity_id))
    paired = _merged_away(changes)
    for change in changes:
        key = (change.entity, change.entity_id)
        if change.operation == "Merge" and change.deleted_id:
            merges.append((change.entity, change.deleted_id, change.entity_id))
        elif key in paired:
            merges.append((change.entity, change.entity_id, paired[key]))
        elif change.operation == "Delete":
            gone.add(key)
        elif change.operation in ("Update", "Merge") and key not in known:
            to_check.add(key)
    referenced = await _referenced(db, company, to_check | gone | {(e, d) for e, d, _ in merges})
    to_check &= referenced
    for entity in sorted({entity for entity, _ in to_check}):
        ids = sorted(entity_id for name, entity_id in to_check if name == entity)
        active: set[str] = set()
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            rows = await client.query_all(
                TYPES[entity], f"Id IN {in_list(chunk)} AND {EVERY_STATUS}"
            )
            active |= {row.id for row in rows if row.id and getattr(row, "active", True)}
        gone |= {(entity, entity_id) for entity_id in ids if entity_id not in active}
    gone &= referenced
    if not merges and not gone:
        return applied
    async with db.sessions() as session:
        for entity, merged_away, survivor in merges:
            applied.mappings_moved += await _move(session, company, entity, merged_away, survivor)
        for entity, entity_id in sorted(gone):
            applied.mappings_cleared += await _clear(session, company, entity, entity_id)
        await session.commit()
    if applied.mappings_moved or applied.mappings_cleared:
        log.info(
            "mappings_followed_quickbooks",
            org_id=company.org_id,
            moved=applied.mappings_moved,
            cleared=applied.mappings_cleared,
        )
    return applied


def _merged_away(changes: Sequence[Change]) -> dict[tuple[str, str], str]:
    """(entity, merged-away id) → survivor, for merges that do not name what they removed.

    CloudEvents carry no merged-away id [U]; the merged-away record's own Delete comes with the
    same time as the survivor's Merge, and that pair is a move, not a removal. Only an
    unambiguous pair counts: one Merge and one Delete of the entity at that moment.
    """
    merges: dict[tuple[str, datetime], list[str]] = {}
    deletes: dict[tuple[str, datetime], list[str]] = {}
    for change in changes:
        moment = (change.entity, change.occurred_at)
        if change.operation == "Merge" and not change.deleted_id:
            merges.setdefault(moment, []).append(change.entity_id)
        elif change.operation == "Delete":
            deletes.setdefault(moment, []).append(change.entity_id)
    return {
        (moment[0], deletes[moment][0]): survivors[0]
        for moment, survivors in merges.items()
        if len(survivors) == 1 and len(deletes.get(moment, [])) == 1
    }


async def recheck_all(db: Database, company: Company, client: QboClient) -> Applied:
    """Every record the mappings and settings point at, read again: what a run that could not
    use CDC (its watermark too old) would otherwise never learn of merges and deactivations."""
    now = utcnow()
    changes: list[Change] = []
    async with db.sessions() as session:
        for entity, kind in KINDS.items():
            rows = await session.scalars(
                select(EntityMapping.qbo_id)
                .where(
                    EntityMapping.org_id == company.org_id,
                    EntityMapping.realm_id == company.realm_id,
                    EntityMapping.kind == kind,
                    EntityMapping.archived_at.is_(None),
                )
                .distinct()
            )
            changes += [Change(entity, qbo_id, "Update", now) for qbo_id in rows]
        settings = await session.get(SyncSettings, company.org_id)
    if settings is not None:
        for column in ACCOUNT_SETTINGS:
            account_id = getattr(settings, column)
            if account_id:
                changes.append(Change("Account", account_id, "Update", now))
    return await apply(db, company, client, changes, {})


async def _referenced(
    db: Database, company: Company, keys: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The keys some mapping (or, for accounts, a setting) of this company points at."""
    if not keys:
        return set()
    found: set[tuple[str, str]] = set()
    async with db.sessions() as session:
        for entity in sorted({entity for entity, _ in keys}):
            ids = sorted(entity_id for name, entity_id in keys if name == entity)
            rows = await session.scalars(
                select(EntityMapping.qbo_id).where(
                    EntityMapping.org_id == company.org_id,
                    EntityMapping.realm_id == company.realm_id,
                    EntityMapping.kind == KINDS[entity],
                    EntityMapping.archived_at.is_(None),
                    EntityMapping.qbo_id.in_(ids),
                )
            )
            found |= {(entity, qbo_id) for qbo_id in rows}
            if entity == "Account":
                settings = await session.get(SyncSettings, company.org_id)
                named = (
                    {getattr(settings, column) for column in ACCOUNT_SETTINGS}
                    if settings
                    else set()
                )
                found |= {("Account", entity_id) for entity_id in ids if entity_id in named}
    return found


async def _move(
    session: Any, company: Company, entity: str, merged_away: str, survivor: str
) -> int:
    kind = KINDS[entity]
    scope = (
        EntityMapping.org_id == company.org_id,
        EntityMapping.realm_id == company.realm_id,
        EntityMapping.kind == kind,
        EntityMapping.archived_at.is_(None),
    )
    if kind is MappingKind.CLIENT:
        taken = await session.scalar(
            select(EntityMapping.id).where(*scope, EntityMapping.qbo_id == survivor)
        )
        if taken is not None:
            # One customer stands for one client: the survivor's own client keeps it, the other
            # is matched again on its next push.
            result = await session.execute(
                delete(EntityMapping).where(*scope, EntityMapping.qbo_id == merged_away)
            )
            return int(result.rowcount or 0)
    result = await session.execute(
        update(EntityMapping)
        .where(*scope, EntityMapping.qbo_id == merged_away)
        .values(qbo_id=survivor, qbo_name=None)
    )
    if kind is MappingKind.CLIENT:
        await session.execute(
            update(SyncRecord)
            .where(
                SyncRecord.org_id == company.org_id,
                SyncRecord.kind == RecordKind.CLIENT,
                SyncRecord.realm_id == company.realm_id,
                SyncRecord.qbo_id == merged_away,
            )
            .values(qbo_id=survivor)
        )
    if entity == "Account":
        await _repoint_settings(session, company.org_id, merged_away, survivor)
    return int(result.rowcount or 0)


async def _clear(session: Any, company: Company, entity: str, entity_id: str) -> int:
    result = await session.execute(
        delete(EntityMapping).where(
            EntityMapping.org_id == company.org_id,
            EntityMapping.realm_id == company.realm_id,
            EntityMapping.kind == KINDS[entity],
            EntityMapping.archived_at.is_(None),
            EntityMapping.qbo_id == entity_id,
        )
    )
    cleared = int(result.rowcount or 0)
    if entity == "Account":
        cleared += await _repoint_settings(session, company.org_id, entity_id, None)
    return cleared


async def _repoint_settings(
    session: Any, org_id: str, account_id: str, replacement: str | None
) -> int:
    settings = await session.get(SyncSettings, org_id, with_for_update=True)
    if settings is None:
        return 0
    changed = 0
    for column in ACCOUNT_SETTINGS:
        if getattr(settings, column) == account_id:
            setattr(settings, column, replacement)
            changed += 1
    return changed
