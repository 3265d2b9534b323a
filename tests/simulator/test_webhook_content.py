"""What each change notifies, and how both formats spell it, merges included.

The simulator here has a webhook URL but no lifespan, so nothing is sent: every notification
stays queued in the hub, where the test reads it and encodes it as a delivery would.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.admin import PaymentRequest
from qbsync.simulator.config import WebhookFormat
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.store import BY_LOWER_NAME
from tests.simulator.conftest import US, Api, sales_line
from tests.simulator.test_webhooks import Receiver, intuit_signature, simulator_with_receiver

D = Decimal
Change = tuple[str, str, str]  # (entity, Id, operation)


@pytest.fixture(params=["legacy", "cloudevents"])
def webhook_format(request: pytest.FixtureRequest) -> WebhookFormat:
    chosen: WebhookFormat = request.param
    return chosen


@pytest.fixture
def config(webhook_format: WebhookFormat) -> SimulatorConfig:
    return SimulatorConfig(webhook_url="http://127.0.0.1:9/unused", webhook_format=webhook_format)


def taken(state: SimulatorState) -> list[Change]:
    """The changes notified since the last call, oldest first."""
    pending = state.webhooks.pending
    changes = [(event.entity, event.entity_id, event.operation) for event in pending]
    pending.clear()
    return changes


def delivered(state: SimulatorState) -> Any:
    """The notifications queued since the last call, as one delivery's parsed body."""
    pending = state.webhooks.pending
    body = json.loads(state.webhooks.encode(list(pending)))
    pending.clear()
    return body


def entries(state: SimulatorState, webhook_format: WebhookFormat) -> list[Change]:
    """(entity, Id, operation) of each entry of a delivery, read back from either format."""
    body = delivered(state)
    if webhook_format == "legacy":
        [notification] = body["eventNotifications"]
        assert notification["realmId"] == US
        return [
            (e["name"], e["id"], e["operation"])
            for e in notification["dataChangeEvent"]["entities"]
        ]
    operations = {"created": "Create", "updated": "Update", "deleted": "Delete"}
    operations |= {"voided": "Void", "merged": "Merge"}
    rows = []
    for event in body:
        assert event["intuitaccountid"] == US
        assert event["data"] == {}
        _, entity, past, version = event["type"].split(".")
        assert version == "v1"
        rows.append((BY_LOWER_NAME[entity], event["intuitentityid"], operations[past]))
    return rows


def payment_body(invoice_id: str, amount: str, customer: str = "1") -> dict[str, Any]:
    return {
        "CustomerRef": {"value": customer},
        "TotalAmt": D(amount),
        "Line": [{"Amount": D(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
    }


async def an_invoice(us: Api, amount: str = "100", customer: str = "1") -> dict[str, Any]:
    body = {"CustomerRef": {"value": customer}, "Line": [sales_line(amount, code="NON")]}
    return await us.create("Invoice", body)


async def test_each_payment_change_notifies_the_payment_then_the_invoice_it_moves(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    invoice = await an_invoice(us)
    assert taken(state) == [("Invoice", invoice["Id"], "Create")]
    inv = invoice["Id"]

    paid = await us.create("Payment", payment_body(inv, "40"))
    created = taken(state)
    changed = await us.create(
        "Payment", {**payment_body(inv, "30"), "Id": paid["Id"], "SyncToken": "0"}
    )
    updated = taken(state)
    await us.create(
        "Payment",
        {
            "Id": paid["Id"],
            "SyncToken": changed["SyncToken"],
            "sparse": True,
            "PrivateNote": "memo",
        },
    )
    noted = taken(state)
    voided = await us.create(
        "Payment",
        {"Id": paid["Id"], "SyncToken": "2", "sparse": True},
        operation="update",
        include="void",
    )
    void = taken(state)
    other = await us.create("Payment", payment_body(inv, "10"))
    taken(state)
    await us.create("Payment", {"Id": other["Id"], "SyncToken": "0"}, operation="delete")

    pid = paid["Id"]
    assert created == [("Payment", pid, "Create"), ("Invoice", inv, "Update")]
    assert updated == [("Payment", pid, "Update"), ("Invoice", inv, "Update")]
    assert noted == [("Payment", pid, "Update")], "the invoice's balance did not move"
    assert voided["TotalAmt"] == D("0.00")
    assert void == [("Payment", pid, "Void"), ("Invoice", inv, "Update")]
    assert entries(state, webhook_format) == [
        ("Payment", other["Id"], "Delete"),
        ("Invoice", inv, "Update"),
    ]


async def test_a_person_paying_editing_voiding_and_deleting_in_quickbooks_is_notified_alike(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    admin = us.admin
    invoice = await an_invoice(us)
    inv = invoice["Id"]
    taken(state)

    paid = admin.record_payment(US, PaymentRequest(invoice_id=inv, amount=D("40")))
    pid = paid["Id"]
    created = taken(state)
    admin.edit_payment(US, pid, {"TotalAmt": D("25"), "Line": payment_body(inv, "25")["Line"]})
    updated = taken(state)
    admin.void_payment(US, pid)
    voided = taken(state)
    second = admin.record_payment(US, PaymentRequest(invoice_id=inv, amount=D("10")))
    taken(state)
    admin.delete_payment(US, second["Id"])

    assert created == [("Payment", pid, "Create"), ("Invoice", inv, "Update")]
    assert updated == [("Payment", pid, "Update"), ("Invoice", inv, "Update")]
    assert voided == [("Payment", pid, "Void"), ("Invoice", inv, "Update")]
    assert entries(state, webhook_format) == [
        ("Payment", second["Id"], "Delete"),
        ("Invoice", inv, "Update"),
    ]


async def test_an_invoice_void_is_notified_as_void_before_the_payments_it_unapplies(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    invoice = await an_invoice(us)
    paid = await us.create("Payment", payment_body(invoice["Id"], "40"))
    plain = await an_invoice(us)
    taken(state)

    us.admin.void_invoice(US, invoice["Id"])
    voided = entries(state, webhook_format)
    us.admin.delete_invoice(US, plain["Id"])

    assert voided == [("Invoice", invoice["Id"], "Void"), ("Payment", paid["Id"], "Update")]
    assert entries(state, webhook_format) == [("Invoice", plain["Id"], "Delete")]


async def test_a_list_record_made_inactive_is_an_update(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    """By the API's sparse `Active: false`, or by a person in QuickBooks."""
    bodies: dict[str, dict[str, Any]] = {
        "Customer": {"DisplayName": "Leaving Ltd"},
        "Vendor": {"DisplayName": "Old Supplier Ltd"},
        "Item": {"Name": "Old Service", "IncomeAccountRef": {"value": "1"}},
        "Account": {"Name": "Old Costs", "AccountType": "Expense"},
    }
    for entity, body in bodies.items():
        by_api = await us.create(entity, body)
        name = "Name" if "Name" in body else "DisplayName"
        by_person = await us.create(entity, {**body, name: f"Second {entity}"})
        taken(state)

        inactive = await us.create(
            entity, {"Id": by_api["Id"], "SyncToken": "0", "sparse": True, "Active": False}
        )
        in_quickbooks = us.admin.deactivate(US, entity, by_person["Id"])

        assert inactive["Active"] is in_quickbooks["Active"] is False
        assert entries(state, webhook_format) == [
            (entity, by_api["Id"], "Update"),
            (entity, by_person["Id"], "Update"),
        ]


async def test_a_customer_merge_notifies_the_moved_transactions_then_the_merge(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    leaving = await us.create("Customer", {"DisplayName": "Merged Away Ltd"})
    staying = await us.create("Customer", {"DisplayName": "Survivor Ltd"})
    invoice = await an_invoice(us, customer=leaving["Id"])
    paid = await us.create("Payment", payment_body(invoice["Id"], "40", customer=leaving["Id"]))
    taken(state)

    us.admin.merge(US, "Customer", leaving["Id"], staying["Id"])
    [*moved, merge] = list(state.webhooks.pending)
    body = delivered(state)

    assert [(e.entity, e.entity_id, e.operation) for e in moved] == [
        ("Invoice", invoice["Id"], "Update"),
        ("Payment", paid["Id"], "Update"),
    ]
    assert (merge.entity, merge.entity_id, merge.operation) == ("Customer", staying["Id"], "Merge")
    assert merge.deleted_id == leaving["Id"]
    if webhook_format == "legacy":
        [notification] = body["eventNotifications"]
        *_, entity = notification["dataChangeEvent"]["entities"]
        assert entity == {
            "name": "Customer",
            "id": staying["Id"],
            "operation": "Merge",
            "lastUpdated": entity["lastUpdated"],
            "deletedId": leaving["Id"],
        }
        assert entity["lastUpdated"].endswith("Z")
    else:
        *_, merged, deleted = body
        assert (merged["type"], merged["intuitentityid"]) == (
            "qbo.customer.merged.v1",
            staying["Id"],
        )
        assert (deleted["type"], deleted["intuitentityid"]) == (
            "qbo.customer.deleted.v1",
            leaving["Id"],
        )
        assert merged["data"] == deleted["data"] == {}
        assert merged["time"] == deleted["time"]
        assert merged["id"] != deleted["id"]
        assert len(body) == 4


async def test_every_list_entity_that_merges_notifies_merge_on_the_survivor(
    us: Api, state: SimulatorState, webhook_format: WebhookFormat
) -> None:
    vendors = [await us.create("Vendor", {"DisplayName": f"Vendor {n}"}) for n in (1, 2)]
    items = [
        await us.create("Item", {"Name": f"Item {n}", "IncomeAccountRef": {"value": "1"}})
        for n in (1, 2)
    ]
    accounts = [
        await us.create("Account", {"Name": f"Costs {n}", "AccountType": "Expense"}) for n in (1, 2)
    ]
    taken(state)

    for entity, (away, into) in (("Vendor", vendors), ("Item", items), ("Account", accounts)):
        us.admin.merge(US, entity, away["Id"], into["Id"])

    merges = [(e.entity, e.entity_id, e.operation, e.deleted_id) for e in state.webhooks.pending]
    assert merges == [
        ("Vendor", vendors[1]["Id"], "Merge", vendors[0]["Id"]),
        ("Item", items[1]["Id"], "Merge", items[0]["Id"]),
        ("Account", accounts[1]["Id"], "Merge", accounts[0]["Id"]),
    ]


async def test_a_merge_reaches_a_receiver_within_intuits_batch_size(
    webhook_format: WebhookFormat,
) -> None:
    """Intuit caps the entries of one POST; in CloudEvents a merge takes two of them."""
    receiver = Receiver()
    async with simulator_with_receiver(receiver, webhook_format, webhook_max_batch=2) as sim:
        sim.state.tokens.connect(US)
        ledger = sim.state.ledger(US)
        away, into = (
            ledger.create("Customer", WriteRequest({"DisplayName": name}))["Id"]
            for name in ("Away Ltd", "Into Ltd")
        )
        await receiver.wait_for(1)
        newcomer = ledger.create("Customer", WriteRequest({"DisplayName": "Newcomer Ltd"}))["Id"]
        sim.admin.merge(US, "Customer", away, into)
        deliveries = (await receiver.wait_for(3 if webhook_format == "cloudevents" else 2))[1:]

    for delivery in deliveries:
        assert delivery.headers["intuit-signature"] == intuit_signature(delivery.body)
    if webhook_format == "legacy":
        [delivery] = deliveries
        [notification] = delivery.payload["eventNotifications"]
        created, merged = notification["dataChangeEvent"]["entities"]
        assert (created["id"], created["operation"]) == (newcomer, "Create")
        assert (merged["id"], merged["operation"], merged["deletedId"]) == (into, "Merge", away)
    else:
        first, second = (delivery.payload for delivery in deliveries)
        assert [event["intuitentityid"] for event in first] == [newcomer]
        assert [(event["type"], event["intuitentityid"]) for event in second] == [
            ("qbo.customer.merged.v1", into),
            ("qbo.customer.deleted.v1", away),
        ]
