"""The faults the matrix first found qbsync failing: a push slower than its lease, a worker that
exited with Redis, and a 500 while Postgres recovered."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]
from arq.connections import create_pool
from arq.worker import Worker, func
from bench.common import Child, event, spawn

from qbsync.queue import redis_settings
from qbsync.worker import run_through_redis_restarts
from tests.chaos.harness import SHORT, Size, chaos_case
from tests.chaos.platform import Platform
from tests.chaos.processes import Stack
from tests.chaos.results import Matrix
from tests.chaos.test_kills import kill_in_call

TAX_RATE = {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"}


async def test_r4_a_push_slower_than_its_lease_is_never_sent_twice(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R4: killed while loading a reference list, the worker leaves that list's lock behind;
    its successor waits for it longer than the lease it took, and the
    re-drive gives the same records to a second job meanwhile."""
    async with chaos_case(
        stack,
        matrix,
        # A handful of documents at either size: one slice, so one job waits out its lease.
        dataclasses.replace(size, documents=SHORT.documents),
        case="r4_push_outlives_lease",
        quality="R4",
        fault="SIGKILL during a reference-list load; the next push waits out its lease",
    ) as case:
        sending = asyncio.create_task(case.send_load())
        assert await kill_in_call(
            case,
            "reference_list_load",
            case.path("query"),
            "GET",
            # Longer than the lease (10 s in production, against a lease of 600 s there).
            "--loader-wait-seconds",
            f"{size.lease_seconds + 1:g}",
        )
        await sending


async def test_r5_the_worker_outlives_a_redis_restart(stack: Stack) -> None:
    """R5: `qbsync worker`, as deployed, is still running once Redis is back, after each of
    three restarts, and each worker that ended closed its Redis connections. (Its on_shutdown,
    which closes the database pool and the HTTP client, runs on the same path; nothing here
    checks those two.)"""
    worker = spawn("chaos-qbsync-worker", "qbsync.cli", ["worker"], stack.env())
    try:
        await _started(worker, 1)
        for round_ in range(3):
            await asyncio.to_thread(stack.redis.restart, 1.0)
            await _started(worker, round_ + 2)
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log_tail(5)}"
        # Redis closed its side of every connection it had: one still open on ours was leaked.
        left_open = _half_closed(worker, stack.redis.port)
        assert left_open == [], f"sockets the ended workers left open: {left_open}"
    finally:
        await asyncio.to_thread(worker.stop)


async def _started(worker: Child, times: int) -> None:
    deadline = time.monotonic() + 60
    while worker.log_path.read_text(errors="replace").count('"worker_started"') < times:
        worker.check_alive()
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.1)


def _half_closed(worker: Child, port: int) -> list[str]:
    connections = psutil.Process(worker.process.pid).net_connections(kind="tcp")
    return [
        f"{c.raddr}"
        for c in connections
        if c.status == psutil.CONN_CLOSE_WAIT and c.raddr and c.raddr.port == port
    ]


async def test_r5_a_worker_waiting_for_redis_stops_on_sigterm(stack: Stack) -> None:
    """R5: between two workers, while it waits for Redis to come back, `qbsync worker` still
    stops on SIGTERM (arq's own handler went with the worker that ended)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**stack.env(), "QBSYNC_REDIS__URL": f"redis://127.0.0.1:{closed_port}/0"}
    worker = spawn("chaos-qbsync-worker-no-redis", "qbsync.cli", ["worker"], env)
    try:
        deadline = time.monotonic() + 60
        while '"worker_lost_redis"' not in worker.log_path.read_text(errors="replace"):
            worker.check_alive()
            assert time.monotonic() < deadline, worker.log_tail()
            await asyncio.sleep(0.02)
        worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while worker.process.poll() is None:
            assert time.monotonic() < deadline, f"still running:\n{worker.log_tail(5)}"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(worker.stop)


async def test_r1_events_answer_503_while_postgres_recovers(stack: Stack) -> None:
    """R1: Postgres up but not yet accepting connections (recovering): every delivery is
    answered 503, so the sender retries; never a 500."""
    platform = Platform(stack.api_url, stack.simulator_url, stack.settings)
    body = [event("org_chaos_r1_recovering", "tax_rate.upserted", TAX_RATE, datetime.now(UTC))]
    try:
        await asyncio.to_thread(stack.postgres.stop)
        await asyncio.to_thread(stack.postgres.start_refusing)
        await asyncio.to_thread(_until_refusing, stack.postgres.url())
        for _ in range(5):
            with contextlib.suppress(AssertionError):
                await platform.send(body, give_up_after=0.0)
        statuses = set(platform.intake.statuses)
    finally:
        await asyncio.to_thread(stack.postgres.promote)
        await platform.aclose()
    assert statuses == {503}, f"answered {sorted(statuses)}"


def _until_refusing(url: str) -> None:
    """Until the server answers, refusing (57P03): before that the port is simply closed."""
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            asyncio.run(_connect_once(dsn))
        except asyncpg.CannotConnectNowError:
            return
        except OSError:
            time.sleep(0.05)
            continue
        raise AssertionError("Postgres accepted a connection while in recovery")
    raise AssertionError("Postgres did not come up in recovery")


async def _connect_once(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    await connection.close()


async def test_r5_jobs_still_running_when_redis_goes_keep_their_http_client(stack: Stack) -> None:
    """R5: Redis dies with two jobs running. arq's close gives up at the first job whose end it
    cannot store in Redis; the other job's call still gets its answer, because the worker's
    on_shutdown (which closes the HTTP client) waits for it."""
    started: list[str] = []
    answers: list[str] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["http"] = httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _: httpx.Response(200, text="answered"))
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await ctx["http"].aclose()

    async def short(ctx: dict[str, Any]) -> None:
        started.append("short")
        await asyncio.sleep(0.5)

    async def long(ctx: dict[str, Any]) -> None:
        started.append("long")
        await asyncio.sleep(2.0)
        answers.append((await ctx["http"].get("http://quickbooks.test/")).text)

    queue_name = f"chaos-close-{uuid.uuid4().hex[:6]}"

    def make_worker() -> Worker:
        return Worker(
            functions=[func(short, name="short"), func(long, name="long")],
            redis_settings=redis_settings(stack.redis.url),
            queue_name=queue_name,
            on_startup=on_startup,
            on_shutdown=on_shutdown,
            poll_delay=0.05,
            # As deployed: with its own handlers, arq's close waits for the running jobs
            # (without them, close cancels them first).
            handle_signals=True,
        )

    pool = await create_pool(redis_settings(stack.redis.url))
    await pool.enqueue_job("short", _queue_name=queue_name)
    await pool.enqueue_job("long", _queue_name=queue_name)
    await pool.aclose()
    running = asyncio.create_task(run_through_redis_restarts(make_worker))
    try:
        deadline = time.monotonic() + 20
        while len(started) < 2:
            assert time.monotonic() < deadline, f"started only {started}"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(stack.redis.stop)
        deadline = time.monotonic() + 20
        while not answers:
            assert time.monotonic() < deadline, "the long job never got its answer"
            await asyncio.sleep(0.05)
    finally:
        if stack.redis.process is None:
            await asyncio.to_thread(stack.redis.start)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        # The test's loop is shared: the workers' signal handlers go with them.
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().remove_signal_handler(signum)
    assert answers == ["answered"]
