"""The platform hears once per company per UTC month that its metered reads reached 80 % of the
budget (P7): from the job the call counter enqueues at the crossing, or from the
reconciliation's `warn_if_over_budget` when that job was lost. Real Redis, Postgres and arq."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from pydantic import ValidationError
from sqlalchemy import select
from structlog.testing import capture_logs

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.read_budget import READ_BUDGET_JOB, warn_if_over_budget
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, DeliveryStatus, OutboundEvent
from qbsync.observability import CompanyCallCounter
from qbsync.qbo import ApiCall, Customer
from qbsync.queue import JobQueue
from qbsync.settings import DatabaseSettings, Settings
from qbsync.worker import create_worker
from tests.conftest import drain_worker
from tests.connections.committed import org_prefix, remove_orgs
from tests.qbo.conftest import API, FakeTokens

EVENTS_URL = "http://platform.test/events"
BUDGET = 10  # the warning line is the 8th metered call


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    """Each test its own Redis keys and queue: one test's counts are never another's."""
    own = f"{key_prefix}:{uuid.uuid4().hex[:8]}"
    return Settings(
        env="test",
        redis={"queue_name": f"{own}:queue", "key_prefix": own},
        platform={"events_url": EVENTS_URL},
        intuit={"api_base_url": API, "monthly_coreplus_budget": BUDGET},
    )


@pytest.fixture
def realm() -> str:
    return f"93{uuid.uuid4().int % 10**14:014d}"


@pytest.fixture
def queue(redis: ArqRedis, settings: Settings) -> JobQueue:
    return JobQueue(redis, settings.redis.queue_name)


def _counter(
    redis: ArqRedis, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> CompanyCallCounter:
    return CompanyCallCounter(
        redis, settings.redis.key_prefix, monthly_coreplus_budget=BUDGET, clock=clock
    )


async def _reads(counter: CompanyCallCounter, realm_id: str, count: int) -> None:
    for _ in range(count):
        await counter.record(ApiCall("GET query", metered=True, realm_id=realm_id))


async def _connect(
    db: Database,
    org_id: str,
    realm_id: str,
    status: ConnectionStatus = ConnectionStatus.CONNECTED,
) -> None:
    async with db.sessions() as session:
        session.add(
            Connection(org_id=org_id, realm_id=realm_id, status=status, company_name="Budget Ltd")
        )
        await session.commit()


async def _events(db: Database, org_id: str) -> list[OutboundEvent]:
    async with db.sessions() as session:
        rows = await session.scalars(
            select(OutboundEvent)
            .where(
                OutboundEvent.org_id == org_id,
                OutboundEvent.type == "quickbooks.connection.updated",
            )
            .order_by(OutboundEvent.created_at)
            .execution_options(populate_existing=True)
        )
        return list(rows)


async def _warnings_sent(db: Database, org_id: str) -> list[dict[str, Any]]:
    return [dict(event.payload) for event in await _events(db, org_id)]


async def _warned_month(db: Database, org_id: str) -> str | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(Connection.read_budget_warned_month).where(Connection.org_id == org_id)
        )


def _expected(realm_id: str, coreplus: int, month: str) -> dict[str, Any]:
    return {
        "status": "connected",
        "realm_id": realm_id,
        "company_name": "Budget Ltd",
        "warnings": [
            {
                "code": "read_budget_80",
                "message": (
                    f"This QuickBooks company has used {coreplus} of its {BUDGET} metered reads "
                    f"for {month} (80 % or more). Syncing goes on, but Intuit stops answering "
                    "reads once the app's monthly allowance is spent, until the next month."
                ),
                "coreplus_calls": coreplus,
                "budget": BUDGET,
                "month": month,
            }
        ],
    }


async def test_crossing_80_percent_sends_one_warning_however_many_calls_cross_at_once(
    db: Database,
    settings: Settings,
    redis: ArqRedis,
    redis_url: str,
    database_url: str,
    queue: JobQueue,
    realm: str,
) -> None:
    await _connect(db, "org_1", realm)
    month = datetime.now(UTC).strftime("%Y-%m")
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/v3/company/{realm}/customer/1").respond(json={"Customer": {"Id": "1"}})
        mock.post(EVENTS_URL).respond(204)
        async with httpx.AsyncClient() as http:
            # The app's own wiring: the shared limiter, the counter and its enqueue.
            intuit = IntuitAccess.build(settings, http, redis)
            qbo = intuit.client(realm, FakeTokens())
            answers = await asyncio.gather(*(qbo.get(Customer, "1") for _ in range(40)))
        assert [customer.id for customer in answers] == ["1"] * 40
        # One job, queued by the one call that saw the 8th metered count.
        waiting = await redis.zrange(settings.redis.queue_name, 0, -1)
        assert [job_id.decode() for job_id in waiting] == [f"{READ_BUDGET_JOB}:{realm}"]
        worker = create_worker(
            settings,
            database_url,
            redis_url,
            database=db,
            max_jobs=1,
            poll_delay=0.05,
            handle_signals=False,
            cron_jobs=[],
        )
        await drain_worker(worker, redis)
        delivered = [call.request for call in mock.calls if str(call.request.url) == EVENTS_URL]

    [event] = await _events(db, "org_1")
    assert event.payload == _expected(realm, 40, month)
    # Ordered with the org's other connection events, and delivered by the worker.
    assert event.entity_key == "connection"
    assert event.status is DeliveryStatus.DELIVERED
    assert len(delivered) == 1
    assert await _warned_month(db, "org_1") == month
    # The reconciliation's check, run afterwards, has nothing left to say this month.
    assert not await warn_if_over_budget(db, queue, intuit.calls, "org_1", realm)
    assert len(await _warnings_sent(db, "org_1")) == 1


@pytest.fixture
async def pooled(database_url: str) -> AsyncIterator[tuple[Database, str]]:
    """A real pool that commits, for checks racing each other; the test's orgs are removed."""
    prefix = org_prefix()
    started = datetime.now(UTC)
    db = Database.connect(database_url, DatabaseSettings(pool_size=6, max_overflow=0))
    try:
        yield db, prefix
    finally:
        await remove_orgs(db, prefix, started)
        await db.dispose()


async def test_checks_racing_each_other_send_one_warning(
    pooled: tuple[Database, str], settings: Settings, redis: ArqRedis, queue: JobQueue, realm: str
) -> None:
    db, prefix = pooled
    org_id = f"{prefix}1"
    await _connect(db, org_id, realm)
    counter = _counter(redis, settings)
    await _reads(counter, realm, 8)

    sent = await asyncio.gather(
        *(warn_if_over_budget(db, queue, counter, org_id, realm) for _ in range(6))
    )

    assert sorted(sent) == [False] * 5 + [True]
    assert len(await _warnings_sent(db, org_id)) == 1


async def test_the_next_month_warns_again(
    db: Database, settings: Settings, redis: ArqRedis, queue: JobQueue, realm: str
) -> None:
    await _connect(db, "org_1", realm)
    clock = Clock(datetime(2031, 1, 31, 23, 30, tzinfo=UTC))
    counter = _counter(redis, settings, clock)
    await _reads(counter, realm, 9)
    assert await warn_if_over_budget(db, queue, counter, "org_1", realm)
    assert not await warn_if_over_budget(db, queue, counter, "org_1", realm)

    clock.now = datetime(2031, 2, 1, 0, 5, tzinfo=UTC)
    # A new month starts from nothing: no warning until its own 80 %.
    assert not await warn_if_over_budget(db, queue, counter, "org_1", realm)
    await _reads(counter, realm, 8)
    assert await warn_if_over_budget(db, queue, counter, "org_1", realm)

    # A check still reading January (a clock behind) never warns about it again.
    clock.now = datetime(2031, 1, 31, 23, 59, tzinfo=UTC)
    assert not await warn_if_over_budget(db, queue, counter, "org_1", realm)

    assert await _warnings_sent(db, "org_1") == [
        _expected(realm, 9, "2031-01"),
        _expected(realm, 8, "2031-02"),
    ]
    assert await _warned_month(db, "org_1") == "2031-02"


async def test_under_the_line_or_for_another_org_nothing_is_sent(
    db: Database, settings: Settings, redis: ArqRedis, queue: JobQueue, realm: str
) -> None:
    await _connect(db, "org_1", realm)
    await _connect(db, "org_2", f"94{realm[2:]}")
    counter = _counter(redis, settings)
    await _reads(counter, realm, 7)
    assert not await warn_if_over_budget(db, queue, counter, "org_1", realm)

    await _reads(counter, realm, 1)
    # The realm's counts are past the line, but org_2 is not connected to that company.
    assert not await warn_if_over_budget(db, queue, counter, "org_2", realm)
    assert await _warnings_sent(db, "org_2") == []
    assert await _warnings_sent(db, "org_1") == []
    assert await _warned_month(db, "org_1") is None


async def test_a_disconnected_company_is_not_warned(
    db: Database, settings: Settings, redis: ArqRedis, queue: JobQueue, realm: str
) -> None:
    await _connect(db, "org_1", realm, ConnectionStatus.DISCONNECTED)
    counter = _counter(redis, settings)
    await _reads(counter, realm, 8)
    assert not await warn_if_over_budget(db, queue, counter, "org_1", realm)
    assert await _warnings_sent(db, "org_1") == []


async def test_redis_down_during_the_check_is_logged_and_tried_again_next_run(
    db: Database, queue: JobQueue, realm: str
) -> None:
    await _connect(db, "org_1", realm)
    down = ArqRedis.from_url("redis://127.0.0.1:1/0")
    try:
        with capture_logs() as logs:
            sent = await warn_if_over_budget(
                db, queue, CompanyCallCounter(down, "qbsync-test"), "org_1", realm
            )
    finally:
        await down.aclose()
    assert not sent
    [line] = [entry for entry in logs if entry["event"] == "read_budget_not_checked"]
    assert line == {
        "event": "read_budget_not_checked",
        "log_level": "warning",
        "realm_id": realm,
        "error": "ConnectionError",
    }


def test_the_budget_is_a_setting_of_at_least_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBSYNC_INTUIT__MONTHLY_COREPLUS_BUDGET", "500")
    assert Settings(env="test").intuit.monthly_coreplus_budget == 500
    monkeypatch.delenv("QBSYNC_INTUIT__MONTHLY_COREPLUS_BUDGET")
    assert Settings(env="test").intuit.monthly_coreplus_budget == 20_000
    with pytest.raises(ValidationError, match="monthly_coreplus_budget"):
        Settings(env="test", intuit={"monthly_coreplus_budget": 0})
