"""Reconciliation: CDC since the watermark brings what webhooks missed (R10), costs what changed
(P5, P7), runs once however often it is asked for at once, and re-drives lost work (R5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select, update

from qbsync.mappings.company import find_company
from qbsync.models import QboWebhookEvent
from qbsync.models.base import utcnow
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.queue import JobQueue
from qbsync.simulator.admin import WebhookDropRequest
from qbsync.simulator.faults import FaultSpec
from qbsync.sync import reconcile
from qbsync.sync.tasks import redrive_sync_records
from tests.mappings.conftest import Org, org, uk, us
from tests.sync.pulling import (
    Accountant,
    Relay,
    relay,
    settings,
    simulator,
    webhooks_delivered,
)
from tests.sync.pushing import Books, books_for
from tests.sync.test_payment_status import _us_books, _us_invoice

__all__ = [
    "books_for",
    "org",
    "relay",
    "settings",
    "simulator",
    "uk",
    "us",
]


@pytest.fixture(autouse=True)
def _relay_to_qbsync(relay: Relay, client: httpx.AsyncClient) -> None:
    relay.target = client


async def _reconcile(books: Books) -> dict[str, Any]:
    answer = await books.org.post("sync/reconcile", {})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    await books.push()
    summary = (await books.org.get("sync/summary")).json()
    last: dict[str, Any] = summary["last_reconciliation"]
    assert last is not None, summary
    assert last["error"] is None, last
    return last


def _cdc_calls(books: Books) -> int:
    return books.requests(" cdc")


async def _two_invoices_no_webhooks(us: Org, books_for: Any, relay: Relay) -> Accountant:
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.send("invoice.upserted", _us_invoice("inv_2"))
    await books.push()
    await accountant.settle()  # the invoices' own webhooks
    await _reconcile(books)  # the watermark: from here on only changes count
    us.simulator.admin.drop_webhooks(WebhookDropRequest(drop=True))
    return accountant


async def test_a_day_without_webhooks_cdc_alone_brings_every_status(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """R10: every webhook is lost; one reconciliation brings each payment status."""
    accountant = await _two_invoices_no_webhooks(us, books_for, relay)
    books = accountant.books
    await accountant.pays("inv_1", "15.00")
    await accountant.pays("inv_2", "40.00")
    await accountant.settle()
    assert await accountant.updates("inv_1") == [], "no webhook came"
    assert relay.held == []

    cdc_before = _cdc_calls(books)
    last = await _reconcile(books)
    assert (await accountant.latest("inv_1"))["status"] == "partially_paid"
    assert (await accountant.latest("inv_1"))["balance"] == "25.00"
    assert (await accountant.latest("inv_2"))["status"] == "paid"
    assert last["mode"] == "cdc"
    assert last["applied"]["invoices_updated"] == 2
    assert last["applied"]["events_sent"] == 2
    assert _cdc_calls(books) == cdc_before + 1
    # CDC gave the invoices and payments: nothing had to be read again.
    assert last["calls"] == {"core": 0, "coreplus": 1}


async def test_an_idle_company_costs_one_cdc_call(us: Org, books_for: Any, relay: Relay) -> None:
    """P7: nothing changed → one CorePlus call, no event."""
    accountant = await _two_invoices_no_webhooks(us, books_for, relay)
    events = len(await accountant.books.events_out())
    month_before = (await us.get("sync/summary")).json()["quickbooks_calls_this_month"]
    last = await _reconcile(accountant.books)
    assert last["calls"] == {"core": 0, "coreplus": 1}
    assert last["applied"]["events_sent"] == 0
    month = (await us.get("sync/summary")).json()["quickbooks_calls_this_month"]
    assert month["coreplus"] == month_before["coreplus"] + 1
    assert month["budget"] == 20_000
    assert len(await accountant.books.events_out()) == events


async def test_asked_for_twice_it_runs_once(us: Org, books_for: Any, relay: Relay) -> None:
    """Two requests before the worker gets to them: one run, one CDC call. A run already
    holding the company makes another one skip (the lease in Postgres)."""
    books = await _us_books(us, books_for)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    before = _cdc_calls(books)
    for _ in range(2):
        assert (await us.post("sync/reconcile", {})).status_code == 202
    await books.push()
    assert _cdc_calls(books) == before + 1

    company = await find_company(books.db, "org_1")
    assert company is not None
    reconcile_settings = books.settings.reconcile
    assert await reconcile.claim_run(books.db, company, reconcile_settings) is not None
    assert await reconcile.claim_run(books.db, company, reconcile_settings) is None
    assert (await us.post("sync/reconcile", {})).status_code == 202
    await books.push()
    assert _cdc_calls(books) == before + 1, "the leased company was not read again"


async def test_a_watermark_older_than_cdc_reaches_reads_the_open_invoices_again(
    us: Org, books_for: Any, relay: Relay
) -> None:
    accountant = await _two_invoices_no_webhooks(us, books_for, relay)
    books = accountant.books
    await accountant.pays("inv_2", "40.00")
    async with books.db.sessions() as session:
        await session.execute(
            update(CdcWatermark).values(changed_since=utcnow() - timedelta(days=40))
        )
        await session.commit()
    cdc_before = _cdc_calls(books)
    last = await _reconcile(books)
    assert last["mode"] == "full"
    assert _cdc_calls(books) == cdc_before, "CDC would refuse a 40-day window"
    assert (await accountant.latest("inv_2"))["status"] == "paid"
    assert await accountant.updates("inv_1") == []
    # What the mappings and settings point at read again (the matched customer, the mapped
    # item, the income account: one query each), both invoices in one batch call, then the
    # payment of the one that changed.
    assert last["calls"]["coreplus"] == 5


async def test_work_whose_jobs_redis_lost_is_pushed_after_a_reconciliation(
    us: Org, books_for: Any, relay: Relay, redis: ArqRedis
) -> None:
    """R5: Redis flushed with records waiting → the reconciliation re-drives them from
    Postgres, nothing is lost."""
    books = await _us_books(us, books_for)
    for n in range(3):
        await books.send("invoice.upserted", _us_invoice(f"inv_{n}"))
    await redis.flushdb()
    await _reconcile(books)
    for n in range(3):
        record = await books.record("invoice", f"inv_{n}")
        assert record.status.value == "synced", record.last_error


async def test_reconcile_needs_a_connected_company(org: Org) -> None:
    answer = await org.post("sync/reconcile", {})
    assert answer.status_code == 409
    assert answer.json()["code"] == "not_connected"


async def test_what_webhooks_already_brought_is_not_sent_again(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """CDC overlaps the webhooks: the same payment read again changes nothing and tells the
    platform nothing twice."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    await accountant.settle()
    await accountant.pays("inv_1", "10.00")
    await accountant.settle()
    assert [u["status"] for u in await accountant.updates("inv_1")] == ["partially_paid"]
    last = await _reconcile(books)
    assert last["applied"]["events_sent"] == 0
    assert [u["status"] for u in await accountant.updates("inv_1")] == ["partially_paid"]


async def test_the_cron_picks_companies_whose_interval_has_passed(
    us: Org, books_for: Any, relay: Relay
) -> None:
    books = await _us_books(us, books_for)
    await books.configure(reconcile_interval_minutes=30)
    assert await reconcile.due_companies(books.db) == ["org_1"], "never reconciled"
    await _reconcile(books)
    assert await reconcile.due_companies(books.db) == []
    async with books.db.sessions() as session:
        await session.execute(
            update(CdcWatermark).values(last_run_at=utcnow() - timedelta(minutes=31))
        )
        await session.commit()
    assert await reconcile.due_companies(books.db) == ["org_1"]


async def test_changes_whose_pull_redis_lost_are_pulled_after_a_reconciliation(
    us: Org, books_for: Any, relay: Relay, redis: ArqRedis
) -> None:
    """R5: webhooks stored, then Redis flushed before their pull ran: the reconciliation
    queues the pull again from what Postgres holds."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    await accountant.settle()
    await accountant.pays("inv_1", "40.00")
    await webhooks_delivered(accountant.simulator, relay)
    await relay.flush()  # stored in Postgres, pull queued in Redis...
    await redis.flushdb()  # ...and lost
    await books.push()
    assert await accountant.updates("inv_1") == []
    us.simulator.admin.drop_webhooks(WebhookDropRequest(drop=True))
    await _reconcile(books)
    assert (await accountant.latest("inv_1"))["status"] == "paid"
    async with books.db.sessions() as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(QboWebhookEvent)
            .where(QboWebhookEvent.processed_at.is_(None))
        )
    assert waiting == 0, "every stored change was pulled"


async def test_the_redrive_cron_pulls_changes_whose_pull_redis_lost(
    us: Org, books_for: Any, relay: Relay, redis: ArqRedis
) -> None:
    """R5, without waiting for the reconciliation: the minute's redrive cron finds the stored
    changes in Postgres and queues their pull."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    await accountant.settle()
    await accountant.pays("inv_1", "40.00")
    await webhooks_delivered(accountant.simulator, relay)
    await relay.flush()
    await redis.flushdb()
    queue = JobQueue(redis, books.settings.redis.queue_name)
    assert await redrive_sync_records({"db": books.db, "queue": queue}) == 1
    await books.push()
    assert (await accountant.latest("inv_1"))["status"] == "paid"


async def test_a_reference_list_cdc_shows_changed_is_read_again(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """Webhooks lost, a customer changed in QuickBooks: after the reconciliation the settings
    page's pick-list is read afresh, not served stale from the cache."""
    accountant = await _two_invoices_no_webhooks(us, books_for, relay)
    assert (await us.get("customers")).status_code == 200
    reads = dict(us.simulator.state.stats.requests_by_endpoint)
    await us.get("customers")
    assert us.simulator.state.stats.requests_by_endpoint == reads, "served from the cache"
    us.simulator.admin.deactivate(us.realm_id, "Customer", us.qbo_id("Customer", "Cool Cars"))
    await _reconcile(accountant.books)
    reads = dict(us.simulator.state.stats.requests_by_endpoint)
    await us.get("customers")
    assert us.simulator.state.stats.requests_by_endpoint != reads, "read again"


async def test_a_failed_run_says_why_and_keeps_its_watermark(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """QuickBooks refuses the CDC call: the summary shows the error and what was spent, not
    the run before's figures, and the next run reads from the same place."""
    accountant = await _two_invoices_no_webhooks(us, books_for, relay)
    books = accountant.books
    before = (await us.get("sync/summary")).json()["last_reconciliation"]
    us.simulator.admin.inject(
        FaultSpec(kind="error", method="GET", path="/cdc", status_code=503, times=10)
    )
    assert (await us.post("sync/reconcile", {})).status_code == 202
    await books.push()
    failed = (await us.get("sync/summary")).json()["last_reconciliation"]
    assert failed["error"] is not None
    assert failed["mode"] is None
    assert failed["applied"]["events_sent"] == 0
    assert failed["calls"]["coreplus"] == 3, "three tries of the CDC call, each metered"
    assert failed["error"].startswith("QuickBooks"), failed["error"]
    assert failed["changes_read_up_to"] == before["changes_read_up_to"]


@pytest.mark.parametrize("cdc_max_objects", [3])
async def test_more_changes_in_one_second_than_cdc_holds_fall_back_to_a_full_read(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """CDC can't page past its cap within one second: the run reads the invoices again
    instead of skipping what the cap cut off."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    for n in range(4):
        await books.send("invoice.upserted", _us_invoice(f"inv_{n}"))
    await books.push()
    await accountant.settle()
    await _reconcile(books)
    us.simulator.admin.drop_webhooks(WebhookDropRequest(drop=True))
    for n in range(4):
        await accountant.pays(f"inv_{n}", "40.00")
    last = await _reconcile(books)
    assert last["mode"] == "full"
    for n in range(4):
        assert (await accountant.latest(f"inv_{n}"))["status"] == "paid"
