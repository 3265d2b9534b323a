"""arq worker: explicit job functions and cron jobs, shared clients in a typed ctx."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq.connections import ArqRedis
from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.read_budget import READ_BUDGET_JOB, warn_read_budget
from qbsync.connections.tasks import (
    expire_pending_grants,
    refresh_expiring_tokens,
    retry_revocations,
)
from qbsync.db import Database
from qbsync.notify.tasks import deliver_outbound_event, redrive_outbound_events
from qbsync.observability import JOB_LATENCY, JOBS, configure_logging
from qbsync.outbound_http import outbound_client
from qbsync.queue import JobQueue, redis_settings
from qbsync.reference_cache import ReferenceCache
from qbsync.settings import Settings
from qbsync.sync.pull_schedule import PULL_JOB, RECONCILE_JOB
from qbsync.sync.schedule import PUSH_JOB
from qbsync.sync.tasks import (
    pull_company,
    push_company,
    reconcile_company,
    reconcile_due_companies,
    redrive_sync_records,
)

log = structlog.get_logger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _measured(name: str, function: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(job=name)
        try:
            result = await function(ctx, *args, **kwargs)
        except Exception:
            JOBS.labels(name, "error").inc()
            raise
        finally:
            JOB_LATENCY.labels(name).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("job")
        JOBS.labels(name, "ok").inc()
        return result

    run.__qualname__ = name
    return run


def _function(name: str, function: Callable[..., Awaitable[Any]]) -> Function:
    return func(_measured(name, function), name=name, keep_result=0)


# keep_result=0 frees a job id as soon as the job ends, so the same row can be queued again.
FUNCTIONS: list[Function] = [
    _function("deliver_outbound_event", deliver_outbound_event),
    _function(PUSH_JOB, push_company),
    _function(PULL_JOB, pull_company),
    _function(RECONCILE_JOB, reconcile_company),
    _function(READ_BUDGET_JOB, warn_read_budget),
]


def _cron(name: str, function: Callable[..., Awaitable[Any]], **when: Any) -> CronJob:
    # unique: one run at a time across workers; keep_result=0 frees the job id at once.
    return cron(_measured(name, function), name=name, keep_result=0, unique=True, **when)


def cron_jobs() -> list[CronJob]:
    """Fresh objects per worker: arq keeps each cron's next run time on the object itself."""
    return [
        _cron("redrive_outbound_events", redrive_outbound_events, second={0}, run_at_startup=True),
        _cron("redrive_sync_records", redrive_sync_records, second={15}, run_at_startup=True),
        _cron("reconcile_due_companies", reconcile_due_companies, second={50}),
        _cron("expire_pending_grants", expire_pending_grants, second={30}),
        _cron("retry_revocations", retry_revocations, second={45}),
        _cron("refresh_expiring_tokens", refresh_expiring_tokens, minute={17}, second={0}),
    ]


def build_worker_settings(
    settings: Settings, database_url: str, redis_url: str, *, database: Database | None = None
) -> dict[str, Any]:
    """The arq WorkerSettings for this process; `database` lets tests share their transaction."""

    async def startup(ctx: dict[str, Any]) -> None:
        redis: ArqRedis = ctx["redis"]
        ctx["settings"] = settings
        ctx["db"] = database or Database.connect(database_url, settings.database)
        ctx["queue"] = JobQueue(redis, settings.redis.queue_name)
        ctx["http"] = outbound_client(settings)
        ctx["intuit"] = IntuitAccess.build(settings, ctx["http"], redis)
        ctx["reference_cache"] = ReferenceCache(
            redis,
            key_prefix=settings.redis.key_prefix,
            ttl_seconds=settings.intuit.reference_cache_seconds,
        )
        log.info("worker_started", queue=settings.redis.queue_name)

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "http" in ctx:
            await ctx["http"].aclose()
        if "db" in ctx and database is None:
            await ctx["db"].dispose()

    return {
        "functions": FUNCTIONS,
        "cron_jobs": cron_jobs(),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(redis_url),
        "queue_name": settings.redis.queue_name,
        "max_jobs": 20,
        "job_timeout": 300,
        "max_tries": 25,
        "health_check_interval": 30,
        "handle_signals": True,
    }


def create_worker(
    settings: Settings,
    database_url: str,
    redis_url: str,
    *,
    database: Database | None = None,
    burst: bool = False,
    **overrides: Any,
) -> Worker:
    options = build_worker_settings(settings, database_url, redis_url, database=database)
    options.update(overrides)
    configure_logging(settings.log_level, json=settings.log_json)
    return Worker(functions=options.pop("functions"), burst=burst, **options)


async def run_through_redis_restarts(make_worker: Callable[[], Worker]) -> None:
    """Run a worker; when Redis goes away, start a new one once it answers, with backoff.

    A Redis restart ends arq's poll with a connection error; the work itself is in Postgres
    (R5), so the worker starts again instead of exiting. SIGINT or SIGTERM from the moment a
    worker ended until the next one starts (while the ended one closes, and during the backoff)
    stops the loop: arq's own handlers still point at the ended worker, whose main task is done.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    delay = 1.0
    while True:
        worker = make_worker()
        try:
            await worker.async_run()
            return
        except (RedisError, OSError) as error:
            log.warning("worker_lost_redis", error=type(error).__name__, retry_in_seconds=delay)
            for signum in STOP_SIGNALS:
                loop.add_signal_handler(signum, stop.set)
        finally:
            await _close(worker)
        try:
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        if stop.is_set():
            return
        delay = min(delay * 2, 30.0)


async def _close(worker: Worker) -> None:
    try:
        await worker.close()
    except (RedisError, OSError):
        # arq's close stops at Redis: at its wait for the running jobs (the first one whose end
        # it could not store) or just after it, before the worker's on_shutdown and the closing
        # of its Redis pool. The jobs still running finish first (closing the HTTP client under
        # them would cut their calls to QuickBooks); then the database pool, the HTTP client
        # and the Redis sockets are closed here, or they would stay open, one set per outage.
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            if worker.on_shutdown is not None:
                await worker.on_shutdown(worker.ctx)
            await worker.pool.close(close_connection_pool=True)
