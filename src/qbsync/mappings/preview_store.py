"""The links a preview proposed, kept for an hour so the user can confirm the ones they agree
with. Redis is enough: a lost preview only means running it again."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from qbsync.mappings.company import Company
from qbsync.models.base import utcnow

PREVIEW_SECONDS = 3600
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProposedLink:
    qbo_id: str
    display_name: str


@dataclass(frozen=True)
class StoredPreview:
    preview_id: str
    expires_at: datetime


@dataclass(frozen=True)
class LoadedPreview:
    realm_id: str
    links: dict[str, ProposedLink]


class PreviewStore:
    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix

    async def save(self, company: Company, links: dict[str, ProposedLink]) -> StoredPreview | None:
        """None when Redis is unreachable: the preview is still shown, only not confirmable."""
        preview_id = secrets.token_urlsafe(18)
        payload = json.dumps(
            {
                "realm_id": company.realm_id,
                "links": {pid: [link.qbo_id, link.display_name] for pid, link in links.items()},
            }
        )
        try:
            await self._redis.set(
                self._key(company.org_id, preview_id), payload, ex=PREVIEW_SECONDS
            )
        except RedisError as error:
            log.warning("preview_not_stored", error=repr(error))
            return None
        return StoredPreview(preview_id, utcnow() + timedelta(seconds=PREVIEW_SECONDS))

    async def load(self, org_id: str, preview_id: str) -> LoadedPreview | None:
        raw = await self._redis.get(self._key(org_id, preview_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return LoadedPreview(
            realm_id=str(data["realm_id"]),
            links={pid: ProposedLink(*pair) for pid, pair in data["links"].items()},
        )

    def _key(self, org_id: str, preview_id: str) -> str:
        # The org is part of the key: another org's preview id finds nothing (S1).
        return f"{self._prefix}:preview:{org_id}:{preview_id}"
