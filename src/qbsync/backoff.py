"""Retry schedules as lists of delays: attempt n waits the n-th, then the last one every time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta


def delay_after(attempts: int, delays: Sequence[timedelta]) -> timedelta:
    """How long to wait after `attempts` (at least 1) failed attempts."""
    return delays[min(max(attempts, 1), len(delays)) - 1]
