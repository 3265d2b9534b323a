"""`POST /v1/quickbooks/webhooks` seen from QuickBooks' side and an attacker's: signatures on the
raw bytes, both payload formats, each change stored once, answered without calling Intuit."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
from arq.connections import ArqRedis
from sqlalchemy import func, select

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import QboWebhookEvent
from qbsync.settings import DatabaseSettings, Settings
from qbsync.sync.pull_schedule import pull_key
from tests.connections.conftest import OTHER_US_REALM
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.sync.pulling import WEBHOOK_PATH, cloud_event, intuit_signature, post_webhook

__all__ = ["org", "settings", "uk", "us"]


def _events(realm_id: str, count: int = 2) -> list[dict[str, Any]]:
    return [
        cloud_event(
            realm_id, "Payment", str(100 + n), "created", f"2026-11-21T10:00:0{n}Z", f"ev-{n}"
        )
        for n in range(count)
    ]


def _legacy(realm_id: str) -> dict[str, Any]:
    return {
        "eventNotifications": [
            {
                "realmId": realm_id,
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Invoice",
                            "id": "130",
                            "operation": "Update",
                            "lastUpdated": "2026-01-15T18:04:05.000Z",
                        },
                        {
                            "name": "Customer",
                            "id": "5",
                            "operation": "Merge",
                            "lastUpdated": "2026-01-15T18:04:05-0800",
                            "deletedId": "7",
                        },
                    ]
                },
            }
        ]
    }


async def _stored(db: Database) -> list[QboWebhookEvent]:
    async with db.sessions() as session:
        return list(
            await session.scalars(select(QboWebhookEvent).order_by(QboWebhookEvent.event_id))
        )


async def test_a_bad_or_missing_signature_is_refused_and_stores_nothing(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    """S4: missing, wrong, made with another token, or over other bytes (the same JSON spaced
    differently) → 401 and 0 rows."""
    payload = _events(us.realm_id)
    body = json.dumps(payload).encode()
    respaced = json.dumps(payload, indent=1).encode()
    attempts = [
        {},
        {"intuit-signature": "not base64!"},
        {"intuit-signature": intuit_signature(body, "another-verifier-token")},
        {"intuit-signature": intuit_signature(respaced)},
        {"intuit-signature": ""},
    ]
    for headers in attempts:
        answer = await client.post(
            WEBHOOK_PATH, content=body, headers={"content-type": "application/json", **headers}
        )
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "invalid_signature"
    assert await _stored(db) == []


async def test_cloudevents_are_stored_once_and_one_pull_is_queued(
    us: Org, client: httpx.AsyncClient, db: Database, settings: Settings, redis: ArqRedis
) -> None:
    """R9 at the door: the same changes delivered again and again, shuffled, are stored once;
    no call reaches Intuit while QuickBooks waits for its answer."""
    before = dict(us.simulator.state.stats.requests_by_endpoint)
    payload = _events(us.realm_id, 5)
    first = await post_webhook(client, payload)
    assert first.status_code == 200, first.text
    queued = await redis.zcard(settings.redis.queue_name)
    assert first.json() == {"changes": 5, "stored": 5, "duplicates": 0}
    for _ in range(3):
        shuffled = payload + payload[:2]
        random.shuffle(shuffled)
        again = await post_webhook(client, shuffled, content_type="application/json")
        assert again.json() == {"changes": 7, "stored": 0, "duplicates": 7}
    rows = await _stored(db)
    assert [row.event_id for row in rows] == [f"ev-{n}" for n in range(5)]
    assert {row.org_id for row in rows} == {"org_1"}
    assert all(row.processed_at is None for row in rows)
    assert us.simulator.state.stats.requests_by_endpoint == before
    # One pull queued for the org, whatever came again.
    assert await redis.zcard(settings.redis.queue_name) == queued
    assert await redis.exists(f"{settings.redis.queue_name}:coalesce:{pull_key('org_1')}")


async def test_legacy_notifications_and_merges_are_stored(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    answer = await post_webhook(client, _legacy(us.realm_id), content_type="application/json")
    assert answer.status_code == 200, answer.text
    rows = await _stored(db)
    merge = next(row for row in rows if row.operation == "Merge")
    assert (merge.entity, merge.entity_id, merge.deleted_id) == ("Customer", "5", "7")
    invoice = next(row for row in rows if row.entity == "Invoice")
    assert invoice.occurred_at.isoformat() == "2026-01-15T18:04:05+00:00"


async def test_a_company_no_org_is_connected_to_is_acknowledged_and_recorded(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    """Acknowledged (so Intuit does not retry for ever) and kept, settled, never pulled."""
    answer = await post_webhook(client, _events(OTHER_US_REALM, 1))
    assert answer.status_code == 200
    [row] = await _stored(db)
    assert (row.org_id, row.outcome) == (None, "realm_not_connected")
    assert row.processed_at is not None


async def test_entities_qbsync_does_not_follow_are_settled_at_once(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    events = [
        cloud_event(us.realm_id, "Estimate", "9", "created", "2026-11-21T10:00:00Z", "ev-e"),
        cloud_event(us.realm_id, "Invoice", "9", "emailed", "2026-11-21T10:00:00Z", "ev-m"),
    ]
    assert (await post_webhook(client, events)).status_code == 200
    assert {row.outcome for row in await _stored(db)} == {"not_followed"}


async def test_a_signed_body_that_is_not_a_quickbooks_payload_names_the_field(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    bad = _events(us.realm_id, 1)
    bad[0]["intuitaccountid"] = "not-a-realm"
    answer = await post_webhook(client, bad)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["code"] == "invalid_webhook"
    assert problem["errors"][0]["field"] == "[0].intuitaccountid"
    not_json = await client.post(
        WEBHOOK_PATH,
        content=b"{nope",
        headers={
            "content-type": "application/json",
            "intuit-signature": intuit_signature(b"{nope"),
        },
    )
    assert (not_json.status_code, not_json.json()["errors"][0]["field"]) == (422, "body")
    assert await _stored(db) == []


async def test_another_media_type_is_refused_after_the_signature(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    body = json.dumps(_events(us.realm_id, 1)).encode()
    answer = await client.post(
        WEBHOOK_PATH,
        content=body,
        headers={"content-type": "text/plain", "intuit-signature": intuit_signature(body)},
    )
    assert answer.status_code == 415
    assert answer.json()["code"] == "unsupported_media_type"
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(QboWebhookEvent)) == 0


async def test_a_change_to_a_reference_list_drops_its_cache(
    us: Org, client: httpx.AsyncClient
) -> None:
    """The settings page's pick-list shows a customer made in QuickBooks a moment ago."""
    listed = await us.get("customers")
    assert listed.status_code == 200
    reads = us.simulator.state.stats.requests_by_endpoint.copy()
    await us.get("customers")
    assert us.simulator.state.stats.requests_by_endpoint == reads, "served from the cache"
    change = cloud_event(us.realm_id, "Customer", "1", "updated", "2026-11-21T10:00:00Z", "ev-c")
    assert (await post_webhook(client, [change])).status_code == 200
    await us.get("customers")
    assert us.simulator.state.stats.requests_by_endpoint != reads, "read again"


async def test_the_database_down_acknowledges_nothing(settings: Settings, redis: ArqRedis) -> None:
    """R1: QuickBooks gets a 503 and retries; never a 200 for a change not stored."""
    db = Database.connect(
        "postgresql+asyncpg://qbsync@127.0.0.1:1/qbsync", DatabaseSettings(pool_timeout_seconds=1)
    )
    app = create_app(settings, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as down:
            answer = await post_webhook(down, _events("9341450000000001", 1))
    await db.dispose()
    assert answer.status_code == 503
    assert answer.json()["code"] == "database_unavailable"
    assert answer.headers["retry-after"]
