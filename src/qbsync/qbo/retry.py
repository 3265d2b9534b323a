"""Ride out 429, 5xx and network errors with exponential backoff and jitter, within a bound.

Resending a write is safe because every write carries the caller's `requestid`: Intuit answers a
repeat with the first response instead of applying it twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from qbsync.qbo.config import RetryPolicy
from qbsync.qbo.errors import QboError, QboNetworkError, QboServerError, QboThrottledError

log = structlog.get_logger(__name__)
T = TypeVar("T")

_TRANSIENT = (QboThrottledError, QboServerError, QboNetworkError)
_random = secrets.SystemRandom()


async def with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run `attempt` until it succeeds, fails for good, or the policy's bound is reached."""
    started = time.monotonic()
    failures = 0
    while True:
        try:
            return await attempt()
        except _TRANSIENT as error:
            failures += 1
            delay = backoff_delay(error, failures, policy)
            elapsed = time.monotonic() - started
            if failures >= policy.max_attempts or elapsed + delay > policy.max_total_seconds:
                raise
            log.info(
                "qbo_retry",
                error_type=type(error).__name__,
                status=error.status_code,
                intuit_tid=error.intuit_tid,
                failures=failures,
                delay_seconds=round(delay, 3),
            )
            await asyncio.sleep(delay)


def backoff_delay(error: QboError, failures: int, policy: RetryPolicy) -> float:
    """Retry-After when Intuit sent one, else exponential from the base; plus up to +jitter."""
    if error.retry_after is not None:
        delay = error.retry_after
    else:
        base = (
            policy.throttle_delay_seconds
            if isinstance(error, QboThrottledError)
            else policy.base_delay_seconds
        )
        delay = min(policy.max_delay_seconds, base * 2 ** (failures - 1))
    # Only ever longer: many workers throttled together must not come back together.
    return delay * (1 + _random.uniform(0, policy.jitter_ratio))
