"""Per-company request limits shared by every API and worker process through Redis.

Three limits per realm, checked and taken in one Lua script so two processes can never both take
the last unit: a sliding-window log of requests (N a window), a second log for batch calls (B a
window; a batch also counts as a request, as at Intuit), and a semaphore of in-flight requests (M).
In-flight slots are leases scored by their expiry, so a process killed mid-request gives its
slot back once the lease runs out. Time is Redis's own clock, so hosts' clocks may disagree.

A slot is given back however its holder ends: the release runs in its own task, shielded, because
anyio (FastAPI) cancels again at every await of a cancelled task, which would otherwise cancel the
release itself and leave the slot taken until its lease runs out. An acquire interrupted after
Redis ran the script (cancelled, or the reply lost) gives back the lease it may have taken.

A caller that cannot wait long (a person on a page) passes `max_wait_seconds`: past it the slot
raises `RateLimitBusyError`. A refused script takes nothing, so giving up leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from qbsync.qbo.config import RateLimitConfig
from qbsync.qbo.errors import RateLimitBusyError, RateLimiterUnavailableError

log = structlog.get_logger(__name__)
_random = secrets.SystemRandom()
# The event loop keeps only weak references to tasks: hold releases until they finish.
_releases: set[asyncio.Task[None]] = set()

# KEYS: requests log, in-flight leases[, batch log]
# ARGV: lease id, window ms, request limit, in-flight limit, lease ms[, batch limit]
# Returns 0 when the slot was taken, the ms until a window frees up, or -1 when only the
# in-flight limit is full (no way to know when a holder finishes: poll).
_ACQUIRE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[5])
local wait = 0

local function window_wait(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end

wait = window_wait(KEYS[1], tonumber(ARGV[3]))
if #KEYS == 3 then wait = math.max(wait, window_wait(KEYS[3], tonumber(ARGV[6]))) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if wait == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then wait = -1 end
if wait ~= 0 then return wait end

redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('ZADD', KEYS[2], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[2], lease_ms)
if #KEYS == 3 then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], window)
end
return 0
"""


class SlotLimiter(Protocol):
    def slot(
        self, realm_id: str, *, batch: bool = False, max_wait_seconds: float | None = None
    ) -> AbstractAsyncContextManager[None]: ...


class RedisRateLimiter:
    """`async with limiter.slot(realm_id):` waits until every limit allows a call.

    Without `max_wait_seconds` it waits as long as that takes; with it, it raises
    `RateLimitBusyError` once the wait would pass the bound.
    """

    def __init__(self, redis: Redis, config: RateLimitConfig) -> None:
        self._redis = redis
        self._config = config
        self._script = redis.register_script(_ACQUIRE)

    @asynccontextmanager
    async def slot(
        self, realm_id: str, *, batch: bool = False, max_wait_seconds: float | None = None
    ) -> AsyncIterator[None]:
        if max_wait_seconds is not None and max_wait_seconds < 0:
            raise ValueError("max_wait_seconds must not be negative")
        lease_id = await self._acquire(realm_id, batch=batch, max_wait_seconds=max_wait_seconds)
        try:
            yield
        finally:
            await self._release(realm_id, lease_id)

    async def _acquire(self, realm_id: str, *, batch: bool, max_wait_seconds: float | None) -> str:
        config = self._config
        deadline = None if max_wait_seconds is None else time.monotonic() + max_wait_seconds
        lease_id = uuid.uuid4().hex
        keys = [self._key(realm_id, "requests"), self._key(realm_id, "inflight")]
        args: list[Any] = [
            lease_id,
            _ms(config.window_seconds),
            config.requests_per_window,
            config.max_in_flight,
            _ms(config.lease_seconds),
        ]
        if batch:
            keys.append(self._key(realm_id, "batch"))
            args.append(config.batch_requests_per_window)
        while True:
            try:
                wait_ms = int(await self._script(keys=keys, args=args))
            except RedisError as error:
                # The script may have run before the reply was lost.
                await self._release(realm_id, lease_id)
                raise RateLimiterUnavailableError(
                    f"the rate limiter could not reach Redis ({type(error).__name__})"
                ) from error
            except BaseException:
                await self._release(realm_id, lease_id)
                raise
            if wait_ms == 0:
                return lease_id
            if wait_ms < 0:
                delay = config.max_poll_seconds * _random.uniform(0.5, 1.0)
            else:
                # A little extra so the waiters woken by the same expiry do not collide.
                delay = wait_ms / 1000 + config.max_poll_seconds * _random.uniform(0, 0.2)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                # A window that frees up only after the bound is not worth sleeping for.
                if remaining <= 0 or wait_ms / 1000 > remaining:
                    raise RateLimitBusyError(
                        f"the company's limits would not free up within {max_wait_seconds} s",
                        # A window frees within its own length, whatever Redis' clock did.
                        frees_in_seconds=(
                            min(wait_ms / 1000, config.window_seconds) if wait_ms > 0 else None
                        ),
                    )
                delay = min(delay, remaining)
            await asyncio.sleep(delay)

    async def _release(self, realm_id: str, lease_id: str) -> None:
        """Give the in-flight slot back, even when the caller is being cancelled."""
        task = asyncio.ensure_future(self._remove_lease(realm_id, lease_id))
        _releases.add(task)
        task.add_done_callback(_releases.discard)
        await asyncio.shield(task)

    async def _remove_lease(self, realm_id: str, lease_id: str) -> None:
        try:
            await self._redis.zrem(self._key(realm_id, "inflight"), lease_id)
        except RedisError as error:
            # The lease expires on its own; failing the finished call would only repeat it.
            log.warning("qbo_rate_limit_release_failed", error_type=type(error).__name__)

    def _key(self, realm_id: str, kind: str) -> str:
        # The {realm} hash tag keeps one company's keys in one Redis Cluster slot, as Lua needs.
        return f"{self._config.key_prefix}:qbo:ratelimit:{{{realm_id}}}:{kind}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
