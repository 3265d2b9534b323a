"""`python -m tests.chaos.worker --wait-seconds S --redrive-every N`: the real arq worker, as
`qbsync worker` runs it (settings from the QBSYNC_ environment), with time compressed so a fault
matrix runs in seconds rather than hours:

* the waits Intuit and qbsync ask for after a 429 or a 5xx (60 s: Intuit's guidance without a
  Retry-After, and qbsync's default deferral) become `--wait-seconds`, and a job's own resends
  within a call wait at most a quarter of that (2 s in production);
* a job waiting on another process's load of a reference list (one whose loader died holds
  its lock) loads it itself after `--loader-wait-seconds` (10 s in production);
* a delivery to the platform gives up after 2 s instead of 15 s, and its claim lasts 3 s
  instead of 60 s (always past that timeout, as in production);
* the crons that re-drive work from Postgres (sync records, outbound events), once a minute in
  production, run every `--redrive-every` seconds.

Like `qbsync worker`, it starts again when Redis goes away (`run_through_redis_restarts`).

Nothing else changes: the same functions, the same job code, the same Postgres and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

from arq.worker import Worker

from qbsync import reference_cache
from qbsync.notify import service as notify_service
from qbsync.qbo import errors as qbo_errors
from qbsync.settings import Settings
from qbsync.sync import context, pull, push, tasks
from qbsync.worker import build_worker_settings, create_worker, run_through_redis_restarts

REDRIVE_CRONS = frozenset({"redrive_sync_records", "redrive_outbound_events"})


def compress_waits(seconds: float, loader_wait_seconds: float) -> None:
    """The module constants the retry and deferral code reads at call time."""
    resend = dataclasses.replace(context.PUSH_RETRY, max_delay_seconds=seconds / 4)
    for module, name, value in (
        (reference_cache, "WAIT_FOR_LOADER_SECONDS", loader_wait_seconds),
        (qbo_errors, "INTUIT_THROTTLE_WAIT_SECONDS", seconds),
        (push, "DEFAULT_WAIT_SECONDS", seconds),
        (tasks, "DEFAULT_WAIT_SECONDS", seconds),
        (context, "PUSH_RETRY", resend),
        (pull, "PUSH_RETRY", resend),
        (notify_service, "POST_TIMEOUT_SECONDS", 2.0),
        (notify_service, "CLAIM_FOR", timedelta(seconds=3)),
    ):
        _replace(module, name, value)


def _replace(module: ModuleType, name: str, value: object) -> None:
    # A constant renamed in src would otherwise be "compressed" without effect, silently.
    if not hasattr(module, name):
        raise RuntimeError(f"{module.__name__}.{name} is gone: update tests/chaos/worker.py")
    setattr(module, name, value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-seconds", type=float, default=1.0)
    parser.add_argument("--redrive-every", type=int, default=1)
    parser.add_argument("--loader-wait-seconds", type=float, default=1.0)
    args = parser.parse_args()
    compress_waits(args.wait_seconds, args.loader_wait_seconds)
    settings = Settings()
    database_url = os.environ["QBSYNC_DATABASE__URL"]
    redis_url = os.environ["QBSYNC_REDIS__URL"]
    every = set(range(0, 60, args.redrive_every))

    def make_worker() -> Worker:
        # Fresh settings each time: arq keeps each cron's next run on the cron object itself.
        base = build_worker_settings(settings, database_url, redis_url)
        crons = [
            dataclasses.replace(job, second=every) if job.name in REDRIVE_CRONS else job
            for job in base["cron_jobs"]
        ]
        startup: Callable[[dict[str, Any]], Awaitable[None]] = base["on_startup"]

        async def on_startup(ctx: dict[str, Any]) -> None:
            await startup(ctx)
            ready = {"event": "chaos_worker_ready", "pid": os.getpid(), "at": time.time()}
            # Where the stack looks for it: the worker's output, which goes to its log file.
            sys.stdout.write(json.dumps(ready) + "\n")
            sys.stdout.flush()

        return create_worker(
            settings,
            database_url,
            redis_url,
            cron_jobs=crons,
            on_startup=on_startup,
            poll_delay=0.1,
        )

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run_through_redis_restarts(make_worker))


if __name__ == "__main__":
    main()
