"""When an org's records are pushed: one push job per org waits in the queue at a time.

A push job takes a slice of the org's due records, pushes them and, when more are due, asks for
another job, which joins the back of the queue (a busy org asks before it sends, so a few of
its slices overlap). Companies therefore take turns (round robin):
a backlog of 10,000 records in one company is pushed a slice at a time between other
companies' jobs, never ahead of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.queue import JobQueue, JobRequest, enqueue_after_commit

PUSH_JOB = "push_company"
# A count of an org's running push jobs outlives a worker killed mid-job by this long at most.
RUNNING_SECONDS = 600
log = structlog.get_logger(__name__)


def push_key(org_id: str) -> str:
    return f"push:{org_id}"


@asynccontextmanager
async def pushing(queue: JobQueue, org_id: str) -> AsyncIterator[int]:
    """Count this job among the org's running push jobs; yields how many run now, this one
    included (0 when Redis can't say: then no job is asked for ahead)."""
    key = f"{queue.queue_name}:pushing:{org_id}"
    try:
        running = int(await queue.redis.incr(key))
        await queue.redis.expire(key, RUNNING_SECONDS)
    except (RedisError, OSError) as error:
        log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)
        yield 0
        return
    try:
        yield running
    finally:
        try:
            await queue.redis.decr(key)
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
