"""The stored QuickBooks changes an org's pull job takes, a slice at a time, under a lease."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, QboWebhookEvent
from qbsync.models.base import utcnow
from qbsync.queue import JobQueue, unit_of_work
from qbsync.sync.changes import Change
from qbsync.sync.pull_schedule import schedule_pull


@dataclass(frozen=True)
class Taken:
    id: uuid.UUID
    change: Change


def _waiting(org_id: str) -> ColumnElement[bool]:
    now = utcnow()
    return (
        (QboWebhookEvent.org_id == org_id)
        & QboWebhookEvent.processed_at.is_(None)
        & or_(QboWebhookEvent.claimed_until.is_(None), QboWebhookEvent.claimed_until <= now)
    )


async def claim(
    db: Database, org_id: str, realm_id: str, limit: int, lease: timedelta
) -> list[Taken]:
    """Up to `limit` waiting changes of the org's current company, oldest first, now this
    job's until the lease ends (a job that dies leaves them to the next)."""
    async with db.sessions() as session:
        rows = list(
            await session.scalars(
                select(QboWebhookEvent)
                .where(_waiting(org_id), QboWebhookEvent.realm_id == realm_id)
                .order_by(QboWebhookEvent.occurred_at, QboWebhookEvent.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        until = utcnow() + lease
        for row in rows:
            row.claimed_until = until
        taken = [
            Taken(
                row.id,
                Change(row.entity, row.entity_id, row.operation, row.occurred_at, row.deleted_id),
            )
            for row in rows
        ]
        await session.commit()
    return taken


async def release(db: Database, ids: list[uuid.UUID]) -> None:
    """Hand the changes back at once (the pull failed before applying them)."""
    async with db.sessions() as session:
        await session.execute(
            update(QboWebhookEvent).where(QboWebhookEvent.id.in_(ids)).values(claimed_until=None)
        )
        await session.commit()


async def done(
    db: Database, queue: JobQueue, org_id: str, ids: list[uuid.UUID], *, more: bool
) -> None:
    async with unit_of_work(db, queue) as session:
        await session.execute(
            update(QboWebhookEvent)
            .where(QboWebhookEvent.id.in_(ids))
            .values(processed_at=utcnow(), outcome="applied", claimed_until=None)
        )
        if more:
            schedule_pull(session, org_id)


async def waiting_orgs(session: AsyncSession, limit: int = 1000) -> list[str]:
    """Connected orgs with stored changes no pull holds (never taken, or the puller died)."""
    now = utcnow()
    rows = await session.scalars(
        select(QboWebhookEvent.org_id)
        .join(
            Connection,
            (Connection.org_id == QboWebhookEvent.org_id)
            & (Connection.realm_id == QboWebhookEvent.realm_id),
        )
        .where(
            Connection.status == ConnectionStatus.CONNECTED,
            QboWebhookEvent.processed_at.is_(None),
            or_(QboWebhookEvent.claimed_until.is_(None), QboWebhookEvent.claimed_until <= now),
        )
        .distinct()
        .limit(limit)
    )
    return [str(org_id) for org_id in rows]


async def has_waiting(session: AsyncSession, org_id: str, realm_id: str) -> bool:
    """Changes of the org's current company wait (an old company's are never pulled)."""
    waiting = _waiting(org_id) & (QboWebhookEvent.realm_id == realm_id)
    return bool(await session.scalar(select(exists().where(waiting))))
