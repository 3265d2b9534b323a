"""The platform's receiver of outbound events for the fault matrix: the notify tests' verifying
receiver, which a case can take down for a while or make hold its answers (so a worker can be
killed while a delivery is in flight)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.notify.receiver import Receiver

EVENTS_SECRET = "whsec_Y2hhb3Mtb3V0Ym91bmQtZXZlbnRzLXNlY3JldA=="


@dataclass
class ChaosReceiver(Receiver):
    # Each request waits this long before it is answered (0: at once).
    hold_seconds: float = 0.0
    holding: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/events", self._held_events, methods=["POST"])])

    async def _held_events(self, request: Request) -> Response:
        if self.hold_seconds:
            self.holding += 1
            try:
                await asyncio.sleep(self.hold_seconds)
            finally:
                self.holding -= 1
        return await self._events(request)

    def down_for_seconds(self, seconds: float) -> None:
        """503 to every delivery from now for `seconds`, then 200 again."""
        self.up_at = time.monotonic() + seconds

    def deliveries_by_id(self) -> dict[str, list[dict[str, Any]]]:
        """Accepted payloads by webhook-id: the platform keeps one of each."""
        by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for payload, (_, headers) in zip(self.accepted, self.raw, strict=True):
            by_id[headers["webhook-id"]].append(payload)
        return dict(by_id)
