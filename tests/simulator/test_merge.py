"""A person merges list records in QuickBooks: what the survivor, the merged-away record and the
transactions become, and which merges are refused without changing anything."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator.errors import QboError
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import US, Api, decode, expense_line, sales_line

D = Decimal


def payment_body(invoice_id: str, amount: str, customer: str) -> dict[str, Any]:
    return {
        "CustomerRef": {"value": customer},
        "TotalAmt": D(amount),
        "Line": [{"Amount": D(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
    }


async def test_merging_customers_moves_their_transactions_and_balance_to_the_survivor(
    us: Api,
) -> None:
    leaving = await us.create("Customer", {"DisplayName": "Acme Old", "Balance": 5})
    staying = await us.create("Customer", {"DisplayName": "Acme"})
    invoice = await us.create(
        "Invoice",
        {"CustomerRef": {"value": leaving["Id"]}, "Line": [sales_line("100", code="NON")]},
    )
    paid = await us.create("Payment", payment_body(invoice["Id"], "40", leaving["Id"]))
    before = await us.read("Invoice", invoice["Id"])

    survivor = us.admin.merge(US, "Customer", leaving["Id"], staying["Id"])
    away = await us.read("Customer", leaving["Id"])
    moved = await us.read("Invoice", invoice["Id"])
    moved_payment = await us.read("Payment", paid["Id"])

    assert survivor["Id"] == staying["Id"]
    assert survivor["SyncToken"] == "1"
    assert survivor["Balance"] == D("65.00")  # 60 still owed on the invoice, 5 opening
    assert away["Active"] is False
    assert away["DisplayName"] == "Acme Old (deleted)"
    assert away["Balance"] == D("0.00")
    assert away["SyncToken"] == "1"
    assert moved["CustomerRef"] == {"value": staying["Id"], "name": "Acme"}
    assert int(moved["SyncToken"]) == int(before["SyncToken"]) + 1
    assert moved_payment["CustomerRef"] == {"value": staying["Id"], "name": "Acme"}
    assert moved_payment["SyncToken"] == "1"
    # The survivor's transactions work as its own: the rest of the invoice can be paid.
    await us.create("Payment", payment_body(invoice["Id"], "60", staying["Id"]))
    assert (await us.read("Customer", staying["Id"]))["Balance"] == D("5.00")
    # The merged-away name is free again, as after any deactivation of a customer.
    assert (await us.create("Customer", {"DisplayName": "Acme Old"}))["Id"] != leaving["Id"]
    active = await us.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Acme%'")
    assert leaving["Id"] not in [row["Id"] for row in active["Customer"]]


async def test_merging_vendors_moves_their_bills_and_purchases(us: Api) -> None:
    leaving = await us.create("Vendor", {"DisplayName": "Paper Co Old", "Balance": 7})
    staying = await us.create("Vendor", {"DisplayName": "Paper Co"})
    bill = await us.create(
        "Bill", {"VendorRef": {"value": leaving["Id"]}, "Line": [expense_line("20")]}
    )
    purchase = {
        "PaymentType": "Cash",
        "AccountRef": {"value": "8"},
        "Line": [expense_line("9")],
    }
    bought = await us.create(
        "Purchase", {**purchase, "EntityRef": {"value": leaving["Id"], "type": "Vendor"}}
    )
    # A customer with the same Id as the vendor is another record: its purchase stays its own.
    customer_purchase = await us.create(
        "Purchase", {**purchase, "EntityRef": {"value": leaving["Id"], "type": "Customer"}}
    )

    survivor = us.admin.merge(US, "Vendor", leaving["Id"], staying["Id"])

    assert (await us.read("Bill", bill["Id"]))["VendorRef"] == {
        "value": staying["Id"],
        "name": "Paper Co",
    }
    assert (await us.read("Purchase", bought["Id"]))["EntityRef"] == {
        "value": staying["Id"],
        "name": "Paper Co",
        "type": "Vendor",
    }
    assert (await us.read("Purchase", customer_purchase["Id"])) == customer_purchase
    away = await us.read("Vendor", leaving["Id"])
    assert (away["DisplayName"], away["Active"], away["Balance"]) == (
        "Paper Co Old (deleted)",
        False,
        D("0.00"),
    )
    assert survivor["Balance"] == D("7.00")  # the opening balance; bills are not counted


async def test_merged_items_and_accounts_become_inactive_and_keep_their_names(us: Api) -> None:
    items = [
        await us.create("Item", {"Name": f"Design {n}", "IncomeAccountRef": {"value": "1"}})
        for n in (1, 2)
    ]
    accounts = [
        await us.create("Account", {"Name": f"Postage {n}", "AccountType": "Expense"})
        for n in (1, 2)
    ]

    for entity, (away, into) in (("Item", items), ("Account", accounts)):
        survivor = us.admin.merge(US, entity, away["Id"], into["Id"])
        merged = await us.read(entity, away["Id"])
        assert (survivor["Id"], survivor["SyncToken"], survivor["Active"]) == (
            into["Id"],
            "1",
            True,
        )
        assert (merged["Active"], merged["Name"], merged["SyncToken"]) == (False, away["Name"], "1")
    # [stricter] the name stays taken, as after a deactivation.
    clash = await us.post("Item", {"Name": "Design 1", "IncomeAccountRef": {"value": "1"}})
    assert clash.status_code == 400


async def refused(us: Api, entity: str, from_id: str, into_id: str) -> QboError:
    with pytest.raises(QboError) as raised:
        us.admin.merge(US, entity, from_id, into_id)
    return raised.value


async def test_merges_quickbooks_would_not_make_are_refused(us: Api) -> None:
    service = await us.create("Item", {"Name": "Consult", "IncomeAccountRef": {"value": "1"}})
    goods = await us.create(
        "Item", {"Name": "Widget", "Type": "NonInventory", "IncomeAccountRef": {"value": "1"}}
    )
    bank = await us.create("Account", {"Name": "Petty Cash", "AccountType": "Bank"})
    travel = await us.create("Account", {"Name": "Taxis", "AccountSubType": "Travel"})
    office = await us.create(
        "Account", {"Name": "Stamps", "AccountSubType": "OfficeGeneralAdministrativeExpenses"}
    )

    wrong_type = await refused(us, "Item", service["Id"], goods["Id"])
    wrong_account_type = await refused(us, "Account", bank["Id"], travel["Id"])
    wrong_detail_type = await refused(us, "Account", travel["Id"], office["Id"])
    itself = await refused(us, "Customer", "1", "1")
    inactive = await refused(us, "Customer", "1", "5")  # Kookies by Kathy is inactive
    employees = await refused(us, "Employee", "1", "2")
    missing = await refused(us, "Customer", "1", "999")

    for error, element in (
        (wrong_type, "Type"),
        (wrong_account_type, "AccountType"),
        (wrong_detail_type, "AccountSubType"),
    ):
        assert (error.errors[0].code, error.errors[0].element) == ("6000", element)
    assert itself.errors[0].code == inactive.errors[0].code == "6000"
    assert employees.errors[0].code == "500"
    assert missing.errors[0].code == "610"


async def test_customers_of_different_currencies_are_not_merged(us: Api) -> None:
    us.admin.enable_multicurrency(US)
    euro = await us.create(
        "Customer", {"DisplayName": "Euro Shop", "CurrencyRef": {"value": "EUR"}}
    )

    error = await refused(us, "Customer", euro["Id"], "1")

    assert (error.errors[0].code, error.errors[0].element) == ("6000", "CurrencyRef")


async def test_a_refused_merge_changes_nothing(us: Api, state: SimulatorState) -> None:
    # Deactivating "Clash" would rename it "Clash (deleted)", a name another customer holds.
    await us.create("Customer", {"DisplayName": "Clash (deleted)"})
    leaving = await us.create("Customer", {"DisplayName": "Clash"})
    invoice = await us.create(
        "Invoice", {"CustomerRef": {"value": leaving["Id"]}, "Line": [sales_line("10", code="NON")]}
    )
    changed_before = dict(state.companies[US].changed_at)

    error = await refused(us, "Customer", leaving["Id"], "1")

    assert error.errors[0].code == "6240"
    assert await us.read("Invoice", invoice["Id"]) == invoice
    assert await us.read("Customer", leaving["Id"]) == {**leaving, "Balance": D("10.00")}
    assert state.companies[US].changed_at == changed_before


async def test_the_merge_route(client: httpx.AsyncClient, us: Api) -> None:
    leaving = await us.create("Customer", {"DisplayName": "Route Old"})

    merged = await client.post(
        f"/_sim/companies/{US}/merge",
        json={"entity": "Customer", "from_id": leaving["Id"], "into_id": "2"},
    )
    refused_employee = await client.post(
        f"/_sim/companies/{US}/merge", json={"entity": "Employee", "from_id": "1", "into_id": "2"}
    )

    assert merged.status_code == 200
    assert decode(merged)["Customer"]["Id"] == "2"
    assert refused_employee.status_code == 400
    assert refused_employee.json()["Fault"]["Error"][0]["code"] == "500"
