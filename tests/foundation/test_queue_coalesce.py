"""The queue's coalescing key when Redis fails between taking the key and queueing the job."""

from __future__ import annotations

import secrets
import uuid

import pytest
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from qbsync.queue import JobQueue, JobRequest


async def test_a_failed_enqueue_frees_its_coalescing_key(
    redis: ArqRedis, redis_url: str, key_prefix: str
) -> None:
    """R5: the key is taken, then queueing the job fails (here: Redis refuses the queue's
    command to this client). The key is given back, so the next request, the re-drive cron's
    included, queues a job at once instead of being dropped for two minutes."""
    user, password = f"qbsync_test_{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    await redis.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-zadd"]
    )
    refused = ArqRedis.from_url(redis_url, username=user, password=password)
    queue_name = f"{key_prefix}:coalesce-{uuid.uuid4().hex[:6]}"
    request = JobRequest("push_company", "org_1", coalesce_key="push:org_1")
    try:
        with pytest.raises(RedisError):
            await JobQueue(refused, queue_name).enqueue(request)
    finally:
        await refused.aclose()
        await redis.acl_deluser(user)
    assert await JobQueue(redis, queue_name).enqueue(request), "the next request queues a job"
    assert await redis.zcard(queue_name) == 1
    await redis.delete(queue_name, f"{queue_name}:coalesce:push:org_1")
