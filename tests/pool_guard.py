"""Watches pool discipline (R13) from outside: which task holds which pooled connection.

Every checkout and checkin of the engine's pool is attributed to the asyncio task that made it.
A task that checks out a second connection while holding one, or sends an HTTP request (to Intuit
or the platform) while holding one, is a violation.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class PoolGuard:
    def __init__(self, engine: AsyncEngine) -> None:
        self._pool = engine.sync_engine.pool
        self._holding: dict[asyncio.Task[Any], int] = defaultdict(int)
        self._owner: dict[int, asyncio.Task[Any]] = {}
        self.violations: list[str] = []
        self.requests_seen = 0
        event.listen(self._pool, "checkout", self._checkout)
        event.listen(self._pool, "checkin", self._checkin)

    def close(self) -> None:
        event.remove(self._pool, "checkout", self._checkout)
        event.remove(self._pool, "checkin", self._checkin)

    def watch(self, http: httpx.AsyncClient) -> None:
        """Every request this client sends is checked against the sending task's holdings."""
        http.event_hooks["request"].append(self._on_request)

    @staticmethod
    def _task() -> asyncio.Task[Any] | None:
        try:
            return asyncio.current_task()
        except RuntimeError:
            return None

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        task = self._task()
        if task is None:
            return
        if self._holding[task] > 0:
            self.violations.append(f"{task.get_name()} checked out a second connection")
        self._holding[task] += 1
        self._owner[id(record)] = task

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        task = self._owner.pop(id(record), None)
        if task is not None:
            self._holding[task] -= 1

    async def _on_request(self, request: httpx.Request) -> None:
        self.requests_seen += 1
        task = self._task()
        if task is not None and self._holding.get(task, 0) > 0:
            self.violations.append(
                f"{request.method} {request.url.path} sent while holding a pooled connection"
            )
