"""Intuit time: wall-clock time sped up by `time_scale`, and movable forward by tests."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class SimClock:
    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._origin_wall = time.time()
        self._origin_mono = time.monotonic()
        self._offset = 0.0
        # Replaced on every advance so that each sleeper re-checks its deadline once.
        self._advanced = asyncio.Event()

    def timestamp(self) -> float:
        """Intuit seconds since the epoch."""
        elapsed = (time.monotonic() - self._origin_mono) * self.time_scale
        return self._origin_wall + elapsed + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def resume_from(self, timestamp: float) -> None:
        """After a restart: never earlier than the last moment the saved state saw."""
        behind = timestamp - self.timestamp()
        if behind > 0:
            self._offset += behind

    def advance(self, seconds: float) -> None:
        self._offset += seconds
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.timestamp() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        while (remaining := deadline - self.timestamp()) > 0:
            advanced = self._advanced
            try:
                await asyncio.wait_for(advanced.wait(), remaining / self.time_scale)
            except TimeoutError:
                continue
