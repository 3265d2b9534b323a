"""Payment status coming back: the accountant records, splits, deletes payments and voids or
deletes invoices in QuickBooks (the simulator); its webhooks reach qbsync over HTTP; a real
worker pulls; the platform hears `quickbooks.invoice.payment_updated`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, invoice_of, line_of, ten_pounds
from tests.sync.pulling import (
    Accountant,
    Relay,
    relay,
    simulator,
)
from tests.sync.pushing import Books, books_for, failed_with, uk_books

__all__ = ["books_for", "org", "relay", "settings", "simulator", "uk", "us"]

BIRDS = {"id": "cl_birds", "name": "Amy's Bird Sanctuary", "email": "birds@intuit.test"}


@pytest.fixture(autouse=True)
def _relay_to_qbsync(relay: Relay, client: httpx.AsyncClient) -> None:
    relay.target = client


async def _us_books(us: Org, books_for: Any) -> Books:
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    await books.map("services/svc_consulting", {"qbo_id": us.qbo_id("Item", "Hours")})
    return books


def _us_invoice(invoice_id: str, price: str = "40.00") -> dict[str, Any]:
    return invoice_of(
        invoice_id,
        BIRDS,
        [line_of(price, tax=None)],
        subtotal=price,
        tax_total="0.00",
        total=price,
        currency="USD",
    )


def _invoice(currency: str, invoice_id: str) -> dict[str, Any]:
    if currency == "GBP":
        return ten_pounds(invoice_id, ACME)
    return _us_invoice(invoice_id, "12.00")


async def test_partial_full_and_deleted_payments_reach_the_platform_us(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """A payment recorded in QuickBooks reaches the platform as payment_updated: partial,
    then full; deleting a payment restores the balance (the US company)."""
    await _partial_full_deleted(await _us_books(us, books_for), "USD", relay)


@pytest.mark.parametrize("webhook_format", ["legacy"])
async def test_partial_full_and_deleted_payments_reach_the_platform_uk(
    uk: Org, books_for: Any, relay: Relay
) -> None:
    """The same on the UK company, its webhooks in the legacy format."""
    await _partial_full_deleted(await uk_books(uk, books_for), "GBP", relay)


async def _partial_full_deleted(books: Books, currency: str, relay: Relay) -> None:
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _invoice(currency, "inv_1"))
    await books.push()
    qbo_id = await accountant.qbo_invoice_id("inv_1")

    first = await accountant.pays("inv_1", "5.00")
    await accountant.settle()
    partial = await accountant.latest("inv_1")
    assert partial["status"] == "partially_paid"
    assert partial["qbo_invoice_id"] == qbo_id
    assert (partial["total"], partial["amount_paid"], partial["balance"]) == (
        "12.00",
        "5.00",
        "7.00",
    )
    assert partial["currency"] == currency
    assert [p["qbo_payment_id"] for p in partial["payments"]] == [first]
    assert partial["payments"][0]["amount"] == "5.00"
    assert partial["payments"][0]["platform_payment_id"] is None
    assert partial["as_of"].endswith("Z")

    await accountant.pays("inv_1", "7.00")
    await accountant.settle()
    paid = await accountant.latest("inv_1")
    assert (paid["status"], paid["amount_paid"], paid["balance"]) == ("paid", "12.00", "0.00")
    assert len(paid["payments"]) == 2

    accountant.simulator.admin.delete_payment(accountant.realm_id, first)
    await accountant.settle()
    restored = await accountant.latest("inv_1")
    assert (restored["status"], restored["amount_paid"], restored["balance"]) == (
        "partially_paid",
        "7.00",
        "5.00",
    )
    assert first not in [p["qbo_payment_id"] for p in restored["payments"]]
    # Each distinct state once: no event for webhooks that changed nothing.
    assert [u["status"] for u in await accountant.updates("inv_1")] == [
        "partially_paid",
        "paid",
        "partially_paid",
    ]
    record = await books.record("invoice", "inv_1")
    assert record.payment_status == "partially_paid"


@dataclass
class Side:
    """One company with what differs between them: its currency and an invoice of 12.00."""

    books: Books
    currency: str

    def invoice(self, invoice_id: str, **changes: Any) -> dict[str, Any]:
        return _invoice(self.currency, invoice_id) | changes


async def _side(which: str, company: Org, books_for: Any) -> Side:
    if which == "uk":
        return Side(await uk_books(company, books_for), "GBP")
    return Side(await _us_books(company, books_for), "USD")


async def test_one_payment_split_over_two_invoices_updates_both_us(
    us: Org, books_for: Any, relay: Relay
) -> None:
    await _split(await _side("us", us, books_for), relay)


async def test_one_payment_split_over_two_invoices_updates_both_uk(
    uk: Org, books_for: Any, relay: Relay
) -> None:
    await _split(await _side("uk", uk, books_for), relay)


async def _split(side: Side, relay: Relay) -> None:
    books = side.books
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", side.invoice("inv_a"))
    await books.send("invoice.upserted", side.invoice("inv_b"))
    await books.push()
    a = await accountant.qbo_invoice_id("inv_a")
    b = await accountant.qbo_invoice_id("inv_b")
    customer = books.documents("Invoice")[0]["CustomerRef"]["value"]
    payment = await _post_split_payment(books, customer, {a: "12.00", b: "4.00"})
    await accountant.settle()

    first = await accountant.latest("inv_a")
    second = await accountant.latest("inv_b")
    assert (first["status"], first["balance"]) == ("paid", "0.00")
    assert (second["status"], second["balance"]) == ("partially_paid", "8.00")
    assert first["payments"][0] == second["payments"][0] | {"amount": "12.00"}
    assert second["payments"][0]["qbo_payment_id"] == payment
    assert second["payments"][0]["amount"] == "4.00"
    assert first["currency"] == second["currency"] == side.currency


async def _post_split_payment(books: Books, customer_id: str, amounts: dict[str, str]) -> str:
    """The accountant's one payment applied to several invoices (through the API, as any
    QuickBooks client would)."""
    sim = books.org.simulator
    tokens = sim.admin.connect(books.org.realm_id)
    total = sum((Decimal(amount) for amount in amounts.values()), Decimal(0))
    body = {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": str(total),
        "Line": [
            {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
            for invoice_id, amount in amounts.items()
        ],
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
    payment_id: str = answer.json()["Payment"]["Id"]
    return payment_id


async def test_an_invoice_voided_in_quickbooks_is_reported_and_not_recreated_us(
    us: Org, books_for: Any, relay: Relay
) -> None:
    await _voided(await _side("us", us, books_for), relay)


async def test_an_invoice_voided_in_quickbooks_is_reported_and_not_recreated_uk(
    uk: Org, books_for: Any, relay: Relay
) -> None:
    await _voided(await _side("uk", uk, books_for), relay)


async def _voided(side: Side, relay: Relay) -> None:
    books = side.books
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", side.invoice("inv_1"))
    await books.push()
    old = await accountant.qbo_invoice_id("inv_1")
    accountant.simulator.admin.void_invoice(accountant.realm_id, old)
    await accountant.settle()

    voided = await accountant.latest("inv_1")
    assert (voided["status"], voided["total"], voided["balance"]) == ("voided", "0.00", "0.00")
    shown = (await books.org.get("sync/records/invoice/inv_1")).json()
    assert (shown["payment_status"], shown["removed_in_quickbooks"]) == ("voided", "voided")

    # The platform edits it later: it fails visibly, nothing new appears in QuickBooks.
    await books.send("invoice.upserted", side.invoice("inv_1", due_date="2026-12-31"))
    await books.push()
    error = await failed_with(books, "invoice", "inv_1", "deleted_in_quickbooks")
    assert "voided in QuickBooks" in error["message"]
    assert len(books.documents("Invoice")) == 1

    # A person retries it on purpose: a new invoice is created.
    retried = await books.org.post("sync/records/invoice/inv_1/retry", {})
    assert retried.status_code == 202, retried.text
    await books.push()
    record = await books.record("invoice", "inv_1")
    if side.currency == "GBP":
        # The UK company takes the platform's numbers, and the voided invoice keeps its own:
        # the error names it, and the platform's next number goes through.
        error = await failed_with(books, "invoice", "inv_1", "duplicate_doc_number")
        assert old in error["message"] or "INV-inv_1" in error["message"]
        await books.send("invoice.upserted", side.invoice("inv_1", number="INV-inv_1-b"))
        await books.push()
        record = await books.record("invoice", "inv_1")
    assert record.status.value == "synced", record.last_error
    assert record.qbo_id not in (None, old)
    assert len(books.documents("Invoice")) == 2


async def test_an_invoice_deleted_in_quickbooks_is_reported_deleted_us(
    us: Org, books_for: Any, relay: Relay
) -> None:
    await _deleted(await _side("us", us, books_for), relay)


async def test_an_invoice_deleted_in_quickbooks_is_reported_deleted_uk(
    uk: Org, books_for: Any, relay: Relay
) -> None:
    await _deleted(await _side("uk", uk, books_for), relay)


async def _deleted(side: Side, relay: Relay) -> None:
    books = side.books
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", side.invoice("inv_1"))
    await books.push()
    qbo_id = await accountant.qbo_invoice_id("inv_1")
    accountant.simulator.admin.delete_invoice(accountant.realm_id, qbo_id)
    await accountant.settle()

    gone = await accountant.latest("inv_1")
    assert (gone["status"], gone["balance"], gone["payments"]) == ("deleted", "0.00", [])
    assert gone["currency"] == side.currency
    await books.send("invoice.upserted", side.invoice("inv_1", due_date="2026-12-31"))
    await books.push()
    await failed_with(books, "invoice", "inv_1", "deleted_in_quickbooks")
    assert books.documents("Invoice") == []
    # The platform deletes it too: nothing left to do, the record settles.
    await books.send("invoice.deleted", {"id": "inv_1"})
    await books.push()
    assert (await books.record("invoice", "inv_1")).status.value == "synced"


@pytest.mark.parametrize("webhook_format", ["legacy"])
async def test_mappings_follow_merges_and_inactive_records_in_quickbooks(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """A merged item's mapping points at the survivor; an inactive one's is cleared, so no
    later push refers to a record that is gone."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    hours = us.qbo_id("Item", "Hours")
    services = us.qbo_id("Item", "Services")
    await books.map("services/svc_design", {"qbo_id": us.qbo_id("Item", "Design")})
    us.simulator.admin.merge(us.realm_id, "Item", hours, services)
    us.simulator.admin.deactivate(us.realm_id, "Item", us.qbo_id("Item", "Design"))
    await accountant.settle()

    mapped = {m["platform_id"]: m for m in (await us.get("mappings/services")).json()["items"]}
    assert mapped["svc_consulting"]["qbo_id"] == services
    assert mapped.get("svc_design", {}).get("qbo_id") is None


async def test_a_payment_qbsync_recorded_for_the_platform_names_the_platform_payment(
    uk: Org, books_for: Any, relay: Relay
) -> None:
    """The platform never records its own payment twice: the event says which one it is."""
    books = await uk_books(uk, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", ten_pounds("inv_1", ACME))
    await books.send(
        "payment.recorded",
        {
            "id": "pay_1",
            "invoice_id": "inv_1",
            "amount": "12.00",
            "date": "2026-11-25",
            "method": "bank transfer",
            "reference": "REF-1",
            "currency": "GBP",
        },
    )
    await books.push()
    await accountant.settle()
    paid = await accountant.latest("inv_1")
    assert paid["status"] == "paid"
    [payment] = paid["payments"]
    assert payment["platform_payment_id"] == "pay_1"
    assert (payment["amount"], payment["date"], payment["reference"]) == (
        "12.00",
        "2026-11-25",
        "REF-1",
    )
    assert payment["qbo_payment_id"] == (await books.record("payment", "pay_1")).qbo_id


async def test_a_payment_voided_in_quickbooks_restores_the_balance(
    us: Org, books_for: Any, relay: Relay
) -> None:
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    await books.send("invoice.upserted", _us_invoice("inv_1"))
    await books.push()
    payment = await accountant.pays("inv_1", "40.00")
    await accountant.settle()
    assert (await accountant.latest("inv_1"))["status"] == "paid"
    accountant.simulator.admin.void_payment(accountant.realm_id, payment)
    await accountant.settle()
    unpaid = await accountant.latest("inv_1")
    assert (unpaid["status"], unpaid["balance"], unpaid["payments"]) == ("unpaid", "40.00", [])


@pytest.mark.parametrize("webhook_format", ["legacy"])
async def test_client_mappings_follow_a_customer_merge_and_a_deactivation(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """Two clients pushed as two customers; the accountant merges one into another customer
    and makes the other inactive: the first client now points at the survivor, the second is
    matched or created again on its next push instead of being sent to an inactive customer.
    (Legacy webhooks name the merged-away record; CloudEvents do not, see the next test.)"""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    first = {"id": "cl_1", "name": "First Client Ltd", "email": "first@client.test"}
    second = {"id": "cl_2", "name": "Second Client Ltd", "email": "second@client.test"}
    await books.send("client.upserted", first)
    await books.send("client.upserted", second)
    await books.push()
    await accountant.settle()
    first_qbo = (await books.record("client", "cl_1")).qbo_id
    second_qbo = (await books.record("client", "cl_2")).qbo_id
    assert first_qbo
    assert second_qbo
    survivor = us.qbo_id("Customer", "Amy's Bird Sanctuary")
    us.simulator.admin.merge(us.realm_id, "Customer", first_qbo, survivor)
    us.simulator.admin.deactivate(us.realm_id, "Customer", second_qbo)
    await accountant.settle()

    mapped = {m["platform_id"]: m for m in (await us.get("mappings/clients")).json()["items"]}
    assert mapped["cl_1"]["qbo_id"] == survivor
    assert "cl_2" not in mapped or mapped["cl_2"]["qbo_id"] != second_qbo
    assert (await books.record("client", "cl_1")).qbo_id == survivor

    await books.send(
        "invoice.upserted",
        invoice_of(
            "inv_9",
            first,
            [line_of("5.00", tax=None)],
            subtotal="5.00",
            tax_total="0.00",
            total="5.00",
            currency="USD",
        ),
    )
    await books.push()
    pushed = await books.record("invoice", "inv_9")
    assert pushed.status.value == "synced", pushed.last_error
    [invoice] = [i for i in books.documents("Invoice") if i["Id"] == pushed.qbo_id]
    assert invoice["CustomerRef"]["value"] == survivor


async def test_a_cloudevents_merge_moves_the_mapping_and_the_next_invoice_goes(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """CloudEvents do not say what a merge removed [U]: the survivor's Merge and the
    merged-away customer's Delete come at one moment, and that pair moves the mapping; the
    client's next invoice goes to the survivor."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    client = {"id": "cl_1", "name": "First Client Ltd"}
    await books.send("client.upserted", client)
    await books.push()
    await accountant.settle()
    merged_away = (await books.record("client", "cl_1")).qbo_id
    assert merged_away is not None
    survivor = us.qbo_id("Customer", "Amy's Bird Sanctuary")
    us.simulator.admin.merge(us.realm_id, "Customer", merged_away, survivor)
    await accountant.settle()
    mapped = {m["platform_id"]: m for m in (await us.get("mappings/clients")).json()["items"]}
    assert mapped["cl_1"]["qbo_id"] == survivor
    invoice = invoice_of(
        "inv_9",
        client,
        [line_of("5.00", tax=None)],
        subtotal="5.00",
        tax_total="0.00",
        total="5.00",
        currency="USD",
    )
    await books.send("invoice.upserted", invoice)
    await books.push()
    pushed = await books.record("invoice", "inv_9")
    assert pushed.status.value == "synced", pushed.last_error
    [sent] = [i for i in books.documents("Invoice") if i["Id"] == pushed.qbo_id]
    assert sent["CustomerRef"]["value"] == survivor


async def test_a_merge_into_a_customer_another_client_holds_says_so_at_the_next_push(
    us: Org, books_for: Any, relay: Relay
) -> None:
    """One customer stands for one client: the merged-away client's mapping is cleared, and
    its next invoice fails with a message that says why no customer qualifies."""
    books = await _us_books(us, books_for)
    accountant = Accountant(books, relay)
    first = {"id": "cl_1", "name": "First Client Ltd"}
    await books.send("client.upserted", first)
    await books.send("client.upserted", {"id": "cl_2", "name": "Second Client Ltd"})
    await books.push()
    await accountant.settle()
    one = (await books.record("client", "cl_1")).qbo_id
    two = (await books.record("client", "cl_2")).qbo_id
    assert one is not None
    assert two is not None
    us.simulator.admin.merge(us.realm_id, "Customer", one, two)
    await accountant.settle()
    mapped = {
        m["platform_id"]: m["qbo_id"] for m in (await us.get("mappings/clients")).json()["items"]
    }
    assert mapped == {"cl_2": two}
    invoice = invoice_of(
        "inv_9",
        first,
        [line_of("5.00", tax=None)],
        subtotal="5.00",
        tax_total="0.00",
        total="5.00",
        currency="USD",
    )
    await books.send("invoice.upserted", invoice)
    await books.push()
    error = await failed_with(books, "invoice", "inv_9", "customer_ambiguous")
    assert "inactive" in error["message"], error["message"]
    assert "more than one" not in error["message"]
