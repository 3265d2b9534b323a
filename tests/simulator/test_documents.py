"""Batch items independent of each other, line ids kept across updates, auto-numbers that never
collide with a client's own numbers, and employees in the shared name space."""

from __future__ import annotations

from typing import Any

from qbsync.simulator.jsonio import dumps
from tests.simulator.conftest import Api, decode, expense_line, first_error, sales_line


async def batch(us: Api, *items: dict[str, Any]) -> dict[str, Any]:
    response = await us.client.post(
        us.url("batch"), content=dumps({"BatchItemRequest": list(items)})
    )
    assert response.status_code == 200, response.text
    return {item["bId"]: item for item in decode(response)["BatchItemResponse"]}


async def test_a_batch_item_does_not_see_what_an_earlier_item_created(us: Api) -> None:
    results = await batch(
        us,
        {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Fresh Co"}},
        {"bId": "q", "Query": "SELECT * FROM Customer WHERE DisplayName = 'Fresh Co'"},
        {
            "bId": "i",
            "operation": "create",
            # Id 6 is the customer item "c" creates: the next customer Id.
            "Invoice": {"CustomerRef": {"value": "6"}, "Line": [sales_line("10")]},
        },
        {
            "bId": "u",
            "operation": "update",
            "Customer": {"Id": "6", "SyncToken": "0", "sparse": True, "Notes": "x"},
        },
    )

    assert results["c"]["Customer"]["Id"] == "6"
    assert results["q"]["QueryResponse"] == {}
    assert results["i"]["Fault"]["Error"][0]["code"] == "2500"
    assert results["u"]["Fault"]["Error"][0]["code"] == "610"
    # The next request sees it.
    assert (await us.read("Customer", "6"))["DisplayName"] == "Fresh Co"


async def test_batch_query_items_answer_counts_and_company_info(us: Api) -> None:
    entities = ("Customer", "Item", "Account", "TaxCode", "Invoice", "Payment", "Vendor", "Bill")
    items = [{"bId": f"n{i}", "Query": f"SELECT COUNT(*) FROM {e}"} for i, e in enumerate(entities)]
    items.append({"bId": "info", "Query": "SELECT * FROM CompanyInfo"})

    results = await batch(us, *items)

    assert results["n0"]["QueryResponse"] == {"totalCount": 4}
    assert results["n4"]["QueryResponse"] == {"totalCount": 0}
    info = results["info"]["QueryResponse"]["CompanyInfo"][0]
    assert info["CompanyName"] == "Craig's Design and Landscaping"


def item_lines(document: dict[str, Any], detail: str = "SalesItemLineDetail") -> list[Any]:
    return [
        (line["Id"], line["LineNum"]) for line in document["Line"] if line["DetailType"] == detail
    ]


async def test_lines_keep_their_ids_across_updates_and_new_lines_get_new_ones(us: Api) -> None:
    invoice = await us.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [sales_line("10"), sales_line("20"), sales_line("30")],
        },
    )
    assert item_lines(invoice) == [("1", 1), ("2", 2), ("3", 3)]
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]

    # Drop line 3, keep 2 then 1 (reordered).
    updated = await us.create(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": invoice["SyncToken"],
            "CustomerRef": {"value": "1"},
            "Line": [lines[1], lines[0]],
        },
    )
    assert item_lines(updated) == [("2", 1), ("1", 2)]

    again = await us.create(
        "Invoice",
        {
            "Id": invoice["Id"],
            "SyncToken": updated["SyncToken"],
            "sparse": True,
            "Line": [*updated["Line"][:2], sales_line("50")],
        },
    )
    # A new line gets a new Id, never the Id of the removed line 3.
    assert item_lines(again) == [("2", 1), ("1", 2), ("4", 3)]


async def test_bill_and_purchase_lines_keep_their_ids(us: Api) -> None:
    bill = await us.create(
        "Bill", {"VendorRef": {"value": "1"}, "Line": [expense_line("5"), expense_line("6")]}
    )
    updated = await us.create(
        "Bill",
        {
            "Id": bill["Id"],
            "SyncToken": "0",
            "VendorRef": {"value": "1"},
            "Line": [bill["Line"][1], expense_line("7")],
        },
    )
    assert item_lines(updated, "AccountBasedExpenseLineDetail") == [("2", 1), ("3", 2)]


async def test_auto_numbers_pass_over_numbers_a_client_chose(us: Api) -> None:
    base = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}
    assert (await us.create("Invoice", {**base, "DocNumber": "1002"}))["DocNumber"] == "1002"

    numbers = [(await us.create("Invoice", base))["DocNumber"] for _ in range(2)]

    assert numbers == ["1001", "1003"]
    response = await us.post("Invoice", {**base, "DocNumber": "1003"})
    assert first_error(response)["code"] == "6140"


async def test_employees_are_created_read_queried_and_share_customer_names(us: Api) -> None:
    seeded = await us.query("SELECT * FROM Employee")
    assert [e["DisplayName"] for e in seeded["Employee"]] == ["Emily Platt", "John Johnson"]
    employee = await us.create("Employee", {"GivenName": "Tom", "FamilyName": "Thumb"})
    assert (await us.read("Employee", employee["Id"]))["DisplayName"] == "Tom Thumb"

    for entity in ("Customer", "Vendor"):
        response = await us.post(entity, {"DisplayName": "Emily Platt"})
        assert first_error(response)["code"] == "6240"
    response = await us.post("Employee", {"GivenName": "Cool", "DisplayName": "Cool Cars"})
    assert first_error(response)["code"] == "6240"
    assert first_error(await us.post("Employee", {"DisplayName": "No Names"}))["code"] == "2020"

    purchase = await us.create(
        "Purchase",
        {
            "PaymentType": "Cash",
            "AccountRef": {"value": "8"},
            "EntityRef": {"value": employee["Id"], "type": "Employee"},
            "Line": [expense_line("12")],
        },
    )
    assert purchase["EntityRef"]["name"] == "Tom Thumb"
