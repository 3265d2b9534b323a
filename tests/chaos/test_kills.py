"""R4: the worker killed with SIGKILL at each step of a push, while a load is pushed; a worker
started at once in its place (as a supervisor would) recovers once the dead one's claims lapse,
and every document exists in QuickBooks exactly once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.chaos.harness import Case, Size, chaos_case
from tests.chaos.processes import Stack
from tests.chaos.results import Matrix

# How long QuickBooks holds the call the worker is killed in: less than a lease.
HOLD_SECONDS = 2.5


async def _documents(case: Case) -> int:
    total = 0
    for entity in ("Customer", "Invoice", "Bill"):
        total += len(await case.platform.sim.documents(case.realm_id, entity))
    return total


async def kill(case: Case, step: str, *options: str) -> None:
    """SIGKILL now, and a new worker (given `options`) straight away."""
    statuses = await case.statuses()
    assert case.stack.kill_workers() == 1, "one worker was running"
    case.notes.append(f"killed at {step} with {_shown(statuses)}")
    await case.restart_workers(*options)


def _shown(statuses: dict[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))


async def kill_in_call(
    case: Case, step: str, path: str, method: str | None = None, *options: str
) -> bool:
    """Hold the next matching call to QuickBooks and kill the worker while it waits; False when
    no such call came (the push had finished). QuickBooks finishes (or drops) the held call on
    its own time, within the dead worker's lease."""
    spec: dict[str, object] = {"kind": "delay", "delay_seconds": HOLD_SECONDS, "path": path}
    if method:
        spec["method"] = method
    await case.inject(**spec)
    try:
        await case.until(case.fault_taken, 20, f"a call to {path}")
    except AssertionError:
        await case.platform.sim.clear_faults()
        return False
    await asyncio.sleep(0.2)
    await kill(case, step, *options)
    return True


@pytest.mark.parametrize(
    ("step", "path", "method"),
    [
        ("first_call_after_claim", "", None),
        ("customer_create_in_flight", "customer$", "POST"),
        ("document_write_in_flight", "(invoice|bill|batch)$", "POST"),
    ],
)
async def test_r4_killed_while_quickbooks_holds_a_call(
    step: str, path: str, method: str | None, stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R4: killed during a call to QuickBooks: after claiming (the first call of the slice),
    while a customer's create is in flight, while the documents' write is in flight."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case=f"r4_kill_{step}",
        quality="R4",
        fault=f"SIGKILL x{size.repeats}: {step.replace('_', ' ')}",
    ) as case:
        sending = asyncio.create_task(case.send_load())
        for _ in range(size.repeats):
            if not await kill_in_call(case, step, case.path(path), method):
                break
        await sending
        assert case.notes, f"no call to kill in at {step}"


async def test_r4_killed_after_quickbooks_committed_before_our_commit(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R4: QuickBooks holds the documents; the worker is killed before it stores the outcome."""
    url = stack.postgres.url("qbsync_chaos").replace("postgresql+asyncpg", "postgresql")
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r4_kill_after_intuit_commit",
        quality="R4",
        fault=f"SIGKILL x{size.repeats}: QuickBooks committed, our commit not yet",
    ) as case:
        before = await _documents(case)
        blocker = await asyncpg.connect(url)
        try:
            for round_ in range(size.repeats):
                async with blocker.transaction():
                    await blocker.execute(
                        "SELECT id FROM connections WHERE org_id = $1 FOR UPDATE", case.org_id
                    )
                    if round_ == 0:
                        await case.send_load()

                    async def written(seen: int = before) -> bool:
                        return await _documents(case) > seen

                    try:
                        await case.until(written, 20, "documents in QuickBooks")
                    except AssertionError:
                        break
                    await asyncio.sleep(0.3)
                    await kill(case, "after_intuit_commit")
                    before = await _documents(case)
        finally:
            await blocker.close()


async def test_r4_killed_after_our_commit_before_the_platform_heard(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R4/R11: the outcome is stored and the event recorded; the worker dies while the
    platform's receiver holds the delivery. The event arrives later, under the same id."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r4_kill_before_platform_event",
        quality="R4",
        fault=f"SIGKILL x{size.repeats}: our commit done, delivery in flight",
    ) as case:
        receiver = stack.receiver
        receiver.hold_seconds = 1.5
        await case.send_load()
        for _ in range(size.repeats):

            async def delivering() -> bool:
                return receiver.holding > 0

            await case.until(delivering, 30, "a delivery to the platform")
            await kill(case, "delivery_in_flight")
        receiver.hold_seconds = 0.0
