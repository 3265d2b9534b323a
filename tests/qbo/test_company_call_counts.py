"""Every Intuit call is counted per company as core or coreplus, in Prometheus and in Redis per
UTC day and month, and the call that brings a month's CorePlus count to 80 % of the budget is
seen by exactly one caller, however many cross at once (P7). Redis is the real one."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import partial

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from qbsync.connections.read_budget import enqueue_read_budget_warning
from qbsync.observability import (
    MONTH_COUNT_SECONDS,
    CallsInMonth,
    CallsOnDay,
    CompanyCallCounter,
    count_intuit_call,
    read_budget_warn_at,
)
from qbsync.qbo import ApiCall, Customer, QboClient
from qbsync.queue import JobQueue
from tests.qbo.conftest import API, FakeTokens, RecordingLimiter, make_config


def _realm() -> str:
    """A company no other test counted for, so its registry samples and keys start at zero."""
    return f"93{uuid.uuid4().int % 10**14:014d}"


def _read(realm_id: str) -> ApiCall:
    return ApiCall("GET customer", metered=True, realm_id=realm_id)


def _write(realm_id: str) -> ApiCall:
    return ApiCall("POST customer", metered=False, realm_id=realm_id)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Crossings:
    """Stands in for the enqueue: the realms whose crossing this process was told of."""

    def __init__(self) -> None:
        self.realms: list[str] = []

    async def __call__(self, realm_id: str) -> None:
        # A real enqueue awaits Redis: give the other calls in flight their turn meanwhile.
        await asyncio.sleep(0)
        self.realms.append(realm_id)


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return f"{key_prefix}:{uuid.uuid4().hex[:8]}"


async def test_each_call_is_counted_for_its_company_in_prometheus() -> None:
    us, uk = _realm(), _realm()
    config = replace(make_config(), call_observer=count_intuit_call)
    with respx.mock() as mock:
        for realm in (us, uk):
            company = f"{API}/v3/company/{realm}"
            mock.get(f"{company}/customer/1").respond(json={"Customer": {"Id": "1"}})
            mock.post(f"{company}/customer").respond(json={"Customer": {"Id": "2"}})
        async with httpx.AsyncClient() as http:
            for realm, reads in ((us, 3), (uk, 1)):
                qbo = QboClient(
                    http, config, realm_id=realm, tokens=FakeTokens(), limiter=RecordingLimiter()
                )
                for _ in range(reads):
                    await qbo.get(Customer, "1")
                await qbo.create(Customer(display_name="A"), requestid=uuid.uuid4().hex)
    name = "qbsync_intuit_company_calls_total"
    assert _sample(name, realm_id=us, kind="coreplus") == 3
    assert _sample(name, realm_id=us, kind="core") == 1
    assert _sample(name, realm_id=uk, kind="coreplus") == 1
    assert _sample(name, realm_id=uk, kind="core") == 1


async def test_each_call_is_counted_for_its_company_by_day_and_month_in_redis(
    redis: ArqRedis, prefix: str
) -> None:
    clock = Clock(datetime(2031, 3, 14, 12, tzinfo=UTC))
    counter = CompanyCallCounter(redis, prefix, clock=clock)
    us, uk = _realm(), _realm()
    for call in (_read(us), _read(us), _write(us), _read(uk)):
        await counter.record(call)
    clock.now = datetime(2031, 3, 15, 0, 0, 1, tzinfo=UTC)
    await counter.record(_read(us))

    assert await counter.in_month(us) == CallsInMonth(
        month="2031-03", core=1, coreplus=3, budget=20_000, used_ratio=3 / 20_000
    )
    assert (await counter.in_month(uk)).coreplus == 1
    # Any day names its month; the next month has nothing yet.
    assert (await counter.in_month(us, date(2031, 3, 31))).coreplus == 3
    assert (await counter.in_month(us, date(2031, 4, 1))).coreplus == 0
    # The daily numbers are kept beside the monthly ones, from the same calls.
    assert await counter.on_day(us, date(2031, 3, 14)) == CallsOnDay(
        day=date(2031, 3, 14), core=1, coreplus=2
    )
    assert await counter.on_day(us) == CallsOnDay(day=date(2031, 3, 15), core=0, coreplus=1)
    # Kept about 40 days after the month's last call, not forever.
    ttl = await redis.ttl(counter.month_key(us, date(2031, 3, 1)))
    assert MONTH_COUNT_SECONDS - 60 < ttl <= MONTH_COUNT_SECONDS


def test_the_warning_line_is_80_percent_rounded_up_to_a_whole_call() -> None:
    assert [read_budget_warn_at(budget) for budget in (1, 7, 10, 20_000)] == [1, 6, 8, 16_000]


async def test_one_caller_sees_the_crossing_however_many_cross_at_once(
    redis_url: str, prefix: str
) -> None:
    realm = _realm()
    crossings = Crossings()
    # Four processes' worth of Redis clients, fifty calls in flight at once; the line is at 8.
    pools = [ArqRedis.from_url(redis_url) for _ in range(4)]
    counters = [
        CompanyCallCounter(pool, prefix, monthly_coreplus_budget=10, on_budget_crossed=crossings)
        for pool in pools
    ]
    before = _sample("qbsync_read_budget_warnings_total", realm_id=realm)
    try:
        with capture_logs() as logs:
            await asyncio.gather(
                *(counters[n % 4].record(_read(realm)) for n in range(40)),
                *(counters[n % 4].record(_write(realm)) for n in range(10)),
            )
        counts = await counters[0].in_month(realm)
    finally:
        for pool in pools:
            await pool.aclose()

    assert crossings.realms == [realm]
    assert (counts.coreplus, counts.core) == (40, 10)
    assert counts.past_warning_line
    assert _sample("qbsync_read_budget_warnings_total", realm_id=realm) == before + 1
    [line] = [entry for entry in logs if entry["event"] == "read_budget_80_reached"]
    assert line == {
        "event": "read_budget_80_reached",
        "log_level": "warning",
        "realm_id": realm,
        "month": counts.month,
        "coreplus_calls": 8,
        "budget": 10,
    }


async def test_the_next_month_counts_afresh_and_crosses_again(redis: ArqRedis, prefix: str) -> None:
    realm = _realm()
    clock = Clock(datetime(2031, 1, 31, 23, 59, tzinfo=UTC))
    crossings = Crossings()
    counter = CompanyCallCounter(
        redis, prefix, monthly_coreplus_budget=5, on_budget_crossed=crossings, clock=clock
    )
    for _ in range(6):
        await counter.record(_read(realm))
    assert crossings.realms == [realm]

    clock.now = datetime(2031, 2, 1, tzinfo=UTC)
    assert (await counter.in_month(realm)).coreplus == 0
    for _ in range(4):
        await counter.record(_read(realm))
    assert crossings.realms == [realm, realm]
    assert (await counter.in_month(realm, date(2031, 1, 1))).coreplus == 6


async def test_writes_never_spend_the_read_budget(redis: ArqRedis, prefix: str) -> None:
    realm = _realm()
    crossings = Crossings()
    counter = CompanyCallCounter(
        redis, prefix, monthly_coreplus_budget=1, on_budget_crossed=crossings
    )
    await asyncio.gather(*(counter.record(_write(realm)) for _ in range(20)))
    counts = await counter.in_month(realm)
    assert (counts.core, counts.coreplus, counts.used_ratio) == (20, 0, 0.0)
    assert crossings.realms == []


async def test_a_lost_warning_enqueue_never_fails_the_quickbooks_call(
    redis: ArqRedis, prefix: str
) -> None:
    """The counts are made; the warning's job is not, and the reconciliation catches it up."""
    down = ArqRedis.from_url("redis://127.0.0.1:1/0")
    crossed = partial(enqueue_read_budget_warning, JobQueue(down, f"{prefix}:queue"))
    counter = CompanyCallCounter(
        redis, prefix, monthly_coreplus_budget=1, on_budget_crossed=crossed
    )
    config = replace(make_config(), call_recorder=counter.record)
    realm = _realm()
    try:
        with respx.mock() as mock, capture_logs() as logs:
            mock.get(f"{API}/v3/company/{realm}/customer/1").respond(json={"Customer": {"Id": "1"}})
            async with httpx.AsyncClient() as http:
                qbo = QboClient(
                    http, config, realm_id=realm, tokens=FakeTokens(), limiter=RecordingLimiter()
                )
                customer = await qbo.get(Customer, "1")
    finally:
        await down.aclose()
    assert customer.id == "1"
    assert (await counter.in_month(realm)).coreplus == 1
    [warning] = [entry for entry in logs if entry["event"] == "read_budget_warning_not_enqueued"]
    # The error's type only: its text could carry the Redis URL and its password.
    assert warning == {
        "event": "read_budget_warning_not_enqueued",
        "log_level": "warning",
        "realm_id": realm,
        "error": "ConnectionError",
    }
