"""The push end to end: the platform posts signed events, a real arq worker pushes them into the
simulator, and the tests look at what QuickBooks received and what the sync log says."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from qbsync.db import Database
from qbsync.models import OutboundEvent, RecordKind, SyncRecord
from qbsync.settings import Settings
from qbsync.worker import create_worker
from tests.conftest import drain_worker
from tests.mappings.conftest import Org

_CLOCK = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# One clock for every Books of a run: each event sent is later than any sent before it.
_TICKS = itertools.count(1)


@dataclass
class Books:
    """One org's books on both sides: the platform that sends events, QuickBooks that gets
    them, and the worker in between."""

    org: Org
    client: httpx.AsyncClient
    settings: Settings
    db: Database
    redis: ArqRedis
    database_url: str
    redis_url: str
    sent: int = 0
    org_id: str = "org_1"

    async def send(
        self, event_type: str, data: dict[str, Any], *, at: datetime | None = None
    ) -> dict[str, Any]:
        """One platform event, signed, accepted (202); each later than the last by default."""
        self.sent += 1
        occurred = at or _CLOCK + timedelta(seconds=next(_TICKS))
        body = {
            "id": f"evt_{uuid.uuid4().hex[:12]}",
            "type": event_type,
            "organization_id": self.org_id,
            "occurred_at": occurred.isoformat(),
            "data": data,
        }
        response = await self.post_raw(body)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    async def post_raw(self, body: Any, webhook_id: str | None = None) -> httpx.Response:
        raw = json.dumps(body)
        msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        stamp = datetime.now(UTC)
        secret = self.settings.platform.webhook_secret.get_secret_value()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, stamp, raw),
        }
        return await self.client.post("/v1/events", content=raw, headers=headers)

    async def push(self) -> None:
        """A real arq worker runs until nothing is ready (deferred jobs stay queued)."""
        worker = create_worker(
            self.settings,
            self.database_url,
            self.redis_url,
            database=self.db,
            max_jobs=1,
            poll_delay=0.05,
            handle_signals=False,
            cron_jobs=[],
        )
        await drain_worker(worker, self.redis, limit_seconds=60)

    async def record(self, kind: str, platform_id: str) -> SyncRecord:
        async with self.db.sessions() as session:
            row = await session.scalar(
                select(SyncRecord)
                .where(
                    SyncRecord.org_id == self.org_id,
                    SyncRecord.kind == RecordKind(kind),
                    SyncRecord.platform_id == platform_id,
                )
                .execution_options(populate_existing=True)
            )
        assert row is not None, f"no {kind} record {platform_id}"
        return row

    async def events_out(self, event_type: str | None = None) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(OutboundEvent)
                .where(OutboundEvent.org_id == self.org_id)
                .order_by(OutboundEvent.created_at)
            )
            return [
                {"type": row.type, **row.payload}
                for row in rows
                if event_type is None or row.type == event_type
            ]

    def documents(self, entity: str) -> list[dict[str, Any]]:
        """What this company holds in QuickBooks, as its API would answer."""
        return self.org.simulator.admin.documents(self.org.realm_id, entity)

    def requests(self, needle: str) -> int:
        """Requests this company received whose endpoint mentions `needle`."""
        stats = self.org.simulator.state.stats.requests_by_endpoint
        return sum(
            count
            for endpoint, count in stats.items()
            if endpoint.startswith(self.org.realm_id) and needle in endpoint
        )

    async def configure(self, **changes: Any) -> dict[str, Any]:
        current = (await self.org.get("settings")).json()
        body = {key: value for key, value in current.items() if key not in ("saved", "updated_at")}
        body.update(changes)
        response = await self.org.put("settings", body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def map(self, path: str, body: dict[str, Any]) -> None:
        response = await self.org.put(f"mappings/{path}", body)
        assert response.status_code == 200, response.text


@pytest.fixture
def books_for(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Database,
    redis: ArqRedis,
    database_url: str,
    redis_url: str,
) -> Any:
    def build(org: Org) -> Books:
        return Books(org, client, settings, db, redis, database_url, redis_url)

    return build


async def make_due(books: Books) -> None:
    """Time passes: every waiting record is due, and a push job is queued for the org (as the
    redrive cron would)."""
    from sqlalchemy import update

    from qbsync.models import RecordStatus
    from qbsync.queue import JobQueue, JobRequest
    from qbsync.sync.schedule import PUSH_JOB, push_key

    async with books.db.sessions() as session:
        await session.execute(
            update(SyncRecord)
            .where(SyncRecord.org_id == "org_1", SyncRecord.status == RecordStatus.PENDING)
            .values(next_attempt_at=None)
        )
        await session.commit()
    queue = JobQueue(books.redis, books.settings.redis.queue_name)
    await books.redis.delete(books.settings.redis.queue_name)
    await queue.started(push_key("org_1"))
    await queue.enqueue(JobRequest(PUSH_JOB, "org_1", coalesce_key=push_key("org_1")))


async def failed_with(books: Books, kind: str, platform_id: str, code: str) -> dict[str, Any]:
    """The record failed with `code`, and the platform was told the same."""
    record = await books.record(kind, platform_id)
    assert record.status.value == "failed", (record.status, record.last_error)
    assert record.last_error is not None
    assert record.last_error["code"] == code, record.last_error
    told = [
        event
        for event in await books.events_out("quickbooks.record.failed")
        if event["platform_id"] == platform_id
    ]
    assert told, "the platform hears of it"
    assert told[-1]["code"] == code
    assert told[-1]["message"] == record.last_error["message"]
    error: dict[str, Any] = record.last_error
    return error


async def uk_books(uk: Org, books_for: Any, **chosen: Any) -> Books:
    """The UK org ready to push: VAT 20 % and consulting mapped, invoices pushed automatically,
    items for unmapped services created under Consulting Income; `chosen` changes settings."""
    from tests.mappings.previews import uk_mapped

    books: Books = books_for(uk)
    await uk_mapped(uk)
    await books.configure(
        **{
            "invoice_auto_push": True,
            "default_income_account_id": uk.qbo_id("Account", "Consulting Income"),
            **chosen,
        }
    )
    return books
