"""Store each QuickBooks change once and queue a pull for each org whose company changed.

Nothing here calls Intuit: the payload carries ids only and the pull job reads the entities,
so QuickBooks is answered well inside its 3 seconds (P2).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.models import Connection, ConnectionStatus, QboWebhookEvent
from qbsync.models.base import utcnow
from qbsync.qbo.webhooks import EntityChange
from qbsync.sync.pull_schedule import FOLLOWED_ENTITIES, schedule_pull
from qbsync.webhooks.schemas import WebhookReceipt

# Reference lists kept in the shared cache that a change makes stale.
CACHED_LISTS = frozenset({"Account", "Item", "Customer", "Vendor", "Employee"})
# Rows per INSERT: well under Postgres' 32,767 parameters per statement.
INSERT_CHUNK = 1000


async def store(session: AsyncSession, changes: Sequence[EntityChange]) -> WebhookReceipt:
    """One row per new change (a redelivery adds nothing); pulls are queued after commit."""
    unique = {change.event_id: change for change in changes}
    if not unique:
        return WebhookReceipt(changes=len(changes), stored=0, duplicates=len(changes))
    orgs = await _connected_orgs(session, {change.realm_id for change in unique.values()})
    now = utcnow()
    rows = []
    for event_id in sorted(unique):
        change = unique[event_id]
        org_id = orgs.get(change.realm_id)
        outcome = _settled_at_once(change, org_id)
        rows.append(
            {
                "id": uuid.uuid4(),
                "event_id": event_id,
                "realm_id": change.realm_id,
                # The parser refused anything longer than these columns.
                "entity": change.entity,
                "entity_id": change.entity_id,
                "operation": change.operation,
                "deleted_id": change.deleted_id,
                "occurred_at": change.occurred_at,
                "received_at": now,
                "org_id": org_id,
                "processed_at": now if outcome else None,
                "outcome": outcome,
            }
        )
    # Few statements for the whole delivery, in event-id order: two deliveries of the same
    # changes wait for each other rather than deadlock.
    stored: set[str] = set()
    for start in range(0, len(rows), INSERT_CHUNK):
        stored.update(
            await session.scalars(
                insert(QboWebhookEvent)
                .values(rows[start : start + INSERT_CHUNK])
                .on_conflict_do_nothing(index_elements=[QboWebhookEvent.event_id])
                .returning(QboWebhookEvent.event_id)
            )
        )
    waiting = {
        str(row["org_id"]) for row in rows if row["event_id"] in stored and row["outcome"] is None
    }
    for org_id in sorted(waiting):
        schedule_pull(session, org_id)
    return WebhookReceipt(
        changes=len(changes), stored=len(stored), duplicates=len(changes) - len(stored)
    )


def stale_lists(changes: Sequence[EntityChange]) -> set[tuple[str, str]]:
    """(realm, list) pairs whose cached reference list a delivery made stale."""
    return {(change.realm_id, change.entity) for change in changes if change.entity in CACHED_LISTS}


def _settled_at_once(change: EntityChange, org_id: str | None) -> str | None:
    """Changes no pull will ever read are stored already settled, so nothing retries them."""
    if org_id is None:
        return "realm_not_connected"
    if change.entity not in FOLLOWED_ENTITIES or change.operation == "Emailed":
        return "not_followed"
    return None


async def _connected_orgs(session: AsyncSession, realm_ids: set[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Connection.realm_id, Connection.org_id).where(
            Connection.realm_id.in_(sorted(realm_ids)),
            Connection.status == ConnectionStatus.CONNECTED,
        )
    )
    return {str(row[0]): str(row[1]) for row in rows}
