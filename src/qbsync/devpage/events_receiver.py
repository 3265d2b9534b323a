"""Where qbsync's outbound events land in dev: `POST /dev/platform/events` plays the platform's
receiver. Each delivery's Standard Webhooks signature is checked with the secret qbsync signs
with; verified deliveries go to a capped Redis list (shared by every API replica) that
`GET /dev/platform/events` reads for the page's live list. A delivery whose `webhook-id` was
already stored (a retry, or a replay of the same signed bytes) is acknowledged and not stored
again, as a platform deduplicating by that id would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, cast

from arq.connections import ArqRedis
from fastapi import APIRouter, Request
from pydantic import BaseModel
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from qbsync.deps import QueueDep, SettingsDep
from qbsync.errors import UnauthorizedError
from qbsync.security import OrgDep
from qbsync.settings import Settings

router = APIRouter(prefix="/dev/platform/events", include_in_schema=False)
KEEP = 200
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# Standard Webhooks refuses timestamps more than 5 minutes off either way, so an id remembered
# for 10 minutes outlives every copy of a delivery that could still verify.
SEEN_SECONDS = 600
# Marks the id as seen and stores the delivery in one step, only when the id is new.
STORE_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, ARGV[3])
  return 1
end
return 0
"""


class ReceivedEvent(BaseModel):
    received_at: datetime
    webhook_id: str
    signature_verified: bool
    id: str | None
    type: str | None
    organization_id: str | None
    data: dict[str, Any]


class ReceivedEvents(BaseModel):
    items: list[ReceivedEvent]


def events_key(settings: Settings) -> str:
    return f"{settings.redis.key_prefix}:dev:platform-events"


def seen_key(settings: Settings, webhook_id: str) -> str:
    # Hashed: the header is the sender's text, of any length.
    digest = hashlib.sha256(webhook_id.encode()).hexdigest()
    return f"{events_key(settings)}:seen:{digest}"


def signing_secret(settings: Settings) -> str:
    """The secret the outbound deliveries are signed with (see notify.tasks)."""
    platform = settings.platform
    return (platform.events_secret or platform.webhook_secret).get_secret_value()


@router.post("", status_code=204)
async def receive(request: Request, settings: SettingsDep, queue: QueueDep) -> None:
    body = await request.body()
    headers = {name: request.headers.get(name, "") for name in HEADERS}
    try:
        Webhook(signing_secret(settings)).verify(body, headers, json_parse=False)
        document = json.loads(body)
    except (WebhookVerificationError, ValueError) as error:
        raise UnauthorizedError(
            "The delivery's Standard Webhooks signature is missing, wrong or too old; it was "
            "not stored.",
            code="invalid_signature",
        ) from error
    if not isinstance(document, dict):
        document = {}
    entry = ReceivedEvent(
        received_at=datetime.now(UTC),
        webhook_id=headers["webhook-id"],
        signature_verified=True,
        id=_text(document.get("id")),
        type=_text(document.get("type")),
        organization_id=_text(document.get("organization_id")),
        data=document.get("data") if isinstance(document.get("data"), dict) else {},
    )
    redis: ArqRedis = queue.redis
    await cast(
        "Awaitable[int]",
        redis.eval(
            STORE_ONCE,
            2,
            seen_key(settings, entry.webhook_id),
            events_key(settings),
            entry.model_dump_json(),
            str(SEEN_SECONDS),
            str(KEEP - 1),
        ),
    )


@router.get("", response_model=ReceivedEvents)
async def received(org: OrgDep, settings: SettingsDep, queue: QueueDep) -> ReceivedEvents:
    """The org's received events, newest first."""
    rows = await cast(
        "Awaitable[list[bytes]]", queue.redis.lrange(events_key(settings), 0, KEEP - 1)
    )
    events = [ReceivedEvent.model_validate_json(row) for row in rows]
    return ReceivedEvents(items=[e for e in events if e.organization_id == org.org_id])


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
