"""The platform's side of outbound events, served over HTTP on a loopback port by the tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Receiver:
    """Verifies every request as the platform would, then answers 503 for `down_for` seconds
    from the first request on, and 200 after that.

    `log` keeps, in order, when each request arrived and when each 200 was answered, so a test
    can tell that an event arrived only after the one before it was acknowledged.
    """

    secret: str
    down_for: float = 0.0
    up_at: float | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    # The raw body and headers of each accepted request, as they came over the wire.
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0
    bad_signatures: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/events", self._events, methods=["POST"])])

    async def _events(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        message_id = headers.get("webhook-id", "")
        self.log.append(("arrived", message_id))
        try:
            payload: dict[str, Any] = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.bad_signatures.append(message_id)
            return Response(status_code=400)
        now = time.monotonic()
        if self.up_at is None:
            self.up_at = now + self.down_for
        if now < self.up_at:
            self.refused += 1
            return Response(status_code=503)
        self.accepted.append(payload)
        self.raw.append((body, headers))
        self.log.append(("answered", message_id))
        return Response(status_code=200)

    def accepted_ids(self) -> list[str]:
        return [str(payload["id"]) for payload in self.accepted]

    def arrived_after_answer(self, earlier: str, later: str) -> bool:
        """Every arrival of `later` comes after the 200 that acknowledged `earlier`."""
        answered = self.log.index(("answered", earlier))
        return all(
            index > answered for index, entry in enumerate(self.log) if entry == ("arrived", later)
        )
