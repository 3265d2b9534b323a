"""The sync log over HTTP: records seeded through the real intake (`POST /v1/events`), statuses
only the push produces written with SQL, and every answer read as the settings page reads it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import select, update

from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.mappings.references import encode_cursor
from qbsync.models import Connection, ConnectionStatus, RecordStatus, SyncRecord
from qbsync.observability import CompanyCallCounter
from qbsync.queue import JobQueue
from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync.schedule import PUSH_JOB, push_key
from tests.conftest import TokenFactory
from tests.connections.conftest import US_REALM, simulator_settings
from tests.mappings.conftest import Org, fields, org, problem, us
from tests.sync.test_events_in import Platform, invoice_data

__all__ = ["org", "us"]

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ITEM_KEYS = {
    "kind",
    "platform_id",
    "status",
    "version",
    "qbo_id",
    "qbo_doc_number",
    "attempts",
    "warnings",
    "last_error",
    "payment_status",
    "removed_in_quickbooks",
    "updated_at",
}
DETAIL_KEYS = ITEM_KEYS | {
    "operation",
    "synced_version",
    "synced_at",
    "created_at",
    "next_attempt_at",
    "snapshot_summary",
}
STATUSES = ["pending", "in_progress", "synced", "failed", "held", "not_pushed", "ignored"]
KINDS = ["client", "invoice", "expense", "payment"]


@pytest.fixture
def settings(simulator: SimulatorHandle, key_prefix: str) -> Settings:
    """Each test its own Redis keys: the calls one test counted are never another test's."""
    return simulator_settings(simulator, f"{key_prefix}:{uuid.uuid4().hex[:8]}")


@pytest.fixture
def platform(client: httpx.AsyncClient, settings: Settings) -> Platform:
    return Platform(client, settings.platform.webhook_secret.get_secret_value())


def event(kind: str, data: dict[str, Any], n: int, org_id: str = "org_1") -> dict[str, Any]:
    return {
        "id": f"evt_{n}",
        "type": kind,
        "organization_id": org_id,
        "occurred_at": (NOW + timedelta(minutes=n)).isoformat(),
        "data": data,
    }


def client_data(platform_id: str = "cl_1", **changes: Any) -> dict[str, Any]:
    return {
        "id": platform_id,
        "name": "Acme Ltd",
        "email": "ap@acme.test",
        "company_name": "Acme Holdings",
        **changes,
    }


def expense_data(**changes: Any) -> dict[str, Any]:
    return {
        "id": "exp_1",
        "date": "2026-11-19",
        "supplier": {"id": "sup_1", "name": "Office Supplies Co"},
        "category_code": "office",
        "amount": "42.00",
        "amounts_are": "tax_inclusive",
        "currency": "GBP",
        "paid": True,
        **changes,
    }


def payment_data(**changes: Any) -> dict[str, Any]:
    return {
        "id": "pay_1",
        "invoice_id": "inv_1",
        "amount": "100.00",
        "date": "2026-11-21",
        "currency": "GBP",
        **changes,
    }


def one_of_each(org_id: str = "org_1") -> list[dict[str, Any]]:
    return [
        event("client.upserted", client_data(), 1, org_id),
        event("invoice.upserted", invoice_data(), 2, org_id),
        event("expense.upserted", expense_data(), 3, org_id),
        event("payment.recorded", payment_data(), 4, org_id),
    ]


async def seed(platform: Platform, events: list[dict[str, Any]]) -> None:
    answer = await platform.post(events)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == len(events)


async def set_record(db: Database, platform_id: str, **values: Any) -> None:
    """What the push engine would have written: statuses the intake cannot produce."""
    async with db.sessions() as session:
        await session.execute(
            update(SyncRecord).where(SyncRecord.platform_id == platform_id).values(**values)
        )
        await session.commit()


async def stored(db: Database, platform_id: str) -> SyncRecord:
    async with db.sessions() as session:
        row = await session.scalar(
            select(SyncRecord)
            .where(SyncRecord.platform_id == platform_id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


async def empty_queue(redis: ArqRedis, settings: Settings) -> None:
    """As if the worker had taken the push job the intake queued (no worker runs here)."""
    await redis.delete(settings.redis.queue_name)
    await JobQueue(redis, settings.redis.queue_name).started(push_key("org_1"))


async def queued_pushes(redis: ArqRedis, settings: Settings) -> list[tuple[Any, ...]]:
    jobs = await redis.queued_jobs(queue_name=settings.redis.queue_name)
    return [tuple(job.args) for job in jobs if job.function == PUSH_JOB]


def other_org(org: Org, make_token: TokenFactory) -> Org:
    return Org(org.client, make_token("org_2"), org.simulator, US_REALM)


async def test_the_log_lists_each_record_with_what_a_person_needs(
    org: Org, platform: Platform
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    answer = await org.get("sync/records")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["next_cursor"] is None
    [item] = page["items"]
    assert set(item) == ITEM_KEYS
    updated_at = item.pop("updated_at")
    assert item == {
        "kind": "invoice",
        "platform_id": "inv_1",
        "status": "held",  # org_1 is not connected
        "version": 1,
        "qbo_id": None,
        "qbo_doc_number": None,
        "attempts": 0,
        "warnings": [],
        "last_error": None,
        "payment_status": None,
        "removed_in_quickbooks": None,
    }
    assert datetime.fromisoformat(updated_at).utcoffset() == timedelta(0)


async def test_records_are_paged_newest_first_across_three_pages(
    org: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("client.upserted", client_data(f"cl_{n}"), n) for n in range(7)])
    for n in range(7):
        await set_record(db, f"cl_{n}", updated_at=NOW + timedelta(minutes=n))
    # cl_4 and cl_3 changed at one instant, and fall either side of the first page's end.
    await set_record(db, "cl_3", updated_at=NOW + timedelta(minutes=4))
    rows = [await stored(db, f"cl_{n}") for n in range(7)]
    expected = [row.platform_id for row in sorted(rows, key=lambda r: (r.updated_at, r.id))][::-1]
    assert expected[:2] == ["cl_6", "cl_5"]

    seen: list[list[str]] = []
    cursor: str | None = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        answer = await org.get("sync/records", **params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen.append([item["platform_id"] for item in page["items"]])
        cursor = page["next_cursor"]
    assert [len(ids) for ids in seen] == [3, 3, 1]
    assert [platform_id for ids in seen for platform_id in ids] == expected
    assert cursor is None


async def test_the_log_filters_by_status_and_by_kind(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, one_of_each())
    await set_record(db, "inv_1", status=RecordStatus.FAILED)

    async def listed(**params: Any) -> list[str]:
        answer = await us.get("sync/records", **params)
        assert answer.status_code == 200, answer.text
        return sorted(item["platform_id"] for item in answer.json()["items"])

    assert await listed() == ["cl_1", "exp_1", "inv_1", "pay_1"]
    assert await listed(status="failed") == ["inv_1"]
    assert await listed(status="pending") == ["cl_1", "exp_1", "pay_1"]
    assert await listed(kind="expense") == ["exp_1"]
    assert await listed(kind="invoice", status="pending") == []
    assert await listed(kind="invoice", status="failed") == ["inv_1"]
    assert await listed(status="held") == []


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"cursor": "not a cursor!"}, "invalid_cursor", "cursor"),
        ({"cursor": encode_cursor(("yesterday", "cl_1"))}, "invalid_cursor", "cursor"),
        ({"cursor": encode_cursor((NOW.isoformat(), "not-a-uuid"))}, "invalid_cursor", "cursor"),
        (
            {"cursor": encode_cursor(("2026-11-20T10:00:00", str(uuid.uuid4())))},
            "invalid_cursor",
            "cursor",
        ),
        ({"status": "done"}, "validation_error", "status"),
        ({"kind": "services"}, "validation_error", "kind"),
        ({"limit": 0}, "validation_error", "limit"),
        ({"limit": 201}, "validation_error", "limit"),
    ],
)
async def test_a_bad_query_is_a_422_naming_its_field(
    org: Org, params: dict[str, Any], code: str, field: str
) -> None:
    body = problem(await org.get("sync/records", **params), 422, code)
    assert fields(body) == [field]


async def test_a_bad_kind_in_the_path_is_a_422_naming_it(org: Org) -> None:
    body = problem(await org.get("sync/records/services/svc_1"), 422, "validation_error")
    assert fields(body) == ["kind"]


async def test_another_orgs_record_is_not_found(
    org: Org, platform: Platform, db: Database, make_token: TokenFactory
) -> None:
    """S1: org_2 sees nothing of org_1's records and can change none of them."""
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.FAILED)
    intruder = other_org(org, make_token)
    problem(await intruder.get("sync/records/invoice/inv_1"), 404, "record_not_found")
    problem(await intruder.post("sync/records/invoice/inv_1/retry", None), 404, "record_not_found")
    problem(await intruder.post("sync/records/invoice/inv_1/ignore", None), 404, "record_not_found")
    assert (await intruder.get("sync/records")).json() == {"items": [], "next_cursor": None}
    counts = (await intruder.get("sync/summary")).json()["counts"]
    assert {n for by_status in counts.values() for n in by_status.values()} == {0}
    assert (await stored(db, "inv_1")).status is RecordStatus.FAILED
    assert (await org.get("sync/records/invoice/inv_1")).status_code == 200


async def test_an_unknown_record_is_not_found(org: Org) -> None:
    problem(await org.get("sync/records/client/cl_404"), 404, "record_not_found")
    problem(await org.post("sync/records/client/cl_404/retry", None), 404, "record_not_found")


async def test_each_kinds_detail_summarises_its_snapshot(org: Org, platform: Platform) -> None:
    await seed(platform, [*one_of_each(), event("payment.deleted", {"id": "pay_1"}, 5)])

    async def detail(kind: str, platform_id: str) -> dict[str, Any]:
        answer = await org.get(f"sync/records/{kind}/{platform_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert set(body) == DETAIL_KEYS
        return body

    client = await detail("client", "cl_1")
    assert client["snapshot_summary"] == {
        "name": "Acme Ltd",
        "email": "ap@acme.test",
        "company_name": "Acme Holdings",
    }
    invoice = await detail("invoice", "inv_1")
    assert invoice["snapshot_summary"] == {
        "number": "INV-0042",
        "client_name": "Acme Ltd",
        "issue_date": "2026-11-20",
        "currency": "GBP",
        "total": "360.00",
        "status": "sent",
    }
    assert (invoice["operation"], invoice["synced_version"], invoice["synced_at"]) == (
        "upsert",
        None,
        None,
    )
    assert invoice["next_attempt_at"] is None
    assert datetime.fromisoformat(invoice["created_at"]).utcoffset() == timedelta(0)
    expense = await detail("expense", "exp_1")
    assert expense["snapshot_summary"] == {
        "supplier_name": "Office Supplies Co",
        "date": "2026-11-19",
        "amount": "42.00",
        "currency": "GBP",
        "category_code": "office",
    }
    payment = await detail("payment", "pay_1")
    # The delete carried only the id: the record keeps the payment's last full snapshot.
    assert (payment["operation"], payment["version"]) == ("delete", 2)
    assert payment["snapshot_summary"] == {
        "invoice_id": "inv_1",
        "amount": "100.00",
        "date": "2026-11-21",
        "currency": "GBP",
    }


async def test_the_detail_shows_the_last_error_and_warnings_as_stored(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    last_error = {
        "code": "duplicate_document_number",
        "message": "QuickBooks already has an invoice numbered INV-0042: renumber it and retry.",
        "fault": {
            "code": "6140",
            "element": "DocNumber",
            "type": "ValidationFault",
            "message": "Duplicate Document Number Error",
            "detail": "Duplicate Document Number Error : You must specify a different number.",
        },
        "intuit_tid": "1-6543a2b3-4c5d6e7f8a9b0c1d2e3f4a5b",
    }
    warning = {"code": "total_differs", "message": "QuickBooks totals 360.01.", "diff": "0.01"}
    synced_at = NOW + timedelta(hours=1)
    next_at = NOW + timedelta(hours=2)
    await set_record(
        db,
        "inv_1",
        status=RecordStatus.FAILED,
        attempts=3,
        last_error=last_error,
        warnings=[warning],
        qbo_id="130",
        qbo_doc_number="INV-0042",
        synced_version=1,
        synced_at=synced_at,
        next_attempt_at=next_at,
    )
    body = (await us.get("sync/records/invoice/inv_1")).json()
    assert body["last_error"] == last_error
    assert body["warnings"] == [warning]
    assert (body["status"], body["attempts"], body["qbo_id"], body["qbo_doc_number"]) == (
        "failed",
        3,
        "130",
        "INV-0042",
    )
    assert datetime.fromisoformat(body["synced_at"]) == synced_at
    assert datetime.fromisoformat(body["next_attempt_at"]) == next_at
    listed = (await us.get("sync/records")).json()["items"][0]
    assert (listed["last_error"], listed["warnings"]) == (last_error, [warning])


@pytest.mark.parametrize(
    ("status", "forced"),
    [(RecordStatus.FAILED, False), (RecordStatus.NOT_PUSHED, True), (RecordStatus.IGNORED, False)],
)
async def test_a_retry_puts_the_record_back_in_line_and_queues_the_push(
    us: Org,
    platform: Platform,
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    status: RecordStatus,
    forced: bool,
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=status, next_attempt_at=NOW + timedelta(hours=1))
    await empty_queue(redis, settings)
    before = (await stored(db, "inv_1")).updated_at

    answer = await us.post("sync/records/invoice/inv_1/retry", None)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) == DETAIL_KEYS
    assert (body["status"], body["next_attempt_at"]) == ("pending", None)
    record = await stored(db, "inv_1")
    assert (record.status, record.next_attempt_at) == (RecordStatus.PENDING, None)
    # Only a record the settings kept back is pushed whatever the settings say.
    assert record.force_push is forced
    assert datetime.fromisoformat(body["updated_at"]) == record.updated_at > before
    assert await queued_pushes(redis, settings) == [("org_1",)]


async def test_retrying_a_pending_record_asks_for_the_push_again(
    us: Org, platform: Platform, db: Database, redis: ArqRedis, settings: Settings
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await empty_queue(redis, settings)
    answer = await us.post("sync/records/invoice/inv_1/retry", None)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    assert (await stored(db, "inv_1")).force_push is False
    assert await queued_pushes(redis, settings) == [("org_1",)]


async def test_a_record_being_pushed_can_be_neither_retried_nor_ignored(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.IN_PROGRESS)
    problem(await us.post("sync/records/invoice/inv_1/retry", None), 409, "record_in_progress")
    problem(await us.post("sync/records/invoice/inv_1/ignore", None), 409, "record_in_progress")
    assert (await stored(db, "inv_1")).status is RecordStatus.IN_PROGRESS


async def test_a_record_quickbooks_holds_has_nothing_to_retry(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.SYNCED, synced_version=1, synced_at=NOW)
    problem(await us.post("sync/records/invoice/inv_1/retry", None), 409, "nothing_to_retry")
    assert (await stored(db, "inv_1")).status is RecordStatus.SYNCED


async def test_a_synced_record_with_a_newer_version_can_be_retried(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.SYNCED, version=2, synced_version=1)
    answer = await us.post("sync/records/invoice/inv_1/retry", None)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"


async def test_a_held_record_asks_to_reconnect(
    org: Org, platform: Platform, db: Database, redis: ArqRedis, settings: Settings
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    body = problem(await org.post("sync/records/invoice/inv_1/retry", None), 409, "not_connected")
    assert "reconnect" in body["detail"]
    assert (await stored(db, "inv_1")).status is RecordStatus.HELD
    assert await queued_pushes(redis, settings) == []


async def test_an_ignored_record_stays_aside_until_it_is_retried(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.FAILED)
    answer = await us.post("sync/records/invoice/inv_1/ignore", None)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == DETAIL_KEYS
    assert answer.json()["status"] == "ignored"
    # A newer version from the platform does not bring it back into the push.
    await seed(platform, [event("invoice.upserted", invoice_data(total="400.00"), 2)])
    record = (await us.get("sync/records/invoice/inv_1")).json()
    assert (record["status"], record["version"]) == ("ignored", 2)
    assert (await us.get("sync/records", status="ignored")).json()["items"][0]["version"] == 2
    retried = await us.post("sync/records/invoice/inv_1/retry", None)
    assert retried.json()["status"] == "pending"


async def test_the_summary_counts_every_kind_and_status(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(
        platform,
        [*one_of_each(), event("invoice.upserted", invoice_data(id="inv_2"), 5)],
    )
    last_push = NOW + timedelta(hours=3)
    await set_record(db, "cl_1", status=RecordStatus.SYNCED, synced_version=1, synced_at=NOW)
    await set_record(db, "inv_1", status=RecordStatus.SYNCED, synced_version=1, synced_at=last_push)
    await set_record(db, "inv_2", status=RecordStatus.FAILED)
    await set_record(db, "exp_1", status=RecordStatus.NOT_PUSHED)

    answer = await us.get("sync/summary")
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    zeros = dict.fromkeys(STATUSES, 0)
    assert summary["counts"] == {
        "client": {**zeros, "synced": 1},
        "invoice": {**zeros, "synced": 1, "failed": 1},
        "expense": {**zeros, "not_pushed": 1},
        "payment": {**zeros, "pending": 1},
    }
    assert datetime.fromisoformat(summary["last_push_at"]) == last_push
    # Connecting read the company (CompanyInfo, Preferences): reads Intuit meters, no writes.
    calls = summary["quickbooks_calls_today"]
    assert calls == {
        "core": 0,
        "coreplus": us.calls(),
        "date": datetime.now(UTC).date().isoformat(),
    }
    assert us.calls() > 0


async def test_a_new_orgs_summary_is_all_zeros(org: Org) -> None:
    summary = (await org.get("sync/summary")).json()
    assert set(summary["counts"]) == set(KINDS)
    assert all(by_status == dict.fromkeys(STATUSES, 0) for by_status in summary["counts"].values())
    assert summary["last_push_at"] is None
    assert summary["quickbooks_calls_today"] == {
        "core": 0,
        "coreplus": 0,
        "date": datetime.now(UTC).date().isoformat(),
    }


async def test_a_record_of_an_org_quickbooks_no_longer_accepts_asks_to_reconnect(
    us: Org, platform: Platform, db: Database
) -> None:
    await seed(platform, [event("invoice.upserted", invoice_data(), 1)])
    await set_record(db, "inv_1", status=RecordStatus.FAILED)
    async with db.sessions() as session:
        await session.execute(update(Connection).values(status=ConnectionStatus.NEEDS_REAUTH))
        await session.commit()
    body = problem(await us.post("sync/records/invoice/inv_1/retry", None), 409, "needs_reauth")
    assert "reconnect" in body["detail"]
    assert (await stored(db, "inv_1")).status is RecordStatus.FAILED


async def test_the_summary_is_a_503_while_redis_is_down(us: Org, app: FastAPI) -> None:
    """Redis holds the call counts: a summary without them would understate what was used."""
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        intuit: IntuitAccess = app.state.intuit
        app.state.intuit = replace(intuit, calls=CompanyCallCounter(dead, "qbsync-test"))
        answer = await us.get("sync/summary")
    finally:
        await dead.aclose()
    problem(answer, 503, "service_unavailable")
    assert answer.headers["retry-after"] == "5"
