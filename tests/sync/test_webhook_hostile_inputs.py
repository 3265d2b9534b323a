"""Signed bodies that parse but must not crash, and fields longer than their columns: 422 naming
the field, nothing stored, never a 500 that Intuit would retry for ever."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from qbsync.db import Database
from qbsync.models import QboWebhookEvent
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.sync.pulling import WEBHOOK_PATH, cloud_event, intuit_signature, post_webhook

__all__ = ["org", "settings", "uk", "us"]


async def _rows(db: Database) -> list[QboWebhookEvent]:
    async with db.sessions() as session:
        return list(await session.scalars(select(QboWebhookEvent)))


def _ok_or_422(answer: httpx.Response) -> None:
    """A signed body is either stored (200) or refused as invalid (422 naming a field); a 500
    makes Intuit retry it for ever and hold the app's later events behind it."""
    assert answer.status_code in (200, 422), (answer.status_code, answer.text[:300])
    if answer.status_code == 422:
        body = answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert body["code"] == "invalid_webhook"
        assert body["errors"][0]["field"]


async def test_event_id_longer_than_the_column(us: Org, client: httpx.AsyncClient) -> None:
    event = cloud_event(us.realm_id, "Payment", "1", "created", "2026-11-21T10:00:00Z", "e" * 300)
    _ok_or_422(await post_webhook(client, [event]))


async def test_nul_byte_in_event_id(us: Org, client: httpx.AsyncClient) -> None:
    event = cloud_event(us.realm_id, "Payment", "1", "created", "2026-11-21T10:00:00Z", "ev\x00")
    _ok_or_422(await post_webhook(client, [event]))


async def test_nul_byte_in_entity_id(us: Org, client: httpx.AsyncClient) -> None:
    event = cloud_event(us.realm_id, "Invoice", "1\x00", "updated", "2026-11-21T10:00:00Z", "ev-1")
    _ok_or_422(await post_webhook(client, [event]))


async def test_nul_byte_in_legacy_name(us: Org, client: httpx.AsyncClient) -> None:
    body = {
        "eventNotifications": [
            {
                "realmId": us.realm_id,
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Inv\x00oice",
                            "id": "1",
                            "operation": "Update",
                            "lastUpdated": "2026-01-15T18:04:05.000Z",
                        }
                    ]
                },
            }
        ]
    }
    _ok_or_422(await post_webhook(client, body, content_type="application/json"))


async def test_entity_id_longer_than_the_column_is_not_silently_cut(
    us: Org, client: httpx.AsyncClient, db: Database
) -> None:
    """An id cut to 32 characters names another entity: the pull would read (and apply) the
    wrong one. It must be refused or kept whole."""
    long_id = "1" * 40
    event = cloud_event(us.realm_id, "Invoice", long_id, "updated", "2026-11-21T10:00:00Z", "ev-l")
    answer = await post_webhook(client, [event])
    _ok_or_422(answer)
    if answer.status_code == 200:
        [row] = await _rows(db)
        assert row.entity_id == long_id, f"stored as {row.entity_id!r}"


async def test_deep_nesting_and_odd_types_are_422(us: Org, client: httpx.AsyncClient) -> None:
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"specversion":"1.0","type":"qbo.invoice.updated.v1","id":"x","time":"2026-01-01T00:00:00Z","intuitentityid":[],"intuitaccountid":"1"}]',
        b'{"eventNotifications":{"a":1}}',
        b'{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[1]}}]}',
        b'[{"specversion":"1.0","type":"qbo.invoice.updated.v1","id":"x","time":"9999-12-31T23:59:59-10:00","intuitentityid":"1","intuitaccountid":"1"}]',
        b'"just a string"',
        b"\xff\xfe",
    ]
    for body in bodies:
        answer = await client.post(
            WEBHOOK_PATH,
            content=body,
            headers={
                "content-type": "application/json",
                "intuit-signature": intuit_signature(body),
            },
        )
        assert answer.status_code == 422, (body[:60], answer.status_code, answer.text[:200])
