"""Change notifications to the app's webhook URL: batched, signed, in order, retried for ever."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from qbsync.simulator.clock import SimClock
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import ChangeEvent

# Intuit seconds to wait after each failed attempt, then every six hours.
RETRY_DELAYS = (0.0, 10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
RETRY_EVERY = 21600.0
_PAST_TENSE = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}


@dataclass(frozen=True)
class DeliveryAttempt:
    number: int  # 1 for the first try of a batch
    at: float  # Intuit time
    body: bytes
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signature(verifier_token: str, body: bytes) -> str:
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class WebhookHub:
    def __init__(
        self, config: SimulatorConfig, clock: SimClock, is_connected: Callable[[str], bool]
    ) -> None:
        self._config = config
        self._clock = clock
        self._is_connected = is_connected
        self._source = (
            "intuit."
            + base64.b64encode(hashlib.sha256(config.client_id.encode()).digest()).decode()
        )
        self.pending: deque[ChangeEvent] = deque()
        self.attempts: list[DeliveryAttempt] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def record(self, event: ChangeEvent) -> None:
        # Intuit only notifies about companies connected to the app.
        if self._config.webhook_url and self._is_connected(event.realm_id):
            self.pending.append(event)
            self._wake.set()

    def start(self) -> None:
        url = self._config.webhook_url
        if url is None:
            return
        self._client = httpx.AsyncClient(timeout=self._config.webhook_timeout_real_seconds)
        self._task = asyncio.create_task(self._run(self._client, url), name="simulator-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, client: httpx.AsyncClient, url: str) -> None:
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            await self._clock.sleep(self._config.webhook_batch_window)
            size = min(len(self.pending), self._config.webhook_max_batch)
            batch = [self.pending.popleft() for _ in range(size)]
            await self._deliver(client, url, self._encode(batch))

    async def _deliver(self, client: httpx.AsyncClient, url: str, body: bytes) -> None:
        """Later events wait until this batch is acknowledged, as Intuit holds them."""
        number = 1
        while not await self._post(client, url, body, number):
            index = number - 1
            await self._clock.sleep(
                RETRY_DELAYS[index] if index < len(RETRY_DELAYS) else RETRY_EVERY
            )
            number += 1

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes, number: int) -> bool:
        attempt_at = self._clock.timestamp()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await client.post(url, content=body, headers=self._headers(body))
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = DeliveryAttempt(number, attempt_at, body, status_code, error)
        self.attempts.append(attempt)
        return attempt.delivered

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {
            "intuit-signature": signature(self._config.verifier_token, body),
            "intuit-t-id": str(uuid.uuid4()),
            "intuit-created-time": _utc(self._clock.timestamp()),
        }
        if self._config.webhook_format == "cloudevents":
            headers["content-type"] = "application/cloudevents+json"
            headers["user-agent"] = "intuit_notification_server/1.0"
        else:
            headers["content-type"] = "application/json; charset=utf-8"
            headers["intuit-notification-schema-version"] = "0.1"
            headers["user-agent"] = "intuit_notification_server/0.1"
        return headers

    def _encode(self, events: list[ChangeEvent]) -> bytes:
        payload: object
        if self._config.webhook_format == "cloudevents":
            payload = [self._cloud_event(event) for event in events]
        else:
            by_realm: dict[str, list[JsonObject]] = {}
            for event in events:
                by_realm.setdefault(event.realm_id, []).append(
                    {
                        "name": event.entity,
                        "id": event.entity_id,
                        "operation": event.operation,
                        "lastUpdated": _utc(event.timestamp),
                    }
                )
            payload = {
                "eventNotifications": [
                    {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
                    for realm_id, entities in by_realm.items()
                ]
            }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _cloud_event(self, event: ChangeEvent) -> JsonObject:
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self._source,
            "type": f"qbo.{event.entity.lower()}.{_PAST_TENSE[event.operation]}.v1",
            "datacontenttype": "application/json",
            "time": _utc(event.timestamp),
            "intuitentityid": event.entity_id,
            "intuitaccountid": event.realm_id,
            "data": {},
        }


def _utc(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
