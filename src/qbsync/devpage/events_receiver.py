"""Where qbsync's outbound events land in dev: `POST /dev/platform/events` plays the platform's
receiver. Each delivery's Standard Webhooks signature is checked with the secret qbsync signs
with; verified deliveries go to a capped Redis list (shared by every API replica) that
`GET /dev/platform/events` reads for the page's live list.
"""

from __future__ import annotations

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
    key = events_key(settings)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(key, entry.model_dump_json())
        pipe.ltrim(key, 0, KEEP - 1)
        await pipe.execute()


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
