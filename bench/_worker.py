"""`python -m bench._worker [--window-seconds S] [--profile PATH] [--poll-delay S]`: one real arq
worker as `qbsync worker` runs it (settings from the QBSYNC_ environment), with two bench-only
options:

* `--window-seconds`: the per-company limiter's window (`RateLimitConfig.window_seconds`, 60 s
  in production), shrunk to the simulator's time-scaled minute. Settings do not expose it, so
  the worker's IntuitAccess is rebuilt with a limiter on that window after startup.
* `--profile PATH`: every push job timed, phase by phase (claim, context, plan, writes noted,
  send, settle; the limiter's waits and the HTTP calls inside them), one JSON line per job.
  The phases are timed by wrapping the functions `push_company` calls; nothing else changes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from arq.worker import Function, func

from qbsync.connections.intuit import rate_limit_config
from qbsync.qbo import QboClient, RedisRateLimiter
from qbsync.queue import JobQueue
from qbsync.reference_cache import ReferenceCache
from qbsync.settings import Settings
from qbsync.sync import claims, tasks
from qbsync.sync.schedule import PUSH_JOB
from qbsync.worker import FUNCTIONS, build_worker_settings, create_worker

Job = dict[str, Any]
_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("bench_job", default=None)


def _timed(owner: Any, name: str, label: str) -> None:
    """Replace `owner.name` (an async function or method) by one adding its time to the job."""
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        job = _current.get()
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            if job is not None:
                phases: dict[str, float] = job["phases"]
                counts: dict[str, int] = job["counts"]
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - started
                counts[label] = counts.get(label, 0) + 1

    setattr(owner, name, timed)


def _profiled_functions(path: Path) -> list[Function]:
    """The worker's functions, the push job wrapped to record its start, end and phases: one
    JSON line per job, appended to `path` as each ends (a worker stopped mid-job loses only
    that one)."""
    for owner, name, label in (
        (tasks, "find_company", "find_company"),
        (tasks, "build_context", "build_context"),
        (tasks, "plan_all", "plan"),
        (tasks, "send_all", "send"),
        (claims, "claim", "claim"),
        (claims, "writes_started", "writes_started"),
        (claims, "settle", "settle"),
        (claims, "_wake_payments", "settle_wake_payments"),
        (JobQueue, "started", "coalesce_release"),
        (RedisRateLimiter, "_acquire", "limiter_acquire"),
        (QboClient, "_request", "qbo_request"),
        (ReferenceCache, "load", "reference_list_load"),
    ):
        _timed(owner, name, label)
    wrapped: list[Function] = []
    for function in FUNCTIONS:
        if function.name != PUSH_JOB:
            wrapped.append(function)
            continue
        inner = function.coroutine

        async def push(ctx: dict[Any, Any], *args: Any, _inner: Any = inner) -> Any:
            job: Job = {
                "start": time.time(),
                # arq's score: when the job was due (ms); the wait in the queue before it ran.
                "due": ctx.get("score", 0) / 1000,
                "try": ctx.get("job_try"),
                "phases": {},
                "counts": {},
            }
            token = _current.set(job)
            try:
                job["result"] = await _inner(ctx, *args)
                return job["result"]
            except BaseException as error:
                job["result"] = type(error).__name__
                raise
            finally:
                job["end"] = time.time()
                _current.reset(token)
                with path.open("a") as out:
                    out.write(json.dumps(job) + "\n")

        wrapped.append(func(push, name=PUSH_JOB, keep_result=0))
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window-seconds", type=float)
    parser.add_argument("--profile")
    parser.add_argument("--poll-delay", type=float, help="arq's poll delay (default 0.5 s)")
    args = parser.parse_args()
    settings = Settings()
    database_url = os.environ["QBSYNC_DATABASE__URL"]
    redis_url = os.environ["QBSYNC_REDIS__URL"]
    base = build_worker_settings(settings, database_url, redis_url)
    startup: Callable[[dict[str, Any]], Awaitable[None]] = base["on_startup"]
    shutdown: Callable[[dict[str, Any]], Awaitable[None]] = base["on_shutdown"]

    async def on_startup(ctx: dict[str, Any]) -> None:
        await startup(ctx)
        if args.window_seconds is not None:
            limits = replace(rate_limit_config(settings), window_seconds=args.window_seconds)
            limiter = RedisRateLimiter(ctx["redis"], limits)
            ctx["intuit"] = replace(ctx["intuit"], limiter=limiter)
        ready = {"event": "bench_worker_ready", "pid": os.getpid(), "at": time.time()}
        print(json.dumps(ready), flush=True)

    overrides: dict[str, Any] = {"on_startup": on_startup, "on_shutdown": shutdown}
    if args.profile:
        overrides["functions"] = _profiled_functions(Path(args.profile))
    if args.poll_delay is not None:
        overrides["poll_delay"] = args.poll_delay

    async def run() -> None:
        worker = create_worker(settings, database_url, redis_url, **overrides)
        try:
            await worker.async_run()
        finally:
            await worker.close()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run())


if __name__ == "__main__":
    main()
