"""Platform events in, over HTTP: signed (S3), stored once (R1, R2), in the entity's own order,
every bad field named, and held while the org is not connected."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import CatalogueEntry, PlatformEvent, RecordStatus, SyncRecord
from qbsync.settings import DatabaseSettings, Settings
from tests.connections.committed import CommittedApp
from tests.connections.conftest import US_REALM, Consent

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def client_event(
    name: str = "Acme Ltd", *, event_id: str | None = None, at: datetime = NOW, **data: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "client.upserted",
        "organization_id": "org_1",
        "occurred_at": at.isoformat(),
        "data": {"id": "cl_1", "name": name, "email": "ap@acme.test", **data},
    }
    if event_id is not None:
        event["id"] = event_id
    return event


def invoice_data(**changes: Any) -> dict[str, Any]:
    return {
        "id": "inv_1",
        "number": "INV-0042",
        "status": "sent",
        "currency": "GBP",
        "issue_date": "2026-11-20",
        "due_date": "2026-12-20",
        "amounts_are": "tax_exclusive",
        "client": {"id": "cl_1", "name": "Acme Ltd", "email": "ap@acme.test"},
        "lines": [
            {
                "service_id": "svc_1",
                "description": "Consulting",
                "quantity": "2",
                "unit_price": "150.00",
                "tax_rate_id": "tr_vat20",
            }
        ],
        "subtotal": "300.00",
        "tax_total": "60.00",
        "total": "360.00",
        **changes,
    }


class Platform:
    """The platform's backend: signs what it posts, as Standard Webhooks says."""

    def __init__(self, client: httpx.AsyncClient, secret: str) -> None:
        self.client = client
        self.webhook = Webhook(secret)

    async def post(
        self,
        body: Any,
        *,
        webhook_id: str | None = None,
        at: datetime | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        raw = json.dumps(body)
        msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        stamp = at or datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signature or self.webhook.sign(msg_id, stamp, raw),
        }
        return await self.client.post("/v1/events", content=raw, headers=headers)


@pytest.fixture
def platform(client: httpx.AsyncClient, settings: Settings) -> Platform:
    return Platform(client, settings.platform.webhook_secret.get_secret_value())


async def _count(db: Database, table: type[Any]) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def _record(db: Database, platform_id: str = "cl_1") -> SyncRecord:
    async with db.sessions() as session:
        row = await session.scalar(
            select(SyncRecord)
            .where(SyncRecord.platform_id == platform_id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def test_a_signed_event_is_stored_and_its_record_waits_held(
    platform: Platform, db: Database
) -> None:
    answer = await platform.post(client_event())
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    record = await _record(db)
    assert (record.kind.value, record.operation, record.version) == ("client", "upsert", 1)
    assert record.status is RecordStatus.HELD  # org_1 has no connection yet
    assert record.snapshot["name"] == "Acme Ltd"


async def test_a_connected_orgs_record_is_pending(
    platform: Platform, consent: Consent, db: Database
) -> None:
    await consent.connect("org_1", US_REALM)
    assert (await platform.post(client_event())).status_code == 202
    assert (await _record(db)).status is RecordStatus.PENDING


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong", "old", "future", "other body"],
)
async def test_a_bad_signature_is_401_and_stores_nothing(
    platform: Platform, db: Database, tamper: str
) -> None:
    """S3: nothing is read, let alone stored, before the signature holds."""
    event = client_event(event_id="evt_1")
    if tamper == "missing":
        answer = await platform.client.post("/v1/events", json=event)
    elif tamper == "wrong":
        answer = await platform.post(event, signature="v1,bm90IHRoZSBzaWduYXR1cmU=")
    elif tamper == "old":
        answer = await platform.post(event, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "future":
        answer = await platform.post(event, at=datetime.now(UTC) + timedelta(minutes=6))
    else:
        stamp = datetime.now(UTC)
        signature = platform.webhook.sign("msg_x", stamp, json.dumps({"other": 1}))
        answer = await platform.post(event, webhook_id="msg_x", at=stamp, signature=signature)
    _problem(answer, 401, "invalid_signature")
    assert await _count(db, PlatformEvent) == 0
    assert await _count(db, SyncRecord) == 0


async def test_one_event_delivered_ten_times_changes_one_record_once(
    platform: Platform, db: Database
) -> None:
    """R2: the same webhook-id ten times is one stored event and one record version."""
    answers = [await platform.post(client_event(), webhook_id="msg_same") for _ in range(10)]
    assert [answer.status_code for answer in answers] == [202] * 10
    assert answers[0].json() == {"accepted": 1, "duplicates": 0}
    assert {answer.json()["duplicates"] for answer in answers[1:]} == {1}
    assert await _count(db, PlatformEvent) == 1
    assert (await _record(db)).version == 1


async def test_a_batch_dedupes_by_each_events_own_id(platform: Platform, db: Database) -> None:
    first = client_event(event_id="evt_1")
    second = client_event("Acme Limited", event_id="evt_2", at=NOW + timedelta(minutes=1))
    assert (await platform.post([first, second])).json() == {"accepted": 2, "duplicates": 0}
    again = await platform.post([second, first, second])
    assert again.json() == {"accepted": 0, "duplicates": 3}
    record = await _record(db)
    assert (record.version, record.snapshot["name"]) == (2, "Acme Limited")


async def test_an_older_snapshot_arriving_late_is_logged_but_never_wins(
    platform: Platform, db: Database
) -> None:
    newer = client_event("Acme Newer", event_id="evt_new", at=NOW + timedelta(hours=1))
    older = client_event("Acme Older", event_id="evt_old", at=NOW)
    assert (await platform.post(newer)).status_code == 202
    assert (await platform.post(older)).json() == {"accepted": 1, "duplicates": 0}
    record = await _record(db)
    assert (record.snapshot["name"], record.version) == ("Acme Newer", 1)
    assert await _count(db, PlatformEvent) == 2
    # In one batch too, whatever the order they are listed in.
    batch = [
        client_event("Third", event_id="evt_3", at=NOW + timedelta(hours=3)),
        client_event("Second", event_id="evt_2", at=NOW + timedelta(hours=2)),
    ]
    assert (await platform.post(batch)).status_code == 202
    assert (await _record(db)).snapshot["name"] == "Third"


async def test_every_field_at_fault_in_every_event_is_named(
    platform: Platform, db: Database
) -> None:
    bad_money = {
        "id": "evt_a",
        "type": "invoice.upserted",
        "organization_id": "org_1",
        "occurred_at": NOW.isoformat(),
        "data": invoice_data(total=360.0),
    }
    no_id = client_event()
    unknown = {**client_event(event_id="evt_c"), "type": "client.renamed"}
    naive = {**client_event(event_id="evt_d"), "occurred_at": "2026-11-20T10:00:00"}
    answer = await platform.post([bad_money, no_id, unknown, naive])
    fields = {error["field"] for error in _problem(answer, 422, "validation_error")["errors"]}
    assert {"0.data.total", "1.id", "2.type", "3.occurred_at"} <= fields
    assert await _count(db, PlatformEvent) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b"[]", "body"),
        (json.dumps([client_event(event_id=f"e{n}") for n in range(101)]).encode(), "body"),
        (json.dumps({**client_event(), "data": {"id": "cl_1"}}).encode(), "data.name"),
        (json.dumps({**client_event(), "extra": 1}).encode(), "extra"),
    ],
)
async def test_a_malformed_delivery_is_a_422_naming_its_field(
    platform: Platform, body: bytes, field: str
) -> None:
    stamp = datetime.now(UTC)
    text = body.decode()
    answer = await platform.client.post(
        "/v1/events",
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": "msg_m",
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": platform.webhook.sign("msg_m", stamp, text),
        },
    )
    assert field in {e["field"] for e in _problem(answer, 422, "validation_error")["errors"]}


async def test_each_type_lands_where_it_belongs(platform: Platform, db: Database) -> None:
    def event(kind: str, data: dict[str, Any], n: int) -> dict[str, Any]:
        return {
            "id": f"evt_{n}",
            "type": kind,
            "organization_id": "org_1",
            "occurred_at": (NOW + timedelta(minutes=n)).isoformat(),
            "data": data,
        }

    events = [
        event("invoice.upserted", invoice_data(), 1),
        event("invoice.voided", invoice_data(status="void"), 2),
        event("service.upserted", {"id": "svc_1", "name": "Consulting", "unit_price": "150.00"}, 3),
        event("tax_rate.upserted", {"id": "tr_vat20", "name": "VAT", "rate": "20.00"}, 4),
        event("tax_rate.deleted", {"id": "tr_vat20"}, 5),
        event(
            "expense.upserted",
            {
                "id": "exp_1",
                "date": "2026-11-20",
                "supplier": {"id": "sup_1", "name": "Office Supplies Co"},
                "category_code": "office",
                "amount": "42.00",
                "amounts_are": "tax_inclusive",
                "tax_rate_id": "tr_vat20",
                "currency": "GBP",
                "paid": True,
            },
            6,
        ),
        event(
            "payment.recorded",
            {
                "id": "pay_1",
                "invoice_id": "inv_1",
                "amount": "100.00",
                "date": "2026-11-21",
                "currency": "GBP",
            },
            7,
        ),
        event("payment.deleted", {"id": "pay_1"}, 8),
    ]
    assert (await platform.post(events)).json() == {"accepted": 8, "duplicates": 0}
    invoice = await _record(db, "inv_1")
    assert (invoice.operation, invoice.version, invoice.snapshot["status"]) == ("void", 2, "void")
    payment = await _record(db, "pay_1")
    # A delete carries only the id: the last full snapshot is kept beside it.
    assert (payment.operation, payment.snapshot["amount"]) == ("delete", "100.00")
    assert (await _record(db, "exp_1")).kind.value == "expense"
    async with db.sessions() as session:
        entries = {row.platform_id: row for row in await session.scalars(select(CatalogueEntry))}
    assert entries["svc_1"].snapshot["name"] == "Consulting"
    assert entries["tr_vat20"].deleted is True
    assert entries["tr_vat20"].snapshot["rate"] == "20.00"


@pytest.fixture
async def no_database(settings: Settings, redis: ArqRedis) -> Any:
    db = Database.connect(
        "postgresql+asyncpg://qbsync@127.0.0.1:1/qbsync", DatabaseSettings(pool_timeout_seconds=1)
    )
    app = create_app(settings, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            yield Platform(client, settings.platform.webhook_secret.get_secret_value())
    await db.dispose()


async def test_the_database_down_acknowledges_nothing(no_database: Platform) -> None:
    """R1: a 503 the platform retries, never a 2xx for an event not stored."""
    answer = await no_database.post(client_event())
    _problem(answer, 503, "database_unavailable")
    assert answer.headers["retry-after"]


async def test_two_deliveries_touching_the_same_records_in_any_order_both_land(
    live: CommittedApp, settings: Settings, prefix: str
) -> None:
    """Records are locked in one order whatever order a batch lists them in, so two at once
    wait for each other instead of deadlocking (which Postgres would break with a 503)."""
    platform = Platform(live.client, settings.platform.webhook_secret.get_secret_value())
    org_id = f"{prefix}order"

    def batch(tag: str, ids: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{tag}_{n}",
                "type": "client.upserted",
                "organization_id": org_id,
                "occurred_at": (NOW + timedelta(seconds=n)).isoformat(),
                "data": {"id": f"cl_{n:03}", "name": f"Client {n}"},
            }
            for n in ids
        ]

    ids = list(range(80))
    for attempt in range(3):
        answers = await asyncio.gather(
            platform.post(batch(f"a{attempt}", ids)),
            platform.post(batch(f"b{attempt}", ids[::-1])),
        )
        assert [answer.status_code for answer in answers] == [202, 202], [
            answer.text for answer in answers
        ]


async def test_two_orgs_may_use_the_same_event_id(platform: Platform, db: Database) -> None:
    ours = client_event(event_id="evt_1")
    theirs = {**client_event(event_id="evt_1"), "organization_id": "org_2"}
    assert (await platform.post([ours, theirs])).json() == {"accepted": 2, "duplicates": 0}
    assert await _count(db, SyncRecord) == 2


@pytest.mark.parametrize("signature", [" v1,AAAA", "v1", "v1,a,b", "v1,AAA"])
async def test_a_malformed_signature_header_is_401_not_a_crash(
    platform: Platform, db: Database, signature: str
) -> None:
    _problem(await platform.post(client_event(), signature=signature), 401, "invalid_signature")
    assert await _count(db, PlatformEvent) == 0


async def test_a_body_that_is_not_utf8_is_refused(platform: Platform) -> None:
    stamp = datetime.now(UTC)
    raw = b'{"a":"\xff"}'
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_bytes",
        "webhook-timestamp": str(int(stamp.timestamp())),
    }
    unsigned = await platform.client.post(
        "/v1/events", content=raw, headers={**headers, "webhook-signature": "v1,AAAA"}
    )
    _problem(unsigned, 401, "invalid_signature")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"data": {"id": "cl_1", "name": "A", "future": float("nan")}}, "body"),
        ({"data": {"id": "cl_1", "name": "A", "future": "a\u0000b"}}, "body"),
        ({"data": {"id": "cl_1", "name": "A", "email": "a\u0001@x.test"}}, "data.email"),
        ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
        ({"occurred_at": "1999-12-31T23:59:59+00:00"}, "occurred_at"),
        ({"occurred_at": 1763632800}, "occurred_at"),
    ],
)
async def test_values_postgres_or_time_cannot_hold_are_a_422(
    platform: Platform, db: Database, change: dict[str, Any], field: str
) -> None:
    event = {**client_event(), **change}
    stamp = datetime.now(UTC)
    raw = json.dumps(event)  # NaN is written as JSON's NaN, as a careless sender would
    answer = await platform.client.post(
        "/v1/events",
        content=raw,
        headers={
            "content-type": "application/json",
            "webhook-id": "msg_v",
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": platform.webhook.sign("msg_v", stamp, raw),
        },
    )
    errors = _problem(answer, 422, "validation_error")["errors"]
    assert field in {error["field"] for error in errors}
    assert await _count(db, PlatformEvent) == 0


@pytest.mark.parametrize("body", [None, 1, "x", [None]])
async def test_a_body_that_is_no_event_names_where(platform: Platform, body: Any) -> None:
    errors = _problem(await platform.post(body), 422, "validation_error")["errors"]
    assert all(error["field"] for error in errors)


async def test_at_one_instant_a_delete_outranks_an_upsert_in_any_order(
    platform: Platform, db: Database
) -> None:
    upsert = client_event(event_id="u")
    delete = {**client_event(event_id="d"), "type": "client.deleted", "data": {"id": "cl_1"}}
    await platform.post([delete, upsert])
    first = await _record(db)
    assert first.operation == "delete"
    # The same pair arriving one by one, the other way round, ends the same.
    other = {**upsert, "organization_id": "org_2"}
    await platform.post(other)
    await platform.post({**delete, "organization_id": "org_2"})
    async with db.sessions() as session:
        second = await session.scalar(select(SyncRecord).where(SyncRecord.org_id == "org_2"))
    assert second is not None
    assert second.operation == "delete"


async def test_a_voided_invoice_says_void(platform: Platform) -> None:
    event = {
        "id": "evt_v",
        "type": "invoice.voided",
        "organization_id": "org_1",
        "occurred_at": NOW.isoformat(),
        "data": invoice_data(status="sent"),
    }
    errors = _problem(await platform.post(event), 422, "validation_error")["errors"]
    assert [error["field"] for error in errors] == ["data.status"]


async def test_a_deliverys_id_never_matches_an_events_id(platform: Platform, db: Database) -> None:
    assert (await platform.post(client_event(event_id="evt_1"))).status_code == 202
    other = {**client_event(), "data": {"id": "cl_2", "name": "Other"}}
    answer = await platform.post(other, webhook_id="evt:org_1:evt_1")
    assert answer.json() == {"accepted": 1, "duplicates": 0}


async def test_a_long_webhook_id_is_refused(platform: Platform) -> None:
    answer = await platform.post(client_event(), webhook_id="m" * 300)
    _problem(answer, 401, "invalid_signature")


async def test_the_same_events_racing_in_opposite_orders_both_land(
    live: CommittedApp, settings: Settings, prefix: str
) -> None:
    """Event rows are inserted in key order too: no deadlock between two redeliveries."""
    platform = Platform(live.client, settings.platform.webhook_secret.get_secret_value())
    org_id = f"{prefix}same"
    events = [
        {
            "id": f"e{n}",
            "type": "client.upserted",
            "organization_id": org_id,
            "occurred_at": (NOW + timedelta(seconds=n)).isoformat(),
            "data": {"id": f"cl_{n:03}", "name": f"Client {n}"},
        }
        for n in range(80)
    ]
    for _ in range(3):
        answers = await asyncio.gather(platform.post(events), platform.post(events[::-1]))
        assert [answer.status_code for answer in answers] == [202, 202]
