"""The per-company limiter holds its limits across processes sharing one (real) Redis.

Each limiter gets its own Redis connection, standing in for separate workers. Windows are scaled
down (0.3-0.5 s instead of 60 s) so the run stays fast; the arithmetic is the same.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
import respx
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from qbsync.qbo import (
    Customer,
    QboClient,
    RateLimitBusyError,
    RateLimitConfig,
    RateLimiterUnavailableError,
    RedisRateLimiter,
)
from tests.qbo.conftest import COMPANY, REALM, FakeTokens, make_config

TOLERANCE = 0.05


@pytest.fixture
async def connections(redis_url: str) -> AsyncIterator[list[Redis]]:
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return f"{key_prefix}:{uuid.uuid4().hex[:8]}"


def limiters(connections: list[Redis], config: RateLimitConfig) -> list[RedisRateLimiter]:
    return [RedisRateLimiter(connection, config) for connection in connections]


async def test_rate_and_in_flight_limits_hold_across_processes(
    connections: list[Redis], prefix: str
) -> None:
    """R8: N per window and M in flight, whichever of three processes asks."""
    config = RateLimitConfig(
        requests_per_window=8,
        max_in_flight=3,
        window_seconds=0.5,
        max_poll_seconds=0.01,
        key_prefix=prefix,
    )
    granted: list[float] = []
    active = 0
    most_active = 0
    started = time.monotonic()

    async def call(limiter: RedisRateLimiter) -> None:
        nonlocal active, most_active
        async with limiter.slot(REALM):
            granted.append(time.monotonic() - started)
            active += 1
            most_active = max(most_active, active)
            await asyncio.sleep(0.03)
            active -= 1

    workers = limiters(connections, config)
    await asyncio.gather(*(call(workers[n % 3]) for n in range(24)))

    assert most_active == 3
    granted.sort()
    for index, at in enumerate(granted):
        in_window = [t for t in granted[index:] if t < at + config.window_seconds - TOLERANCE]
        assert len(in_window) <= config.requests_per_window
    # 24 calls at 8 per 0.5 s: the third group cannot start before 1 s.
    assert granted[-1] >= 2 * config.window_seconds - TOLERANCE


async def test_one_busy_company_does_not_hold_up_another(
    connections: list[Redis], prefix: str
) -> None:
    config = RateLimitConfig(
        requests_per_window=2, max_in_flight=1, window_seconds=5, key_prefix=prefix
    )
    busy, other = limiters(connections, config)[:2]
    async with busy.slot("111"), busy.slot("222"):
        started = time.monotonic()
        # A limit shared across companies would wait here for good: fail instead of hanging.
        async with asyncio.timeout(2), other.slot("333"):
            assert time.monotonic() - started < 0.5


async def test_batch_calls_have_their_own_limit(connections: list[Redis], prefix: str) -> None:
    config = RateLimitConfig(
        batch_requests_per_window=2, window_seconds=0.3, max_poll_seconds=0.01, key_prefix=prefix
    )
    first, second, third = limiters(connections, config)
    started = time.monotonic()
    async with first.slot(REALM, batch=True), second.slot(REALM, batch=True):
        pass
    async with third.slot(REALM):
        assert time.monotonic() - started < config.window_seconds - TOLERANCE
    async with third.slot(REALM, batch=True):
        assert time.monotonic() - started >= config.window_seconds - TOLERANCE


async def test_batch_calls_count_as_requests(connections: list[Redis], prefix: str) -> None:
    config = RateLimitConfig(
        requests_per_window=3,
        batch_requests_per_window=3,
        window_seconds=0.3,
        max_poll_seconds=0.01,
        key_prefix=prefix,
    )
    first, second, third = limiters(connections, config)
    started = time.monotonic()
    for limiter in (first, second, third):
        async with limiter.slot(REALM, batch=True):
            pass
    assert time.monotonic() - started < config.window_seconds - TOLERANCE
    async with first.slot(REALM):
        assert time.monotonic() - started >= config.window_seconds - TOLERANCE


async def test_a_crashed_process_gives_its_slot_back_when_the_lease_expires(
    connections: list[Redis], prefix: str
) -> None:
    config = RateLimitConfig(
        max_in_flight=1, lease_seconds=0.3, max_poll_seconds=0.01, key_prefix=prefix
    )
    crashed, survivor = limiters(connections, config)[:2]
    # Entered and never left, as when a worker is SIGKILLed mid-request. (Kept referenced: a
    # collected context manager would be closed, releasing the slot like a clean exit.)
    held = crashed.slot(REALM)
    await held.__aenter__()
    started = time.monotonic()
    async with survivor.slot(REALM):
        waited = time.monotonic() - started
    assert config.lease_seconds - TOLERANCE <= waited < 1.5
    await held.__aexit__(None, None, None)


async def test_an_unreachable_redis_is_a_retryable_error(prefix: str) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0")
    limiter = RedisRateLimiter(unreachable, RateLimitConfig(key_prefix=prefix))
    with pytest.raises(RateLimiterUnavailableError) as caught:
        async with limiter.slot(REALM):
            pass
    assert caught.value.retryable
    await unreachable.aclose()


async def test_the_client_never_has_more_in_flight_than_the_limit(
    connections: list[Redis], prefix: str, intuit: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    config = RateLimitConfig(max_in_flight=2, max_poll_seconds=0.01, key_prefix=prefix)
    active = 0
    most_active = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        await asyncio.sleep(0.03)
        active -= 1
        return httpx.Response(200, json={"Customer": {"Id": "1", "SyncToken": "0"}})

    intuit.get(f"{COMPANY}/customer/1").mock(side_effect=slow)
    clients = [
        QboClient(
            http,
            make_config(),
            realm_id=REALM,
            tokens=FakeTokens(),
            limiter=RedisRateLimiter(connection, config),
        )
        for connection in connections
    ]
    await asyncio.gather(*(clients[n % 3].get(Customer, "1") for n in range(9)))
    assert most_active == 2


async def in_flight(connection: Redis, prefix: str) -> int:
    return int(await connection.zcard(f"{prefix}:qbo:ratelimit:{{{REALM}}}:inflight"))


async def test_a_slot_is_released_when_the_holder_is_cancelled_by_a_cancel_scope(
    connections: list[Redis], prefix: str
) -> None:
    """anyio (FastAPI) cancels again at every await; the release must still reach Redis."""
    config = RateLimitConfig(max_in_flight=1, max_poll_seconds=0.01, key_prefix=prefix)
    limiter = RedisRateLimiter(connections[0], config)
    with anyio.move_on_after(0.05):
        async with limiter.slot(REALM):
            assert await in_flight(connections[1], prefix) == 1
            await asyncio.sleep(10)
    for _ in range(50):
        if await in_flight(connections[1], prefix) == 0:
            break
        await asyncio.sleep(0.01)
    assert await in_flight(connections[1], prefix) == 0


@pytest.mark.parametrize("failure", [asyncio.CancelledError, RedisConnectionError])
async def test_a_lease_taken_by_an_interrupted_acquire_is_given_back(
    connections: list[Redis], prefix: str, failure: type[BaseException]
) -> None:
    """Redis ran the script (the lease is taken) but the caller never saw the answer."""
    config = RateLimitConfig(max_in_flight=1, max_poll_seconds=0.01, key_prefix=prefix)
    limiter = RedisRateLimiter(connections[0], config)
    script = limiter._script

    async def ran_then_failed(**kwargs: Any) -> Any:
        await script(**kwargs)
        raise failure("lost the reply")

    limiter._script = ran_then_failed  # type: ignore[assignment]
    with pytest.raises((failure, RateLimiterUnavailableError)):
        async with limiter.slot(REALM):
            pass
    assert await in_flight(connections[1], prefix) == 0


async def test_a_slot_is_released_when_the_call_fails(
    connections: list[Redis], prefix: str
) -> None:
    config = RateLimitConfig(max_in_flight=1, max_poll_seconds=0.01, key_prefix=prefix)
    limiter = RedisRateLimiter(connections[0], config)
    held: list[int] = []

    async def failing_call() -> None:
        async with limiter.slot(REALM):
            held.append(await in_flight(connections[1], prefix))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        await failing_call()
    assert held == [1]
    assert await in_flight(connections[1], prefix) == 0


async def requests_logged(connection: Redis, prefix: str) -> int:
    return int(await connection.zcard(f"{prefix}:qbo:ratelimit:{{{REALM}}}:requests"))


async def test_a_bounded_slot_gives_up_on_a_full_semaphore_and_takes_nothing(
    connections: list[Redis], prefix: str
) -> None:
    """Every in-flight slot is held by another process: past the bound the caller is told the
    company is busy, and neither a lease nor a request of its own is left in Redis."""
    config = RateLimitConfig(max_in_flight=2, max_poll_seconds=0.02, key_prefix=prefix)
    holder, waiter = limiters(connections, config)[:2]
    async with holder.slot(REALM), holder.slot(REALM):
        started = time.monotonic()
        # A limiter that ignores the bound would wait here for good: fail instead of hanging.
        with pytest.raises(RateLimitBusyError) as caught:
            async with asyncio.timeout(2), waiter.slot(REALM, max_wait_seconds=0.3):
                pytest.fail("the slot was granted past a full semaphore")
        waited = time.monotonic() - started
        assert await in_flight(connections[2], prefix) == 2
        assert await requests_logged(connections[2], prefix) == 2
    assert 0.3 - TOLERANCE <= waited < 0.3 + 0.2
    assert caught.value.retryable
    assert caught.value.code == "company_busy"
    assert caught.value.frees_in_seconds is None, "calls in flight end when Intuit answers"
    assert "try again in a minute" in caught.value.user_message
    assert await in_flight(connections[2], prefix) == 0


async def test_a_bounded_slot_is_granted_when_a_holder_finishes_in_time(
    connections: list[Redis], prefix: str
) -> None:
    config = RateLimitConfig(max_in_flight=1, max_poll_seconds=0.02, key_prefix=prefix)
    holder, waiter = limiters(connections, config)[:2]

    async def hold_briefly() -> None:
        async with holder.slot(REALM):
            await asyncio.sleep(0.1)

    holding = asyncio.create_task(hold_briefly())
    await asyncio.sleep(0.02)
    async with waiter.slot(REALM, max_wait_seconds=1.0):
        assert await in_flight(connections[2], prefix) == 1
    await holding


async def test_a_window_that_frees_only_after_the_bound_is_refused_at_once(
    connections: list[Redis], prefix: str
) -> None:
    """No point sleeping out the bound when Redis says the window frees up later than that."""
    config = RateLimitConfig(requests_per_window=1, window_seconds=5, key_prefix=prefix)
    first, second = limiters(connections, config)[:2]
    async with first.slot(REALM):
        pass
    started = time.monotonic()
    with pytest.raises(RateLimitBusyError) as caught:
        async with asyncio.timeout(2), second.slot(REALM, max_wait_seconds=1.0):
            pass
    assert time.monotonic() - started < 0.5
    assert await requests_logged(connections[2], prefix) == 1
    # The caller is told when to come back: when the window frees the slot.
    assert caught.value.frees_in_seconds is not None
    assert 4.0 < caught.value.frees_in_seconds <= 5.0


async def test_a_zero_bound_tries_once_and_a_negative_one_is_refused(
    connections: list[Redis], prefix: str
) -> None:
    config = RateLimitConfig(max_in_flight=1, key_prefix=prefix)
    holder, waiter = limiters(connections, config)[:2]
    async with waiter.slot(REALM, max_wait_seconds=0):
        pass
    async with holder.slot(REALM):
        with pytest.raises(RateLimitBusyError):
            async with asyncio.timeout(2), waiter.slot(REALM, max_wait_seconds=0):
                pass
    with pytest.raises(ValueError, match="negative"):
        async with waiter.slot(REALM, max_wait_seconds=-1):
            pass


async def test_the_client_waits_only_as_long_as_its_config_says(
    connections: list[Redis], prefix: str, intuit: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """The bound comes from QboConfig; a busy company is not retried and nothing is sent."""
    config = RateLimitConfig(max_in_flight=1, max_poll_seconds=0.02, key_prefix=prefix)
    holder = RedisRateLimiter(connections[0], config)
    route = intuit.get(f"{COMPANY}/customer/1").respond(
        200, json={"Customer": {"Id": "1", "SyncToken": "0"}}
    )
    client = QboClient(
        http,
        replace(make_config(), limiter_wait_seconds=0.2),
        realm_id=REALM,
        tokens=FakeTokens(),
        limiter=RedisRateLimiter(connections[1], config),
    )
    async with holder.slot(REALM):
        started = time.monotonic()
        with pytest.raises(RateLimitBusyError):
            async with asyncio.timeout(2):
                await client.get(Customer, "1")
        assert time.monotonic() - started < 0.2 + 0.2
    assert route.call_count == 0
    assert await in_flight(connections[2], prefix) == 0
    await client.get(Customer, "1")
    assert route.call_count == 1


async def test_the_wait_a_refusal_gives_is_never_longer_than_the_window(
    connections: list[Redis], prefix: str
) -> None:
    """A request logged an hour ahead (Redis' clock stepped back since) makes the window look
    full for an hour: the caller is still told to come back within one window, not an hour."""
    config = RateLimitConfig(requests_per_window=1, window_seconds=5, key_prefix=prefix)
    limiter = limiters(connections, config)[0]
    seconds, micros = await connections[2].time()
    ahead_ms = seconds * 1000 + micros // 1000 + 3_600_000
    key = f"{prefix}:qbo:ratelimit:{{{REALM}}}:requests"
    await connections[2].zadd(key, {"from-the-future": ahead_ms})
    with pytest.raises(RateLimitBusyError) as caught:
        async with asyncio.timeout(2), limiter.slot(REALM, max_wait_seconds=1.0):
            pass
    assert caught.value.frees_in_seconds is not None
    assert 0 < caught.value.frees_in_seconds <= 5.0
