"""P4's mechanism: one company's push jobs never take more than its share of the workers, so a
backlog of its records cannot hold another company's single invoice behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select

from qbsync.models import RecordStatus, SyncRecord
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync import schedule
from qbsync.sync.tasks import push_company
from qbsync.worker import create_worker
from tests.conftest import TokenFactory, drain_worker
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import UK_REALM
from tests.sync.backlog import invoice_backlog, job_context

JOBS = 8
CAP = 2


async def _drain(
    settings: Settings, database_url: str, redis_url: str, live: CommittedApp, redis: ArqRedis
) -> None:
    """A real worker until nothing is ready, without the crons: what it pushes, the jobs
    themselves asked for."""
    worker = create_worker(
        settings,
        database_url,
        redis_url,
        database=live.db,
        cron_jobs=[],
        poll_delay=0.05,
        handle_signals=False,
    )
    await drain_worker(worker, redis, limit_seconds=60)


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    async with committed_app(settings, database_url, redis, prefix, pool_size=4) as running:
        yield running


async def test_one_companys_jobs_beyond_its_share_end_at_once_and_lose_nothing(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    database_url: str,
    redis_url: str,
    redis: ArqRedis,
    prefix: str,
) -> None:
    """P4: eight push jobs of one company start together (its events came in many deliveries);
    only `jobs_per_company` of them push, the rest end without holding a worker's slot, and the
    running ones ask for the next job, so every invoice still reaches QuickBooks once."""
    org_id = f"{prefix}p4cap"
    await invoice_backlog(live, simulator, make_token, settings, org_id, 12)
    # Slow enough that every job has started before the first one settles.
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.3, times=10_000))
    settings.push.slice_size = 2
    settings.push.jobs_per_company = CAP
    ctx = job_context(live, settings)

    endings = await asyncio.gather(*(push_company(ctx, org_id) for _ in range(JOBS)))

    assert sorted(endings) == ["enough_running"] * (JOBS - CAP) + ["pushed"] * CAP, endings
    simulator.admin.clear_faults()
    await _drain(settings, database_url, redis_url, live, redis)
    async with live.db.sessions() as session:
        statuses = list(
            await session.scalars(select(SyncRecord.status).where(SyncRecord.org_id == org_id))
        )
    assert statuses.count(RecordStatus.SYNCED) == 12, statuses
    numbers = [row.get("DocNumber") for row in simulator.admin.documents(UK_REALM, "Invoice")]
    assert sorted(n for n in numbers if n and n.startswith("INV-inv_")) == sorted(
        f"INV-inv_{n}" for n in range(12)
    )


async def test_a_dead_workers_jobs_give_their_places_back(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """P4/R4: a worker killed mid-push never says its jobs ended; their places lapse after
    their last heartbeat, and the company's next job pushes instead of waiting for them."""
    org_id = f"{prefix}p4dead"
    await invoice_backlog(live, simulator, make_token, settings, org_id, 2)
    settings.push.jobs_per_company = CAP
    monkeypatch.setattr(schedule, "RUNNING_HOLD_SECONDS", 2.0)
    # The dead jobs' heartbeats never come: their worker is gone.
    monkeypatch.setattr(schedule, "HEARTBEAT_SECONDS", 3600.0)
    ctx = job_context(live, settings)
    async with contextlib.AsyncExitStack() as dead:
        for _ in range(CAP):
            await dead.enter_async_context(schedule.pushing(live.queue, org_id, CAP))
        assert await push_company(ctx, org_id) == "enough_running"
        await asyncio.sleep(2.5)
        assert await push_company(ctx, org_id) == "pushed"
    numbers = [row.get("DocNumber") for row in simulator.admin.documents(UK_REALM, "Invoice")]
    assert {"INV-inv_0", "INV-inv_1"} <= set(numbers)


async def test_a_running_job_keeps_its_place_for_as_long_as_it_runs(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """P4: a push longer than a place's hold (a slice waiting on QuickBooks' limits) keeps its
    place by its heartbeat, so no extra job of the company runs beside it meanwhile."""
    org_id = f"{prefix}p4alive"
    await invoice_backlog(live, simulator, make_token, settings, org_id, 1)
    settings.push.jobs_per_company = 1
    monkeypatch.setattr(schedule, "RUNNING_HOLD_SECONDS", 1.0)
    monkeypatch.setattr(schedule, "HEARTBEAT_SECONDS", 0.2)
    ctx = job_context(live, settings)
    async with schedule.pushing(live.queue, org_id, 1):
        await asyncio.sleep(2.0)
        assert await push_company(ctx, org_id) == "enough_running"
    assert await push_company(ctx, org_id) == "pushed"


async def test_the_job_that_leaves_asks_for_the_one_turned_away(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    database_url: str,
    redis_url: str,
    redis: ArqRedis,
    prefix: str,
) -> None:
    """P4/R5: a job turned away while the company's one place was taken (its invoice came in
    while another push ran, one that had already settled) is not forgotten: the running job,
    leaving, asks for another, which pushes the invoice. No cron is needed."""
    org_id = f"{prefix}p4wake"
    await invoice_backlog(live, simulator, make_token, settings, org_id, 1)
    settings.push.jobs_per_company = 1
    async with schedule.pushing(live.queue, org_id, 1) as running:
        assert running == 1
        # The delivery's push job is the one turned away, run here by hand: out of the queue.
        await redis.delete(f"{settings.redis.queue_name}:coalesce:push:{org_id}")
        await redis.delete(settings.redis.queue_name)
        assert await push_company(job_context(live, settings), org_id) == "enough_running"
    await _drain(settings, database_url, redis_url, live, redis)
    async with live.db.sessions() as session:
        statuses = list(
            await session.scalars(select(SyncRecord.status).where(SyncRecord.org_id == org_id))
        )
    assert statuses == [RecordStatus.SYNCED]
