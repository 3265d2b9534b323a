"""Webhooks dropped on purpose: all of them, the next N changes, or a repeatable fraction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.admin import Admin, PaymentRequest, WebhookDropRequest
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import US, US2, Api, sales_line
from tests.simulator.test_cdc import cdc_groups
from tests.simulator.test_webhooks import Receiver, attempts_recorded, simulator_with_receiver

URL = "http://127.0.0.1:9/unused"  # never called: without a lifespan the hub only queues


@pytest.fixture
def config() -> SimulatorConfig:
    return SimulatorConfig(webhook_url=URL)


def new_customer(state: SimulatorState, name: str, realm_id: str = US) -> str:
    return str(state.ledger(realm_id).create("Customer", WriteRequest({"DisplayName": name}))["Id"])


def queued_ids(state: SimulatorState) -> list[str]:
    return [event.entity_id for event in state.webhooks.pending]


def test_dropping_everything_sends_nothing_until_it_is_turned_off(state: SimulatorState) -> None:
    admin = Admin(state)
    state.tokens.connect(US)

    status = admin.drop_webhooks(WebhookDropRequest(drop=True))
    lost = new_customer(state, "Lost Ltd")
    admin.drop_webhooks(WebhookDropRequest(drop=False))
    sent = new_customer(state, "Sent Ltd")

    assert status == {"drop": True, "count": 0, "fraction": 0.0, "queued": 0, "dropped": 0}
    assert queued_ids(state) == [sent]
    assert [(e.entity, e.entity_id, e.operation) for e in admin.webhooks_dropped] == [
        ("Customer", lost, "Create")
    ]
    assert admin.stats()["webhook_events"] == {"queued": 1, "dropped": 1}


def test_a_count_drops_the_next_changes_then_sending_resumes(state: SimulatorState) -> None:
    admin = Admin(state)
    state.tokens.connect(US)
    invoice = state.ledger(US).create(
        "Invoice", WriteRequest({"CustomerRef": {"value": "1"}, "Line": [sales_line("50")]})
    )
    state.webhooks.pending.clear()

    admin.drop_webhooks(WebhookDropRequest(count=2))
    # One payment is two changes: the payment, and the invoice whose balance it moves.
    payment = admin.record_payment(US, PaymentRequest(invoice_id=invoice["Id"], amount=Decimal(5)))
    after = new_customer(state, "After Ltd")

    assert [(e.entity, e.entity_id) for e in admin.webhooks_dropped] == [
        ("Payment", payment["Id"]),
        ("Invoice", invoice["Id"]),
    ]
    assert queued_ids(state) == [after]
    assert admin.webhook_drop_status()["count"] == 0


def test_a_fraction_drops_a_repeatable_share(config: SimulatorConfig) -> None:
    def dropped_names(fraction: float, seed: int) -> list[str]:
        state = SimulatorState(config)
        state.tokens.connect(US)
        Admin(state).drop_webhooks(WebhookDropRequest(fraction=fraction, seed=seed))
        ids = [new_customer(state, f"Customer {n}") for n in range(200)]
        dropped = {event.entity_id for event in state.webhooks.dropped}
        assert len(dropped) + len(state.webhooks.pending) == len(ids)
        return [object_id for object_id in ids if object_id in dropped]

    first = dropped_names(0.25, seed=7)

    assert first == dropped_names(0.25, seed=7)
    assert first != dropped_names(0.25, seed=8)
    assert 20 < len(first) < 80
    assert dropped_names(0.0, seed=7) == []
    assert len(dropped_names(1.0, seed=7)) == 200


def test_the_config_can_start_with_a_fraction_dropped() -> None:
    state = SimulatorState(SimulatorConfig(webhook_url=URL, webhook_drop_fraction=1.0))
    state.tokens.connect(US)

    new_customer(state, "Never Told Ltd")

    assert len(state.webhooks.dropped) == 1
    assert not state.webhooks.pending


def test_only_notifications_that_were_due_count_as_dropped(state: SimulatorState) -> None:
    admin = Admin(state)
    state.tokens.connect(US)
    admin.drop_webhooks(WebhookDropRequest(count=1))

    new_customer(state, "Not Connected Ltd", US2)  # never due: not connected to the app
    dropped = new_customer(state, "Connected Ltd")

    assert [event.entity_id for event in admin.webhooks_dropped] == [dropped]
    assert [event.realm_id for event in admin.webhooks_dropped] == [US]


async def test_the_drop_switch_over_http(
    client: httpx.AsyncClient, us: Api, state: SimulatorState
) -> None:
    on = await client.post("/_sim/webhooks/drop", json={"drop": True})
    created = await us.create("Customer", {"DisplayName": "Dropped Over HTTP"})
    listed = (await client.get("/_sim/webhooks/dropped")).json()
    refused = [
        await client.post("/_sim/webhooks/drop", json=body)
        for body in ({}, {"drop": True, "count": 2}, {"count": 0}, {"fraction": 1.5})
    ]
    stats = (await client.get("/_sim/stats")).json()

    assert on.status_code == 200
    assert on.json()["drop"] is True
    assert listed["dropped"] == 1
    [change] = listed["changes"]
    assert {k: change[k] for k in ("realm_id", "entity", "id", "operation")} == {
        "realm_id": US,
        "entity": "Customer",
        "id": created["Id"],
        "operation": "Create",
    }
    assert [response.status_code for response in refused] == [422] * 4
    assert stats["webhook_events"] == {"queued": 0, "dropped": 1}


async def test_dropped_notifications_never_reach_the_receiver_nor_count_as_attempts() -> None:
    receiver = Receiver()
    async with simulator_with_receiver(receiver) as sim:
        sim.state.tokens.connect(US)
        sim.admin.drop_webhooks(WebhookDropRequest(drop=True))
        new_customer(sim.state, "Silent Ltd")
        sim.admin.drop_webhooks(WebhookDropRequest(drop=False))
        heard = new_customer(sim.state, "Heard Ltd")
        [delivery] = await receiver.wait_for(1)
        await attempts_recorded(sim, 1)  # the attempt is recorded once the receiver has answered
        attempts = sim.admin.webhook_attempts

    assert [event["intuitentityid"] for event in delivery.payload] == [heard]
    assert len(attempts) == 1
    assert len(sim.admin.webhooks_dropped) == 1


async def test_a_day_without_webhooks_is_still_told_by_cdc(us: Api, state: SimulatorState) -> None:
    """Every status change of a day whose notifications were all lost is in one CDC call."""
    admin = us.admin
    state.clock.advance(1)  # past the seed's second
    since = state.clock.now().isoformat(timespec="seconds")
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("100", code="NON")]}
    paid, part_paid, voided, deleted = [await us.create("Invoice", body) for _ in range(4)]
    state.webhooks.pending.clear()  # the invoices' own notifications went out
    admin.drop_webhooks(WebhookDropRequest(drop=True))

    admin.record_payment(US, PaymentRequest(invoice_id=paid["Id"], amount=Decimal(100)))
    refunded = admin.record_payment(
        US, PaymentRequest(invoice_id=part_paid["Id"], amount=Decimal(1))
    )
    admin.record_payment(US, PaymentRequest(invoice_id=part_paid["Id"], amount=Decimal(30)))
    admin.delete_payment(US, refunded["Id"])
    admin.void_invoice(US, voided["Id"])
    admin.delete_invoice(US, deleted["Id"])
    admin.deactivate(US, "Customer", "3")
    response = await us.client.get(
        us.url("cdc"), params={"entities": "Invoice,Payment,Customer", "changedSince": since}
    )

    assert not state.webhooks.pending
    assert len(admin.webhooks_dropped) == 11
    invoices, payments, customers = cdc_groups(response.json())
    by_id: dict[str, Any] = {row["Id"]: row for row in invoices["Invoice"]}
    assert by_id[paid["Id"]]["Balance"] == 0
    assert by_id[part_paid["Id"]]["Balance"] == 70
    assert by_id[voided["Id"]]["TotalAmt"] == 0
    assert by_id[voided["Id"]]["PrivateNote"] == "Voided"
    assert by_id[deleted["Id"]]["status"] == "Deleted"
    assert {"status": "Deleted", "Id": refunded["Id"]}.items() <= payments["Payment"][-1].items()
    assert [(row["Id"], row["Active"]) for row in customers["Customer"]] == [("3", False)]
