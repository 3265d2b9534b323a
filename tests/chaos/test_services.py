"""The parts qbsync stands on failing mid-load: Redis flushed or restarted (R5), Postgres
restarted (R1), the platform's receiver down (R11)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.chaos.harness import Case, Size, chaos_case
from tests.chaos.processes import Stack
from tests.chaos.results import Matrix


async def _some_synced(case: Case) -> None:
    """Mid-load: the first records are through, the rest are not (or the load is small)."""

    async def started() -> bool:
        statuses = await case.statuses()
        return bool(statuses.get("synced") or statuses.get("in_progress"))

    await case.until(started, 30, "the push to start")


async def test_r5_redis_flushed_mid_load_loses_no_work(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R5: FLUSHALL (the queue, the limiter, the caches) mid-load, once with the rest of the
    load's jobs waiting in the queue (the worker stopped meanwhile), so only the re-drive from
    Postgres can find them."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r5_redis_flushall",
        quality="R5",
        fault=f"FLUSHALL x{size.repeats + 1} mid-load, queued jobs included",
    ) as case:
        events = len(case.load.events())
        await case.send_load(last=events // 2)
        for _ in range(size.repeats):
            await _some_synced(case)
            await asyncio.to_thread(stack.redis.flushall)
        await asyncio.to_thread(stack.stop_workers)
        await case.send_load(first=events // 2)
        queued = await asyncio.to_thread(stack.redis.queued, stack.settings.redis.queue_name)
        await asyncio.to_thread(stack.redis.flushall)
        case.notes.append(f"queued jobs flushed with the worker stopped: {queued}")


async def _outages(
    case: Case, size: Size, stop: Callable[[], object], start: Callable[[], object]
) -> None:
    """Half the load, then `size.repeats` outages once some records are synced; the other half
    of the events arrives during the first outage."""
    events = len(case.load.events())
    await case.send_load(last=events // 2)
    sending: asyncio.Task[None] | None = None
    for round_ in range(size.repeats):
        await _some_synced(case)
        await asyncio.to_thread(stop)
        if round_ == 0:
            sending = asyncio.create_task(case.send_load(first=events // 2))
        await asyncio.sleep(size.outage_seconds)
        await asyncio.to_thread(start)
    assert sending is not None
    await sending


async def test_r5_redis_restarted_mid_load_loses_no_work(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R5: Redis killed and started again, empty, while events arrive: the API still stores
    them (202) or asks for a retry (503), and every record is pushed once."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r5_redis_restart",
        quality="R5",
        fault=f"Redis killed and restarted empty x{size.repeats}, down {size.outage_seconds} s",
    ) as case:
        await _outages(case, size, stack.redis.stop, stack.redis.start)
        died = sum(1 for worker in stack.workers if worker.process.poll() is not None)
        if died:
            case.notes.append(f"{died} worker(s) exited with Redis gone and were restarted")


async def test_r1_postgres_restarted_mid_load_acknowledges_only_what_is_stored(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R1: Postgres stopped (immediate: every backend killed) while events arrive, then started:
    the API answers 503 (never a 2xx for what it did not store), the sender retries, and every
    record is pushed once."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r1_postgres_restart",
        quality="R1",
        fault=f"Postgres stopped x{size.repeats} for {size.outage_seconds} s mid-load",
    ) as case:
        await _outages(case, size, stack.postgres.stop, stack.postgres.start)


async def test_r11_the_platform_receiver_down_loses_no_event(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R11: the platform answers 503 to every delivery for a while; the outbound events are
    retried with backoff and each arrives, under one id per event."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r11_receiver_down",
        quality="R11",
        fault=f"platform receiver 503 for {size.outage_seconds:.0f} s",
    ) as case:
        stack.receiver.down_for_seconds(size.outage_seconds)
        refused_before = stack.receiver.refused
        await case.send_load()

        async def refused() -> bool:
            return stack.receiver.refused > refused_before

        await case.until(refused, 30, "a delivery to be refused")
        case.notes.append("deliveries refused, then retried")
