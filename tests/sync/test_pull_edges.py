"""The pull's edges: its own writes cost no reads (P7), another company's ids, payments moved
between invoices, and payments of invoices qbsync does not know."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qbsync.models import RecordKind, RecordStatus, SyncRecord
from tests.connections.conftest import OTHER_US_REALM
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.sync.pulling import Accountant, Relay, relay, simulator
from tests.sync.pushing import Books, books_for
from tests.sync.test_payment_status import _us_books, _us_invoice

__all__ = ["books_for", "org", "relay", "settings", "simulator", "uk", "us"]


@pytest.fixture(autouse=True)
def _relay_to_qbsync(relay: Relay, client: httpx.AsyncClient) -> None:
    relay.target = client


def _reads(books: Books) -> int:
    """Metered (CorePlus) calls this company received: every GET (reads, queries, CDC)."""
    stats = books.org.simulator.state.stats.requests_by_endpoint
    return sum(
        count
        for endpoint, count in stats.items()
        if endpoint.startswith(books.org.realm_id + " GET")
    )


async def test_qbsync_own_pushes_cost_no_reads_when_their_webhooks_come_back(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """P7: <= 0.2 CorePlus calls per pushed document at steady state, no read-after-write.
    QuickBooks notifies qbsync of the invoices qbsync itself just wrote; the pull must not read
    each one back (qbsync holds what the write returned)."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_warm"))
    await books.push()
    await accountant.settle()  # references cached, first webhooks pulled
    spent = 0
    for n in range(5):
        await books.send("invoice.upserted", _us_invoice(f"inv_{n}"))
        await books.push()
        before = _reads(books)
        await accountant.settle()  # only the webhooks of qbsync's own writes, and their pull
        spent += _reads(books) - before
    stats = {
        k: v
        for k, v in books.org.simulator.state.stats.requests_by_endpoint.items()
        if k.startswith(us.realm_id)
    }
    assert spent <= 1, f"{spent} CorePlus calls for 5 pushed invoices: {stats}"


async def test_a_payment_of_another_company_is_not_taken_for_the_platforms_own(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """The org's payment record synced into the company it was connected to before keeps that
    company's QuickBooks id. The same id in the company connected now is another payment: the
    event must not tell the platform it is its own (it would never record it)."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    await accountant.settle()
    payment_id = await accountant.pays("inv_1", "10.00")
    async with books.db.sessions() as session:
        session.add(
            SyncRecord(
                id=uuid.uuid4(),
                org_id="org_1",
                kind=RecordKind.PAYMENT,
                platform_id="pay_in_the_old_company",
                operation="upsert",
                snapshot={},
                status=RecordStatus.SYNCED,
                realm_id=OTHER_US_REALM,
                qbo_id=payment_id,
                qbo_entity="Payment",
            )
        )
        await session.commit()
    await accountant.settle()
    latest = await accountant.latest("inv_1")
    assert latest["status"] == "partially_paid"
    [payment] = latest["payments"]
    assert payment["platform_payment_id"] is None, payment


async def test_a_payment_moved_to_another_invoice_updates_both(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """The accountant re-applies a payment from invoice A to invoice B: A is unpaid again and
    B partially paid."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_a"))
    await books.send("invoice.upserted", _us_invoice("inv_b"))
    await books.push()
    await accountant.settle()
    payment_id = await accountant.pays("inv_a", "10.00")
    await accountant.settle()
    assert (await accountant.latest("inv_a"))["status"] == "partially_paid"
    b = await accountant.qbo_invoice_id("inv_b")
    [stored] = [p for p in books.documents("Payment") if p["Id"] == payment_id]
    sim = books.org.simulator
    tokens = sim.admin.connect(books.org.realm_id)
    body = {
        "Id": payment_id,
        "SyncToken": stored["SyncToken"],
        "sparse": True,
        "CustomerRef": stored["CustomerRef"],
        "TotalAmt": "10.00",
        "Line": [{"Amount": "10.00", "LinkedTxn": [{"TxnId": b, "TxnType": "Invoice"}]}],
    }
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        answer = await http.post(
            f"/v3/company/{books.org.realm_id}/payment",
            json=body,
            headers={
                "Authorization": f"Bearer {tokens.access_token}",
                "Accept": "application/json",
            },
        )
    assert answer.status_code == 200, answer.text
    await accountant.settle()
    a_now = await accountant.latest("inv_a")
    b_now = await accountant.latest("inv_b")
    assert (a_now["status"], a_now["payments"]) == ("unpaid", [])
    assert (b_now["status"], b_now["balance"]) == ("partially_paid", "30.00")


async def test_a_deleted_payment_of_an_invoice_qbsync_does_not_know_costs_nothing(
    us: Org, books_for: Any, relay: Relay, client: httpx.AsyncClient
) -> None:
    from tests.sync.pulling import cloud_event, post_webhook

    books = await _us_books(us, books_for)
    before = _reads(books)
    gone = cloud_event(us.realm_id, "Payment", "999", "deleted", "2026-11-21T10:00:00Z", "ev-d")
    assert (await post_webhook(client, [gone])).status_code == 200
    await books.push()
    assert _reads(books) == before
