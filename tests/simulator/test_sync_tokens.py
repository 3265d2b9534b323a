"""An invoice's SyncToken and LastUpdatedTime move whenever a payment changes what it owes, and
when it is voided; a client holding the old token is refused (5010)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from qbsync.simulator.admin import Admin, PaymentRequest
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import US, Api, first_error, sales_line

D = Decimal


def version(invoice: dict[str, Any]) -> tuple[int, str]:
    return int(invoice["SyncToken"]), invoice["MetaData"]["LastUpdatedTime"]


async def an_invoice(us: Api, **fields: Any) -> dict[str, Any]:
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("100", code="NON")], **fields}
    return await us.create("Invoice", body)


def pay(admin: Admin, invoice_id: str, amount: str) -> dict[str, Any]:
    return admin.record_payment(US, PaymentRequest(invoice_id=invoice_id, amount=D(amount)))


def _edit(admin: Admin, payment_id: str, invoice_id: str) -> None:
    lines = [{"Amount": D(15), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]
    admin.edit_payment(US, payment_id, {"TotalAmt": D(15), "Line": lines})


PAYMENT_CHANGES: dict[str, Callable[[Admin, str, str], object]] = {
    "changed": _edit,
    "deleted": lambda admin, payment_id, _: admin.delete_payment(US, payment_id),
    "voided": lambda admin, payment_id, _: admin.void_payment(US, payment_id),
}


@pytest.mark.parametrize("change", sorted(PAYMENT_CHANGES))
async def test_a_payment_applied_then_changed_moves_the_invoices_version_each_time(
    us: Api, state: SimulatorState, change: str
) -> None:
    invoice = await an_invoice(us)
    state.clock.advance(2)  # LastUpdatedTime shows whole seconds

    paid = pay(us.admin, invoice["Id"], "40")
    applied = await us.read("Invoice", invoice["Id"])
    state.clock.advance(2)
    PAYMENT_CHANGES[change](us.admin, paid["Id"], invoice["Id"])
    after = await us.read("Invoice", invoice["Id"])
    stale = await us.post(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": applied["SyncToken"],
            "sparse": True,
            "DueDate": "2027-01-01",
        },
    )

    assert version(applied)[0] == version(invoice)[0] + 1
    assert version(applied)[1] > version(invoice)[1]
    assert version(after)[0] == version(applied)[0] + 1
    assert version(after)[1] > version(applied)[1]
    assert after["Balance"] == (D("85.00") if change == "changed" else D("100.00"))
    assert first_error(stale)["code"] == "5010"


async def test_a_void_moves_the_version_and_zeroes_the_invoice(
    us: Api, state: SimulatorState
) -> None:
    noted = await an_invoice(us, PrivateNote="Spring job")
    plain = await an_invoice(us)
    state.clock.advance(2)

    voided = us.admin.void_invoice(US, noted["Id"])
    bare = us.admin.void_invoice(US, plain["Id"])

    for before, after in ((noted, voided), (plain, bare)):
        assert version(after)[0] == version(before)[0] + 1
        assert version(after)[1] > version(before)[1]
        assert after["TotalAmt"] == after["Balance"] == D("0.00")
        assert after["Line"][0]["Amount"] == D("0.00")
        assert after["TxnTaxDetail"]["TotalTax"] == D("0.00")
    assert voided["PrivateNote"] == "Voided - Spring job"
    assert bare["PrivateNote"] == "Voided"
    assert await us.read("Invoice", noted["Id"]) == voided
