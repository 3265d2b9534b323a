"""When an org's records are pushed: one push job per org waits in the queue at a time.

A push job takes a slice of the org's due records, pushes them and, when more are due, asks for
another job, which joins the back of the queue (a busy org asks before it sends, so a few of
its slices overlap). Companies therefore take turns (round robin):
a backlog of 10,000 records in one company is pushed a slice at a time between other
companies' jobs, never ahead of them.

Normally at most `QBSYNC_PUSH__JOBS_PER_COMPANY` of one company's push jobs run at once, so one
company's jobs do not fill the workers' slots while they wait on its rate limits (after Redis
lost the places, or a heartbeat came later than the hold, a few more run until they end).
A job beyond those ends as it starts, and the first running job to leave asks for another.
A worker killed mid-job gives its places back `RUNNING_HOLD_SECONDS` after its last heartbeat;
meanwhile the re-drive cron asks again each minute for any company with due records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import cast

import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.queue import JobQueue, JobRequest, enqueue_after_commit

PUSH_JOB = "push_company"
# A running push job's place lapses this long after its last heartbeat: a worker killed mid-job
# holds one of its company's places for no longer than that.
RUNNING_HOLD_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
# How long an org's places, and its note that a job was turned away, outlive their last use.
KEY_SECONDS = 600
# The scripts run on Redis' clock, so workers' clocks don't matter, and each runs as one step:
# a job turned away while another leaves is always seen by the leaver.
_LAPSE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
"""
# Join when fewer than `places` run (the answer: how many run now, this one included); else
# note that a job was turned away (the answer: 0).
_JOIN = (
    _LAPSE
    + """
local running = redis.call('ZCARD', KEYS[1])
if running >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return running + 1
"""
)
# A late beat (the loop stalled past the hold) takes the place back: the job does run.
_BEAT = (
    _LAPSE
    + """
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
"""
)
# Leave; the answer says whether a job was turned away meanwhile.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('GETDEL', KEYS[2])
"""
log = structlog.get_logger(__name__)


def push_key(org_id: str) -> str:
    return f"push:{org_id}"


@asynccontextmanager
async def pushing(queue: JobQueue, org_id: str, places: int) -> AsyncIterator[int | None]:
    """Take one of the org's `places` for running push jobs while the job runs.

    Yields how many of the org's push jobs run now, this one included; None when all `places`
    are taken, and then the job is turned away: the first of the running ones to leave asks for
    another job. Yields 0 when Redis can't say, and the job runs uncounted.
    """
    keys = (f"{queue.queue_name}:pushing:{org_id}", f"{queue.queue_name}:push_wanted:{org_id}")
    mark = uuid.uuid4().hex
    try:
        joined = await _run(queue, _JOIN, keys, mark, RUNNING_HOLD_SECONDS, places, KEY_SECONDS)
    except (RedisError, OSError) as error:
        log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)
        yield 0
        return
    running = cast(int, joined)
    if not running:
        yield None
        return
    heartbeat = asyncio.create_task(_beat(queue, keys, mark, org_id))
    try:
        yield running
    finally:
        heartbeat.cancel()
        # Whatever ended the beat, the job's own outcome (or a Retry) is what arq must see.
        await asyncio.gather(heartbeat, return_exceptions=True)
        await _leave(queue, keys, mark, org_id)


async def _run(queue: JobQueue, script: str, keys: tuple[str, ...], *args: object) -> object:
    answer = queue.redis.eval(script, len(keys), *keys, *(str(arg) for arg in args))
    return await cast(Awaitable[object], answer)


async def _beat(queue: JobQueue, keys: tuple[str, str], mark: str, org_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            await _run(queue, _BEAT, keys[:1], mark, RUNNING_HOLD_SECONDS, KEY_SECONDS)
        except (RedisError, OSError) as error:
            log.warning("push_count_unavailable", org_id=org_id, error=type(error).__name__)


async def _leave(queue: JobQueue, keys: tuple[str, str], mark: str, org_id: str) -> None:
    try:
        turned_away = await _run(queue, _LEAVE, keys, mark)
        if turned_away:
            await queue.enqueue(JobRequest(PUSH_JOB, org_id, coalesce_key=push_key(org_id)))
    except (RedisError, OSError) as error:
        # The place lapses on its own; the re-drive cron asks for a push of due records.
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
