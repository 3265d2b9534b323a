"""The one place that enqueues arq jobs: by row id only, and only after the writing commit.

A service that changes a row calls `enqueue_after_commit(session, ...)`; `unit_of_work()` (used by
the request dependency and by jobs) commits and only then sends the jobs to Redis. If Redis is
unreachable at that moment nothing is lost: the row is in Postgres and the reconciler re-drives it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database

PENDING_JOBS = "qbsync.pending_jobs"
COALESCE_SECONDS = 120
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobRequest:
    function: str
    row_id: str
    job_id: str | None = None
    defer_seconds: float | None = None
    # Jobs sharing a coalesce key wait in the queue once: while one is waiting, another
    # request is dropped. The job calls `JobQueue.started(key)` first thing, so work stored
    # after that moment queues a new job. A lost key frees itself after COALESCE_SECONDS.
    coalesce_key: str | None = None


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


class JobQueue:
    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    async def enqueue(self, job: JobRequest) -> bool:
        """True when queued; False when a job with the same id is already waiting or running,
        or one with the same coalesce key is waiting."""
        if job.coalesce_key is not None:
            fresh = await self.redis.set(
                self._coalesce(job.coalesce_key), "1", nx=True, ex=COALESCE_SECONDS
            )
            if not fresh:
                return False
        try:
            queued = await self.redis.enqueue_job(
                job.function,
                job.row_id,
                _job_id=job.job_id,
                _queue_name=self.queue_name,
                _defer_by=job.defer_seconds,
            )
        except (RedisError, OSError, TimeoutError):
            if job.coalesce_key is not None:
                # Left behind, the key would drop every request for COALESCE_SECONDS while no
                # job waits: the re-drive cron's included.
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await self.started(job.coalesce_key)
            raise
        return queued is not None

    async def started(self, coalesce_key: str) -> None:
        """A coalesced job has begun: what is stored from now on needs a job of its own."""
        await self.redis.delete(self._coalesce(coalesce_key))

    def _coalesce(self, key: str) -> str:
        return f"{self.queue_name}:coalesce:{key}"

    async def enqueue_all(self, jobs: list[JobRequest]) -> None:
        # One request per distinct job: a delivery of 100 events for one org asks once.
        for job in dict.fromkeys(jobs):
            try:
                await self.enqueue(job)
            except (RedisError, OSError, TimeoutError) as error:
                # What the commit stored is safe; a redrive cron finds the row in Postgres.
                log.warning(
                    "enqueue_failed_reconciler_will_redrive",
                    function=job.function,
                    row_id=job.row_id,
                    error=type(error).__name__,
                )


def enqueue_after_commit(
    session: AsyncSession,
    function: str,
    row_id: uuid.UUID | str,
    *,
    job_id: str | None = None,
    defer_seconds: float | None = None,
    coalesce_key: str | None = None,
) -> None:
    session.info.setdefault(PENDING_JOBS, []).append(
        JobRequest(function, str(row_id), job_id, defer_seconds, coalesce_key)
    )


def take_pending(session: AsyncSession) -> list[JobRequest]:
    jobs: list[JobRequest] = session.info.pop(PENDING_JOBS, [])
    return jobs


@asynccontextmanager
async def unit_of_work(db: Database, queue: JobQueue) -> AsyncIterator[AsyncSession]:
    """Commit once at the end, then enqueue what the work asked for; roll back and drop on error."""
    async with db.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            take_pending(session)
            raise
        await queue.enqueue_all(take_pending(session))
