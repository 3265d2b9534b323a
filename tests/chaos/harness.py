"""One case of the fault matrix: a fresh org on a company of its own, its load, the fault the
case drives, then the verdict from outside and a row of results."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from qbsync.simulator.faults import FaultSpec
from tests.chaos.load import Baseline, Load, judge, make_load, until_settled
from tests.chaos.platform import Platform
from tests.chaos.processes import Stack
from tests.chaos.results import Matrix, Row


@dataclass(frozen=True)
class Size:
    mode: str
    documents: int
    # Faults of a kind a case repeats (kills, flushes, restarts).
    repeats: int
    # Calls a 429 / 5xx / reset / token storm takes.
    storm: int
    outage_seconds: float
    lease_seconds: float
    settle_seconds: float


SHORT = Size("short", 6, 1, 4, 2.0, 4.0, 45.0)
FULL = Size("full", 200, 3, 40, 30.0, 10.0, 300.0)


@dataclass
class Case:
    stack: Stack
    platform: Platform
    load: Load
    realm_id: str
    size: Size
    notes: list[str] = field(default_factory=list)

    @property
    def org_id(self) -> str:
        return self.load.org_id

    def path(self, suffix: str = "") -> str:
        """A fault's path expression for this case's company only."""
        return f"/company/{self.realm_id}/{suffix}"

    async def inject(self, **spec: object) -> None:
        await self.platform.sim.inject(FaultSpec.model_validate(spec))

    async def send_load(self, first: int = 0, last: int | None = None) -> None:
        """The load's events (all, or a part of them), 20 to a delivery."""
        events = self.load.events()[first:last]
        for start in range(0, len(events), 20):
            await self.platform.send(events[start : start + 20])

    async def until(self, check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.org_id}: timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def fault_taken(self) -> bool:
        return await self.platform.sim.faults_left() == 0

    async def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in await self.platform.records(self.org_id):
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        return counts

    async def restart_workers(self, *options: str) -> None:
        """What a supervisor does after a worker died: start another at once."""
        await self.stack.ensure_workers(*options)


@contextlib.asynccontextmanager
async def chaos_case(
    stack: Stack,
    matrix: Matrix,
    size: Size,
    *,
    case: str,
    quality: str,
    fault: str,
) -> AsyncIterator[Case]:
    """Set up, let the test drive its fault and load, then settle, judge and record the row.
    The case fails on anything lost or twice, an intake answer the platform would not retry,
    or a connection no longer `connected`."""
    await stack.ensure_workers()
    realm_id = stack.take_realm()
    org_id = f"org_chaos_{case}_{uuid.uuid4().hex[:6]}"
    platform = Platform(stack.api_url, stack.simulator_url, stack.settings)
    stack.receiver.hold_seconds = 0.0
    try:
        await platform.set_up(org_id, realm_id)
        baseline = await Baseline.read(platform, realm_id)
        load = make_load(org_id, size.documents)
        started = time.monotonic()
        running = Case(stack, platform, load, realm_id, size)
        try:
            try:
                yield running
            except Exception as error:
                # The fault itself could not be driven through: still a row of the matrix.
                matrix.add(_row(case, quality, fault, size, time.monotonic() - started, error))
                raise
            await stack.ensure_workers()
            await until_settled(platform, stack.receiver, load, size.settle_seconds)
            seconds = time.monotonic() - started
            left = await platform.sim.faults_left()
        finally:
            await platform.sim.clear_faults()
            stack.receiver.hold_seconds = 0.0
        verdict = await judge(platform, stack.receiver, load, realm_id, baseline)
        status = await platform.connection_status(org_id)
        unexpected = platform.intake.unexpected
        if status != "connected":
            verdict.wrong(f"the connection is {status}")
        if unexpected:
            verdict.wrong(f"POST /v1/events answered {sorted(set(unexpected))}")
        refused = len(platform.intake.statuses) - platform.intake.statuses.count(202)
        notes = list(running.notes)
        if left:
            # The storm outlasted the push: fewer calls than it could take were made.
            notes.append(f"{left} injected faults never reached")
        if refused or platform.intake.transport_errors:
            notes.append(
                f"intake refused {refused} and was unreachable "
                f"{platform.intake.transport_errors} times, all retried"
            )
        clean = not verdict.problems
        matrix.add(
            Row(
                case=case,
                quality=quality,
                fault=fault,
                documents=verdict.documents,
                lost=verdict.lost,
                duplicates=verdict.duplicates,
                outcome=_outcome(verdict.problems),
                seconds=round(seconds, 1),
                notes="; ".join(notes),
            )
        )
        assert clean, "\n".join(verdict.problems)
    finally:
        await platform.aclose()


def _row(case: str, quality: str, fault: str, size: Size, seconds: float, error: Exception) -> Row:
    return Row(
        case=case,
        quality=quality,
        fault=fault,
        documents=size.documents,
        lost=0,
        duplicates=0,
        outcome=f"FAIL: {type(error).__name__}: {str(error)[:200]}",
        seconds=round(seconds, 1),
    )


def _outcome(problems: list[str]) -> str:
    if not problems:
        return "pass"
    shown = "; ".join(problems[:3]) + (
        f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    )
    return "FAIL: " + shown
