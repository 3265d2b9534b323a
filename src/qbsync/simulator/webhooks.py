"""Change notifications to the app's webhook URL: batched, signed, in order, retried for ever."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class DropPolicy:
    """Which changes go unnotified, for tests of what a client does when webhooks are lost:
    all of them (`everything`), the next `count`, or each with probability `fraction` (drawn
    from a generator seeded with `seed`, so that a run can be repeated)."""

    everything: bool = False
    count: int = 0
    fraction: float = 0.0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - a repeatable test choice

    def take(self) -> bool:
        """Whether the change being recorded is dropped."""
        if self.everything:
            return True
        if self.count:
            self.count -= 1
            return True
        return self.fraction > 0 and self._random.random() < self.fraction


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
        self.drop_policy = DropPolicy(fraction=config.webhook_drop_fraction)
        # Changes that were due a notification: how many were queued, and the ones dropped.
        self.queued = 0
        self.dropped: list[ChangeEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def record(self, event: ChangeEvent) -> None:
        # Intuit only notifies about companies connected to the app.
        if not self._config.webhook_url or not self._is_connected(event.realm_id):
            return
        # Decided as the change happens, so that what a test drops does not depend on batching.
        if self.drop_policy.take():
            self.dropped.append(event)
            return
        self.queued += 1
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
            await self._deliver(client, url, self.encode(self._next_batch()))

    def _next_batch(self) -> list[ChangeEvent]:
        """The oldest changes whose notifications fit in one POST (at least one change)."""
        batch = [self.pending.popleft()]
        size = self._weight(batch[0])
        while self.pending:
            weight = self._weight(self.pending[0])
            if size + weight > self._config.webhook_max_batch:
                break
            batch.append(self.pending.popleft())
            size += weight
        return batch

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

    def encode(self, events: list[ChangeEvent]) -> bytes:
        """The body of one delivery of `events`, in the configured format."""
        payload: object
        if self._config.webhook_format == "cloudevents":
            payload = [entry for event in events for entry in self._entries(event)]
        else:
            by_realm: dict[str, list[JsonObject]] = {}
            for event in events:
                by_realm.setdefault(event.realm_id, []).extend(self._entries(event))
            payload = {
                "eventNotifications": [
                    {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
                    for realm_id, entities in by_realm.items()
                ]
            }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _weight(self, event: ChangeEvent) -> int:
        """How many entries `_entries` gives the change (Intuit caps them per POST)."""
        merge_in_cloudevents = self._config.webhook_format == "cloudevents" and event.deleted_id
        return 2 if merge_in_cloudevents else 1

    def _entries(self, event: ChangeEvent) -> list[JsonObject]:
        """What one change puts in a delivery: legacy entities, or CloudEvents."""
        if self._config.webhook_format == "legacy":
            entity: JsonObject = {
                "name": event.entity,
                "id": event.entity_id,
                "operation": event.operation,
                "lastUpdated": _utc(event.timestamp),
            }
            if event.deleted_id is not None:
                entity["deletedId"] = event.deleted_id  # Intuit's sample and Java SDK spelling
            return [entity]
        entries = [self._cloud_event(event.entity, event.entity_id, event.operation, event)]
        if event.deleted_id is not None:
            # CloudEvents carry no merged-away Id (Intuit documents none, and `data` stays {}:
            # a field of our own would be one no real delivery has). The record merged away is
            # announced as deleted instead, the closest of Intuit's documented operations: it
            # is made inactive and renamed "(deleted)", and the legacy format calls its Id the
            # deletedId.
            entries.append(self._cloud_event(event.entity, event.deleted_id, "Delete", event))
        return entries

    def _cloud_event(
        self, entity: str, entity_id: str, operation: str, event: ChangeEvent
    ) -> JsonObject:
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self._source,
            "type": f"qbo.{entity.lower()}.{_PAST_TENSE[operation]}.v1",
            "datacontenttype": "application/json",
            "time": _utc(event.timestamp),
            "intuitentityid": entity_id,
            "intuitaccountid": event.realm_id,
            "data": {},
        }


def _utc(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
