"""A customer's Balance is what it owes: its opening balance, plus its invoices' open balances,
less its payments' unapplied credit; kept without a new version of the customer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import US, Api, sales_line

D = Decimal


async def balance(us: Api, customer_id: str) -> Decimal:
    value: Decimal = (await us.read("Customer", customer_id))["Balance"]
    return value


def invoice_body(customer_id: str, amount: str) -> dict[str, Any]:
    return {"CustomerRef": {"value": customer_id}, "Line": [sales_line(amount, code="NON")]}


def payment_body(customer_id: str, total: str, applied: dict[str, str]) -> dict[str, Any]:
    lines = [
        {"Amount": D(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
        for invoice_id, amount in applied.items()
    ]
    return {"CustomerRef": {"value": customer_id}, "TotalAmt": D(total), "Line": lines}


async def test_the_balance_follows_invoices_and_payments(us: Api) -> None:
    customer = await us.create("Customer", {"DisplayName": "Owing Ltd", "Balance": 50})
    cid = customer["Id"]

    first = await us.create("Invoice", invoice_body(cid, "100"))
    invoiced = await balance(us, cid)
    second = await us.create("Invoice", invoice_body(cid, "30"))
    paid = await us.create("Payment", payment_body(cid, "60", {first["Id"]: "40"}))
    after_payment = await balance(us, cid)
    await us.create(
        "Invoice", {**invoice_body(cid, "80"), "Id": first["Id"], "SyncToken": "1"}
    )  # the total drops from 100 to 80
    edited = await balance(us, cid)
    await us.create("Invoice", {"Id": second["Id"], "SyncToken": "0"}, operation="delete")
    after_delete = await balance(us, cid)
    us.admin.void_invoice(US, first["Id"])
    after_void = await balance(us, cid)
    current = await us.read("Payment", paid["Id"])
    await us.create(
        "Payment", {"Id": paid["Id"], "SyncToken": current["SyncToken"]}, operation="delete"
    )

    assert invoiced == D("150.00")
    assert after_payment == D("120.00")  # 50 + 60 + 30 owed, 20 of the payment unapplied
    assert edited == D("100.00")
    assert after_delete == D("70.00")
    assert after_void == D("-10.00")  # the whole payment is now credit
    assert await balance(us, cid) == D("50.00")


async def test_an_invoice_moved_to_another_customer_moves_what_it_owes(us: Api) -> None:
    one = await us.create("Customer", {"DisplayName": "One Ltd"})
    two = await us.create("Customer", {"DisplayName": "Two Ltd"})
    invoice = await us.create("Invoice", invoice_body(one["Id"], "25"))

    await us.create(
        "Invoice", {**invoice_body(two["Id"], "25"), "Id": invoice["Id"], "SyncToken": "0"}
    )

    assert (await balance(us, one["Id"]), await balance(us, two["Id"])) == (D("0.00"), D("25.00"))


@pytest.fixture
def config() -> SimulatorConfig:
    # A webhook URL, so that notifications queue (nothing is sent without a lifespan).
    return SimulatorConfig(webhook_url="http://127.0.0.1:9/unused")


async def test_the_balance_is_the_servers_and_the_customer_keeps_its_version(
    us: Api, state: SimulatorState
) -> None:
    """[U] whether QBO versions the customer when its balance moves; here it does not."""
    customer = await us.create("Customer", {"DisplayName": "Quiet Ltd"})
    state.clock.advance(2)
    state.webhooks.pending.clear()
    await us.create("Invoice", invoice_body(customer["Id"], "10"))
    notified = [event.entity for event in state.webhooks.pending]

    read = await us.read("Customer", customer["Id"])
    full_update = await us.create("Customer", {**read, "Balance": 999})
    sparse = await us.create(
        "Customer",
        {"Id": customer["Id"], "SyncToken": full_update["SyncToken"], "sparse": True, "Balance": 1},
    )

    assert notified == ["Invoice"]
    assert read["SyncToken"] == "0"
    assert read["MetaData"] == customer["MetaData"]
    assert full_update["Balance"] == sparse["Balance"] == D("10.00")
