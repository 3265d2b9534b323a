"""What QuickBooks refuses, the simulator refuses: unknown and misshapen properties, filters on
properties that are not queryable, forbidden name characters, references of the wrong account
type, and a requestid reused for a different request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.conftest import US, Api, first_error, sales_line

INVOICE = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}


@pytest.mark.parametrize(
    ("entity", "body", "unrecognized"),
    [
        ("Customer", {"DisplayName": "Typo Ltd", "DisplayNmae": "x"}, "DisplayNmae"),
        ("Customer", {"DisplayName": "Typo Ltd", "BillAddr": {"Street": "1 Main"}}, "Street"),
        ("Invoice", {**INVOICE, "Line": [{**sales_line("10"), "Colour": "red"}]}, "Colour"),
        ("Item", {"Name": "Widget", "IncomeAccountRef": {"value": "1", "id": "1"}}, "id"),
    ],
)
async def test_an_unknown_property_is_refused_with_2010(
    us: Api, entity: str, body: dict[str, Any], unrecognized: str
) -> None:
    response = await us.post(entity, body)

    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == "2010"
    assert error["Message"] == "Request has invalid or unsupported property"
    assert f'Unrecognized field "{unrecognized}"' in error["Detail"]


@pytest.mark.parametrize(
    ("entity", "body"),
    [
        ("Customer", {"DisplayName": {"value": "Acme"}}),
        ("Customer", {"DisplayName": "Acme", "PrimaryEmailAddr": "a@b.test"}),
        ("Customer", {"DisplayName": "Acme", "Active": "yes"}),
        ("Invoice", {**INVOICE, "Line": {"Amount": 10}}),
        ("Invoice", {**INVOICE, "TxnDate": True}),
        ("Item", {"Name": "Widget", "IncomeAccountRef": {"value": "1"}, "UnitPrice": "cheap"}),
    ],
)
async def test_a_misshapen_property_is_refused_with_2010(
    us: Api, entity: str, body: dict[str, Any]
) -> None:
    response = await us.post(entity, body)

    assert response.status_code == 400
    assert first_error(response)["code"] == "2010"


async def test_read_only_properties_sent_back_are_accepted_and_ignored(us: Api) -> None:
    customer = await us.read("Customer", "1")
    balance = customer["Balance"]
    customer.update(Balance=999, Level=0, BalanceWithJobs=999, OpenBalanceDate="")

    updated = await us.create("Customer", customer)

    assert updated["SyncToken"] == "1"
    assert updated["Balance"] == balance


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Invoice WHERE PrivateNote = 'x'",
        "SELECT * FROM Vendor WHERE PrimaryEmailAddr = 'a@b.test'",
        "SELECT * FROM Account WHERE AcctNum = '1000'",
        "SELECT * FROM Invoice WHERE Line.Amount > '1'",
        "SELECT * FROM Item WHERE UnitPrice > '1'",
        "SELECT * FROM Customer WHERE Nickname = 'x'",
    ],
)
async def test_filters_on_properties_that_are_not_queryable_are_refused_with_4001(
    us: Api, statement: str
) -> None:
    response = await us.client.get(us.url("query"), params={"query": statement})

    assert response.status_code == 400
    error = first_error(response)
    assert (error["code"], error["Message"]) == ("4001", "Invalid query")


async def test_queryable_properties_and_extra_selected_properties_work(us: Api) -> None:
    assert len((await us.query("SELECT *, Sku FROM Item"))["Item"]) == 4
    emails = await us.query("SELECT * FROM Customer WHERE PrimaryEmailAddr = 'surf@intuit.test'")
    assert [c["DisplayName"] for c in emails["Customer"]] == ["Bill's Windsurf Shop"]
    response = await us.client.get(us.url("query"), params={"query": "SELECT *, Nope FROM Item"})
    assert first_error(response)["code"] == "4001"


@pytest.mark.parametrize(
    ("entity", "body", "element"),
    [
        ("Customer", {"DisplayName": "Parent:Child"}, "DisplayName"),
        ("Customer", {"GivenName": "Tab\tbed"}, "GivenName"),
        ("Vendor", {"DisplayName": "Line\nbreak"}, "DisplayName"),
        ("Employee", {"GivenName": "Ann", "FamilyName": "Colon:Ann"}, "FamilyName"),
        ("Item", {"Name": "Kit:Part", "IncomeAccountRef": {"value": "1"}}, "Name"),
        ("Account", {"Name": 'Quoted "name"', "AccountType": "Expense"}, "Name"),
    ],
)
async def test_forbidden_characters_in_names_are_refused(
    us: Api, entity: str, body: dict[str, Any], element: str
) -> None:
    response = await us.post(entity, body)

    assert response.status_code == 400
    error = first_error(response)
    assert (error["code"], error["element"]) == ("6000", element)


async def account_of(us: Api, account_type: str) -> str:
    rows = await us.query(f"SELECT * FROM Account WHERE AccountType = '{account_type}'")
    return str(rows["Account"][0]["Id"])


async def test_references_to_accounts_of_the_wrong_type_are_refused(us: Api) -> None:
    expense, income = await account_of(us, "Expense"), await account_of(us, "Income")
    bank, payable = await account_of(us, "Bank"), await account_of(us, "Accounts Payable")
    refused = [
        ("Item", {"Name": "Wrong income", "IncomeAccountRef": {"value": expense}}),
        (
            "Item",
            {
                "Name": "Wrong expense",
                "Type": "NonInventory",
                "IncomeAccountRef": {"value": income},
                "ExpenseAccountRef": {"value": income},
            },
        ),
        (
            "Bill",
            {
                "VendorRef": {"value": "1"},
                "APAccountRef": {"value": bank},
                "Line": [expense_line_to(expense)],
            },
        ),
        ("Bill", {"VendorRef": {"value": "1"}, "Line": [expense_line_to(payable)]}),
        (
            "Payment",
            {
                "CustomerRef": {"value": "1"},
                "TotalAmt": 5,
                "DepositToAccountRef": {"value": expense},
            },
        ),
        (
            "Payment",
            {"CustomerRef": {"value": "1"}, "TotalAmt": 5, "ARAccountRef": {"value": bank}},
        ),
        ("Vendor", {"DisplayName": "Wrong AP", "APAccountRef": {"value": expense}}),
        ("Customer", {"DisplayName": "Wrong AR", "ARAccountRef": {"value": payable}}),
    ]
    for entity, body in refused:
        response = await us.post(entity, body)
        assert response.status_code == 400, (entity, body)
        error = first_error(response)
        assert error["code"] == "6000", error
        assert "Invalid account type" in error["Detail"]

    item = {"Name": "Right accounts", "IncomeAccountRef": {"value": income}}
    assert (await us.create("Item", item))["IncomeAccountRef"]["value"] == income


def expense_line_to(account: str) -> dict[str, Any]:
    return {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": 10,
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}},
    }


async def test_a_requestid_reused_for_another_entity_is_refused_with_600(us: Api) -> None:
    first = await us.post("Customer", {"DisplayName": "First Use Ltd"}, requestid="shared-id")
    assert first.status_code == 200

    other_entity = await us.post("Vendor", {"DisplayName": "Second Use Ltd"}, requestid="shared-id")
    other_operation = await us.post(
        "Customer",
        {"Id": first.json()["Customer"]["Id"], "SyncToken": "0", "DisplayName": "Renamed"},
        requestid="shared-id",
    )
    batch = await us.client.post(
        us.url("batch"), json={"BatchItemRequest": []}, params={"requestid": "shared-id"}
    )

    for response in (other_entity, other_operation, batch):
        assert response.status_code == 400
        error = first_error(response)
        assert (error["code"], error["Message"]) == ("600", "Duplicate Request ID")
    assert [v["DisplayName"] for v in us.admin.documents(US, "Vendor")].count("Second Use Ltd") == 0
    assert (await us.post("Customer", {"DisplayName": "x"}, requestid="shared-id")).content == (
        first.content
    )


async def test_requestid_and_batch_id_lengths_are_limited(us: Api) -> None:
    too_long = await us.post("Customer", {"DisplayName": "Long Id"}, requestid="r" * 51)
    assert first_error(too_long)["element"] == "requestid"

    item = {"bId": "b" * 11, "operation": "create", "Vendor": {"DisplayName": "V"}}
    batch = await us.client.post(
        us.url("batch"), json={"BatchItemRequest": [item]}, params={"requestid": "ok"}
    )
    assert first_error(batch)["element"] == "bId"
    long_batch = await us.client.post(
        us.url("batch"), json={"BatchItemRequest": []}, params={"requestid": "r" * 37}
    )
    assert first_error(long_batch)["element"] == "requestid"
