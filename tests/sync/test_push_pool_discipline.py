"""R13 for the push: more concurrent push jobs than pooled connections, each calling Intuit many
times (reads, customer and item creates, batches), and no job ever holds a pooled connection
while Intuit answers, or checks out a second one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from qbsync.models import RecordStatus, SyncRecord
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync.tasks import push_company
from tests.conftest import TokenFactory
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import UK_REALM
from tests.sync.backlog import invoice_backlog, job_context

POOL = 2
JOBS = 4 * POOL


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    async with committed_app(settings, database_url, redis, prefix, pool_size=POOL) as running:
        yield running


async def test_concurrent_push_jobs_hold_no_connection_while_intuit_answers(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
) -> None:
    org_id = f"{prefix}r13push"
    await invoice_backlog(live, simulator, make_token, settings, org_id, JOBS * 2)
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.05, times=10_000))
    settings.push.slice_size = 2
    # Every job at once, none turned away: this is about the pool, not the per-company cap.
    settings.push.jobs_per_company = JOBS
    ctx = job_context(live, settings)
    live.guard.violations.clear()

    endings = await asyncio.gather(*(push_company(ctx, org_id) for _ in range(JOBS)))

    assert endings.count("pushed") >= 2, endings
    assert live.guard.requests_seen >= JOBS
    assert live.guard.violations == []
    async with live.db.sessions() as session:
        statuses = list(
            await session.scalars(select(SyncRecord.status).where(SyncRecord.org_id == org_id))
        )
    assert statuses.count(RecordStatus.SYNCED) == JOBS * 2, statuses
    numbers = [row.get("DocNumber") for row in simulator.admin.documents(UK_REALM, "Invoice")]
    assert len([n for n in numbers if n and n.startswith("INV-inv_")]) == JOBS * 2
