"""The reconciliation's edges: its lease, an old company's changes, a long webhook outage."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from qbsync.mappings.company import find_company
from qbsync.models import QboWebhookEvent
from qbsync.models.base import utcnow
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.simulator.admin import WebhookDropRequest
from qbsync.sync import reconcile, webhook_claims
from qbsync.sync.changes import Applied
from tests.connections.conftest import OTHER_US_REALM
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.sync.pulling import Accountant, Relay, relay, simulator
from tests.sync.pushing import books_for
from tests.sync.test_payment_status import _us_books, _us_invoice
from tests.sync.test_reconcile import _reconcile

__all__ = ["books_for", "org", "relay", "settings", "simulator", "uk", "us"]


@pytest.fixture(autouse=True)
def _relay_to_qbsync(relay: Relay, client: httpx.AsyncClient) -> None:
    relay.target = client


async def test_a_run_whose_lease_ran_out_does_not_free_the_run_that_took_over(
    us: Org, books_for: Any
) -> None:
    """Run A outlives its lease (a slow full re-read, a stalled worker); run B takes the
    company. When A finishes it must not clear B's lease (nor rewind B's watermark), or a
    third run reads CDC at the same time as B."""
    books = await _us_books(us, books_for)
    company = await find_company(books.db, "org_1")
    assert company is not None
    cfg = books.settings.reconcile
    run_a = await reconcile.claim_run(books.db, company, cfg)
    assert run_a is not None
    async with books.db.sessions() as session:
        await session.execute(update(CdcWatermark).values(lease_until=utcnow() - timedelta(1)))
        await session.commit()
    assert await reconcile.claim_run(books.db, company, cfg) is not None  # run B
    finished_a = reconcile.Finished("cdc", utcnow() - timedelta(hours=1), Applied())
    await reconcile.finish(books.db, company, run_a, finished_a, {"core": 0, "coreplus": 1})
    assert await reconcile.claim_run(books.db, company, cfg) is None, "B still holds it"


async def test_stored_changes_of_a_company_the_org_left_do_not_requeue_pulls_for_ever(
    us: Org, books_for: Any
) -> None:
    """Changes stored for the company the org was connected to before are never pulled (the
    pull takes only the current company's); the redrive must not queue an idle pull for the
    org every minute because of them."""
    books = await _us_books(us, books_for)
    async with books.db.sessions() as session:
        session.add(
            QboWebhookEvent(
                id=uuid.uuid4(),
                event_id="ev-old-company",
                realm_id=OTHER_US_REALM,
                entity="Invoice",
                entity_id="1",
                operation="Update",
                occurred_at=utcnow(),
                received_at=utcnow(),
                org_id="org_1",
            )
        )
        await session.commit()
    async with books.db.sessions() as session:
        assert await webhook_claims.waiting_orgs(session) == []
        assert not await webhook_claims.has_waiting(session, "org_1", us.realm_id)


async def test_a_payment_deleted_from_a_paid_invoice_during_a_long_outage_is_seen(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """Webhooks lost for longer than CDC reaches: the full re-read reads only invoices qbsync
    thinks open. An invoice it thinks paid whose payment the accountant deleted stays 'paid'
    for ever (no later CDC will show the old change)."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    await accountant.settle()
    payment = await accountant.pays("inv_1", "40.00")
    await accountant.settle()
    assert (await accountant.latest("inv_1"))["status"] == "paid"
    await _reconcile(books)
    us.simulator.admin.drop_webhooks(WebhookDropRequest(drop=True))
    accountant.simulator.admin.delete_payment(accountant.realm_id, payment)
    async with books.db.sessions() as session:
        await session.execute(
            update(CdcWatermark).values(changed_since=utcnow() - timedelta(days=40))
        )
        await session.commit()
    last = await _reconcile(books)
    assert last["mode"] == "full"
    assert (await accountant.latest("inv_1"))["status"] == "unpaid"
