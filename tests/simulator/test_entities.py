"""Name-list entities: create, read, sparse and full update, SyncToken, names, deactivation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.conftest import Api, decode, expense_line, first_error


async def test_create_and_read_a_customer(us: Api) -> None:
    created = await us.create(
        "Customer",
        {"DisplayName": "Acme Ltd", "PrimaryEmailAddr": {"Address": "billing@acme.test"}},
    )

    assert created["SyncToken"] == "0"
    assert created["domain"] == "QBO"
    assert created["Active"] is True
    assert created["MetaData"]["CreateTime"] == created["MetaData"]["LastUpdatedTime"]
    assert await us.read("Customer", created["Id"]) == created


async def test_display_name_is_built_from_name_parts(us: Api) -> None:
    created = await us.create("Customer", {"GivenName": "Ada", "FamilyName": "Lovelace"})

    assert created["DisplayName"] == "Ada Lovelace"


async def test_a_customer_needs_a_name(us: Api) -> None:
    response = await us.post("Customer", {"CompanyName": "Nameless"})

    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == "2020"
    assert error["element"] == "DisplayName"
    assert decode(response)["Fault"]["type"] == "ValidationFault"


async def test_display_names_are_unique_across_customers_and_vendors(us: Api) -> None:
    await us.create("Vendor", {"DisplayName": "Office Supplies Co"})

    as_customer = await us.post("Customer", {"DisplayName": "office supplies co"})
    as_vendor = await us.post("Vendor", {"DisplayName": "Cool Cars"})

    assert as_customer.status_code == as_vendor.status_code == 400
    assert first_error(as_customer)["code"] == "6240"
    assert first_error(as_customer)["Message"] == "Duplicate Name Exists Error"
    assert first_error(as_vendor)["code"] == "6240"


async def test_sparse_update_changes_only_what_is_sent(us: Api) -> None:
    created = await us.create("Customer", {"DisplayName": "Sparse Co", "CompanyName": "Sparse"})

    updated = await us.create(
        "Customer",
        {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "VIP"},
    )

    assert updated["SyncToken"] == "1"
    assert updated["Notes"] == "VIP"
    assert updated["CompanyName"] == "Sparse"
    assert updated["MetaData"]["CreateTime"] == created["MetaData"]["CreateTime"]


async def test_full_update_clears_what_is_left_out(us: Api) -> None:
    created = await us.create("Customer", {"DisplayName": "Full Co", "CompanyName": "Full"})

    updated = await us.create(
        "Customer",
        {"Id": created["Id"], "SyncToken": "0", "DisplayName": "Full Co"},
        operation="update",
    )

    assert "CompanyName" not in updated
    assert updated["SyncToken"] == "1"


async def test_a_stale_sync_token_is_refused(us: Api) -> None:
    created = await us.create("Customer", {"DisplayName": "Stale Co"})
    await us.create(
        "Customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "a"}
    )

    response = await us.post(
        "Customer", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Notes": "b"}
    )

    assert response.status_code == 400
    assert first_error(response)["code"] == "5010"
    assert first_error(response)["Message"] == "Stale Object Error"


async def test_deleting_a_list_entity_deactivates_it_and_frees_the_name(us: Api) -> None:
    created = await us.create("Customer", {"DisplayName": "Gone Ltd"})

    deleted = await us.create(
        "Customer", {"Id": created["Id"], "SyncToken": "0"}, operation="delete"
    )

    assert deleted["Active"] is False
    assert deleted["DisplayName"] == "Gone Ltd (deleted)"
    assert (await us.query("SELECT * FROM Customer WHERE DisplayName = 'Gone Ltd'")) == {}
    reactivated = await us.create(
        "Customer", {"Id": created["Id"], "SyncToken": "1", "sparse": True, "Active": True}
    )
    assert reactivated["DisplayName"] == "Gone Ltd"
    assert reactivated["Active"] is True
    await us.create("Customer", {"Id": created["Id"], "SyncToken": "2"}, operation="delete")
    assert (await us.create("Customer", {"DisplayName": "Gone Ltd"}))["Id"] != created["Id"]


async def test_deactivating_by_sparse_update(us: Api) -> None:
    vendor = await us.create("Vendor", {"DisplayName": "Old Supplier"})

    inactive = await us.create(
        "Vendor", {"Id": vendor["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    )

    assert inactive["Active"] is False
    found = await us.query("SELECT * FROM Vendor WHERE Active = false")
    assert inactive["Id"] in [row["Id"] for row in found["Vendor"]]


async def test_an_item_needs_a_name_an_income_account_and_a_known_type(us: Api) -> None:
    no_account = await us.post("Item", {"Name": "Consulting", "Type": "Service"})
    bad_type = await us.post(
        "Item", {"Name": "Consulting", "Type": "Gadget", "IncomeAccountRef": {"value": "1"}}
    )
    unknown_account = await us.post(
        "Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "999"}}
    )
    inactive_account = await us.post(
        "Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "14"}}
    )

    assert (first_error(no_account)["code"], first_error(no_account)["element"]) == (
        "2020",
        "IncomeAccountRef",
    )
    assert first_error(bad_type)["code"] == "2170"
    assert first_error(unknown_account)["code"] == "2500"
    assert first_error(inactive_account)["code"] == "610"

    item = await us.create(
        "Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}}
    )
    assert item["IncomeAccountRef"] == {"value": "1", "name": "Services"}
    duplicate = await us.post(
        "Item", {"Name": "CONSULTING", "Type": "Service", "IncomeAccountRef": {"value": "1"}}
    )
    assert first_error(duplicate)["code"] == "6240"


async def test_an_account_derives_its_classification(us: Api) -> None:
    missing_type = await us.post("Account", {"Name": "Platform Revenue"})
    assert (first_error(missing_type)["code"], first_error(missing_type)["element"]) == (
        "2020",
        "AccountType",
    )

    account = await us.create(
        "Account", {"Name": "Platform Revenue", "AccountSubType": "ServiceFeeIncome"}
    )

    assert account["AccountType"] == "Income"
    assert account["Classification"] == "Revenue"
    assert (
        first_error(await us.post("Account", {"Name": "Checking", "AccountType": "Bank"}))["code"]
        == "6240"
    )


async def test_reading_a_missing_object_is_object_not_found(us: Api) -> None:
    response = await us.client.get(us.url("customer/9999"))

    assert response.status_code == 400
    assert first_error(response)["code"] == "610"
    assert (await us.client.get(us.url("gadget/1"))).status_code == 400


@pytest.mark.parametrize(
    ("entity", "body", "change"),
    [
        ("Customer", {"DisplayName": "Cycle Customer"}, {"Notes": "n"}),
        ("Vendor", {"DisplayName": "Cycle Vendor"}, {"CompanyName": "Cycle"}),
        (
            "Item",
            {"Name": "Cycle Item", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
            {"UnitPrice": 12},
        ),
        ("Account", {"Name": "Cycle Account", "AccountType": "Expense"}, {"Description": "d"}),
        (
            "Bill",
            {"VendorRef": {"value": "1"}, "Line": [expense_line("20")]},
            {"PrivateNote": "checked"},
        ),
        (
            "Purchase",
            {"PaymentType": "Cash", "AccountRef": {"value": "8"}, "Line": [expense_line("20")]},
            {"PrivateNote": "receipt"},
        ),
    ],
)
async def test_each_entity_is_created_read_updated_and_deleted(
    us: Api, entity: str, body: dict[str, Any], change: dict[str, Any]
) -> None:
    created = await us.create(entity, body)
    assert await us.read(entity, created["Id"]) == created

    updated = await us.create(
        entity, {"Id": created["Id"], "SyncToken": "0", "sparse": True, **change}
    )
    deleted = await us.create(entity, {"Id": created["Id"], "SyncToken": "1"}, operation="delete")

    assert all(updated[key] == value for key, value in change.items())
    assert updated["SyncToken"] == "1"
    if entity in ("Bill", "Purchase"):
        assert deleted == {"status": "Deleted", "domain": "QBO", "Id": created["Id"]}
        assert (await us.client.get(us.url(f"{entity.lower()}/{created['Id']}"))).status_code == 400
    else:
        assert deleted["Active"] is False


async def test_a_customer_with_an_open_balance_is_not_made_inactive(us: Api) -> None:
    customer = await us.create("Customer", {"DisplayName": "Owes Money Ltd"})
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 100,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}},
    }
    invoice = await us.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    deactivate = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Active": False}

    sparse = await us.post("Customer", deactivate)
    deleted = await us.post(
        "Customer", {"Id": customer["Id"], "SyncToken": "0"}, operation="delete"
    )

    for refused in (sparse, deleted):
        assert refused.status_code == 400
        error = first_error(refused)
        assert (error["code"], error["element"]) == ("6000", "Active")
        assert "Owes Money Ltd has an open balance of 100.00" in error["Detail"]
    assert (await us.read("Customer", customer["Id"]))["Active"] is True

    payment = {
        "CustomerRef": {"value": customer["Id"]},
        "TotalAmt": 100,
        "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }
    await us.create("Payment", payment)
    settled = await us.create("Customer", deactivate)
    assert settled["Active"] is False


async def test_unapplied_credit_or_an_opening_balance_also_keeps_a_customer_active(
    us: Api,
) -> None:
    with_credit = await us.create("Customer", {"DisplayName": "In Credit Ltd"})
    await us.create("Payment", {"CustomerRef": {"value": with_credit["Id"]}, "TotalAmt": 15})
    opening = await us.create("Customer", {"DisplayName": "Opening Ltd", "Balance": 50})

    credit_refused = await us.post(
        "Customer", {"Id": with_credit["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    )
    opening_refused = await us.post(
        "Customer", {"Id": opening["Id"], "SyncToken": "0", "sparse": True, "Active": False}
    )

    assert "unapplied payments 15.00" in first_error(credit_refused)["Detail"]
    assert "opening balance 50.00" in first_error(opening_refused)["Detail"]
    assert first_error(opening_refused)["code"] == "6000"
