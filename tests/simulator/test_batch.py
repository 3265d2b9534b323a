"""Batch: per-item results and faults in one HTTP 200, at most 30 items."""

from __future__ import annotations

from decimal import Decimal

from tests.simulator.conftest import Api, decode, first_error, sales_line


async def test_each_item_gets_its_own_result_or_fault(us: Api) -> None:
    invoice = await us.create(
        "Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}
    )
    other = await us.create("Invoice", {"CustomerRef": {"value": "2"}, "Line": [sales_line("20")]})
    items = [
        {"bId": "b1", "operation": "create", "Customer": {"DisplayName": "Batch Co"}},
        {"bId": "b2", "operation": "create", "Customer": {"DisplayName": "Cool Cars"}},
        {"bId": "b3", "operation": "delete", "Invoice": {"Id": invoice["Id"], "SyncToken": "0"}},
        {
            "bId": "b4",
            "operation": "update",
            "Invoice": {"Id": other["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"},
        },
        {"bId": "b5", "Query": "select * from Invoice where TotalAmt > '15'"},
        {"bId": "b6", "operation": "update", "Invoice": {"Id": other["Id"], "SyncToken": "0"}},
    ]

    response = await us.client.post(us.url("batch"), json={"BatchItemRequest": items})

    assert response.status_code == 200
    results = {item["bId"]: item for item in decode(response)["BatchItemResponse"]}
    assert results["b1"]["Customer"]["DisplayName"] == "Batch Co"
    assert results["b2"]["Fault"]["Error"][0]["code"] == "6240"
    assert results["b2"]["Fault"]["type"] == "ValidationFault"
    assert results["b3"]["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": invoice["Id"]}
    assert results["b4"]["Invoice"]["SyncToken"] == "1"
    assert results["b4"]["Invoice"]["PrivateNote"] == "x"
    assert [row["TotalAmt"] for row in results["b5"]["QueryResponse"]["Invoice"]] == [
        Decimal("20.00")
    ]
    assert results["b6"]["Fault"]["Error"][0]["code"] == "5010"


async def test_more_than_thirty_items_are_refused(us: Api) -> None:
    items = [{"bId": str(n), "Query": "select * from Customer"} for n in range(31)]

    response = await us.client.post(us.url("batch"), json={"BatchItemRequest": items})

    assert response.status_code == 400
    assert first_error(response)["code"] == "1040"
    ok = await us.client.post(us.url("batch"), json={"BatchItemRequest": items[:30]})
    assert len(decode(ok)["BatchItemResponse"]) == 30


async def test_a_malformed_item_faults_alone(us: Api) -> None:
    items = [
        {"bId": "a", "operation": "merge", "Customer": {"DisplayName": "X"}},
        {"bId": "b", "operation": "create"},
        {"bId": "c", "operation": "create", "Vendor": {"DisplayName": "Fine Vendor"}},
    ]

    response = await us.client.post(us.url("batch"), json={"BatchItemRequest": items})

    results = decode(response)["BatchItemResponse"]
    assert results[0]["Fault"]["Error"][0]["code"] == "2170"
    assert "Fault" in results[1]
    assert results[2]["Vendor"]["DisplayName"] == "Fine Vendor"
