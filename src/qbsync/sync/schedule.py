"""When an org's records are pushed: one push job per org waits in the queue at a time.

A push job takes a slice of the org's due records, pushes them and, when more are due, asks for
another job, which joins the back of the queue (a busy org asks before it sends, so a few of
its slices overlap). Companies therefore take turns (round robin):
a backlog of 10,000 records in one company is pushed a slice at a time between other
companies' jobs, never ahead of them.

At most `QBSYNC_PUSH__JOBS_PER_COMPANY` of one company's push jobs run at once, so one company's
jobs never fill the workers' slots while they wait on its rate limits. A job beyond those ends
as it starts: each running job, when it settles, asks for another while records are due, and
the re-drive cron asks for any company whose running jobs died.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import cast

import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.queue import JobQueue, JobRequest, enqueue_after_commit

PUSH_JOB = "push_company"
# A running push job's mark lapses this long after its last heartbeat: a worker killed mid-job
# holds one of its company's places for no longer than that.
RUNNING_HOLD_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
# Adds this job's mark (score: when it lapses, on Redis' clock, so workers' clocks don't
# matter), drops the lapsed ones, and counts the rest, in one step: two jobs joining at once
# never both count themselves among the first.
_JOIN = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return redis.call('ZCARD', KEYS[1])
"""
log = structlog.get_logger(__name__)


def push_key(org_id: str) -> str:
    return f"push:{org_id}"


@asynccontextmanager
async def pushing(queue: JobQueue, org_id: str) -> AsyncIterator[int]:
    """Count this job among the org's running push jobs while it runs; yields how many run now,
    this one included (0 when Redis can't say: then the job runs as if alone)."""
    key = f"{queue.queue_name}:pushing:{org_id}"
    mark = uuid.uuid4().hex
    try:
        running = int(await _join(queue, key, mark))
    except (RedisError, OSError) as error:
        log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)
        yield 0
        return
    heartbeat = asyncio.create_task(_beat(queue, key, mark, org_id))
    try:
        yield running
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        try:
            await queue.redis.zrem(key, mark)
        except (RedisError, OSError) as error:
            # The mark lapses on its own within RUNNING_HOLD_SECONDS.
            log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)


async def _join(queue: JobQueue, key: str, mark: str) -> int:
    counted = queue.redis.eval(_JOIN, 1, key, mark, str(RUNNING_HOLD_SECONDS))
    return int(await cast(Awaitable[int], counted))


async def _beat(queue: JobQueue, key: str, mark: str, org_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            await _join(queue, key, mark)
        except (RedisError, OSError) as error:
            log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)


async def push_ahead(queue: JobQueue, org_id: str) -> None:
    """The next slice's job, asked for before this slice is sent: while one batch waits on
    QuickBooks the next is planned, up to `QBSYNC_PUSH__JOBS_PER_COMPANY` at once. It joins the
    back of the queue like any other, so other companies still take their turns."""
    try:
        await queue.enqueue(JobRequest(PUSH_JOB, org_id, coalesce_key=push_key(org_id)))
    except (RedisError, OSError) as error:
        # The job's own end asks again after commit; only the overlap is lost.
        log.warning("push_ahead_not_queued", org_id=org_id, error=type(error).__name__)


def schedule_push(
    session: AsyncSession, org_id: str, *, defer_seconds: float | None = None
) -> None:
    """Ask for a push of the org's due records once this transaction commits."""
    enqueue_after_commit(
        session, PUSH_JOB, org_id, defer_seconds=defer_seconds, coalesce_key=push_key(org_id)
    )
