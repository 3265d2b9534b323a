"""Closed books: no transaction dated on or before the closing date is created, changed, voided
or deleted (6210 Account Period Closed); the date is set by /_sim and shown in Preferences."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator.jsonio import dumps
from tests.simulator.conftest import GB, US, Api, decode, expense_line, first_error, sales_line

CLOSED = "2026-01-31"
TRANSACTIONS: dict[str, dict[str, Any]] = {
    "Invoice": {"CustomerRef": {"value": "1"}, "Line": [sales_line("10", code="NON")]},
    "Payment": {"CustomerRef": {"value": "1"}, "TotalAmt": Decimal("10")},
    "Bill": {"VendorRef": {"value": "1"}, "Line": [expense_line("10")]},
    "Purchase": {"PaymentType": "Cash", "AccountRef": {"value": "8"}, "Line": [expense_line("10")]},
}


async def close_books(api: Api, date: str | None) -> httpx.Response:
    return await api.client.post(f"/_sim/companies/{api.realm_id}/close-books", json={"date": date})


def assert_period_closed(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert decode(response)["Fault"]["type"] == "ValidationFault"
    error = first_error(response)
    assert (error["code"], error["Message"], error["element"]) == (
        "6210",
        "Account Period Closed",
        "TxnDate",
    )
    assert f"The books are closed through {CLOSED}" in error["Detail"]


async def preferences(api: Api) -> dict[str, Any]:
    response = await api.client.get(api.url("preferences"))
    assert response.status_code == 200
    prefs: dict[str, Any] = decode(response)["Preferences"]
    return prefs


async def test_the_closing_date_is_set_and_cleared_through_the_admin_api(us: Api) -> None:
    before = await preferences(us)
    assert "BookCloseDate" not in before["AccountingInfoPrefs"]

    closed = await close_books(us, CLOSED)
    shown = await preferences(us)
    reopened = await close_books(us, None)

    assert closed.status_code == 200
    assert decode(closed)["Preferences"]["AccountingInfoPrefs"]["BookCloseDate"] == CLOSED
    assert shown["AccountingInfoPrefs"]["BookCloseDate"] == CLOSED
    assert shown["SyncToken"] == str(int(before["SyncToken"]) + 1)
    assert "BookCloseDate" not in decode(reopened)["Preferences"]["AccountingInfoPrefs"]
    assert "BookCloseDate" not in (await preferences(us))["AccountingInfoPrefs"]


@pytest.mark.parametrize("body", [{}, {"date": "31/01/2026"}, {"date": "2026-02-30"}, {"date": 1}])
async def test_a_closing_date_must_be_a_date_or_null(us: Api, body: dict[str, Any]) -> None:
    response = await us.client.post(f"/_sim/companies/{US}/close-books", json=body)

    assert response.status_code == 422
    assert "BookCloseDate" not in (await preferences(us))["AccountingInfoPrefs"]


async def test_closing_the_books_of_an_unknown_company_is_a_fault(us: Api) -> None:
    response = await us.client.post("/_sim/companies/1234/close-books", json={"date": CLOSED})

    assert response.status_code == 400
    assert first_error(response)["code"] == "610"


@pytest.mark.parametrize("entity", sorted(TRANSACTIONS))
async def test_a_transaction_dated_on_or_before_the_closing_date_is_not_created(
    us: Api, gb: Api, entity: str
) -> None:
    await close_books(us, CLOSED)

    on_the_day = await us.post(entity, {**TRANSACTIONS[entity], "TxnDate": CLOSED})
    before = await us.post(entity, {**TRANSACTIONS[entity], "TxnDate": "2025-12-24"})
    after = await us.post(entity, {**TRANSACTIONS[entity], "TxnDate": "2026-02-01"})

    assert_period_closed(on_the_day)
    assert_period_closed(before)
    assert after.status_code == 200, after.text
    assert [row["TxnDate"] for row in us.admin.documents(US, entity)] == ["2026-02-01"]
    # The books of one company only.
    gb_invoice = {
        "CustomerRef": {"value": "1"},
        "GlobalTaxCalculation": "TaxExcluded",
        "Line": [sales_line("10", code="3")],
        "TxnDate": CLOSED,
    }
    assert (await gb.post("Invoice", gb_invoice)).status_code == 200
    assert len(gb.admin.documents(GB, "Invoice")) == 1


async def test_without_txn_date_the_companys_today_is_what_is_checked(us: Api) -> None:
    today = (await us.create("Invoice", TRANSACTIONS["Invoice"]))["TxnDate"]
    await us.client.post(f"/_sim/companies/{US}/close-books", json={"date": today})

    refused = await us.post("Invoice", TRANSACTIONS["Invoice"])
    await us.client.post("/_sim/clock/advance", json={"seconds": 86_400})
    # A day later the access token has expired.
    tokens = (await us.client.post(f"/_sim/companies/{US}/connect")).json()
    us.client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    next_day = await us.post("Invoice", TRANSACTIONS["Invoice"])

    assert first_error(refused)["code"] == "6210"
    assert f"closed through {today}" in first_error(refused)["Detail"]
    assert next_day.status_code == 200
    assert decode(next_day)["Invoice"]["TxnDate"] > today


async def test_a_transaction_is_not_changed_in_or_moved_into_or_out_of_the_closed_period(
    us: Api,
) -> None:
    january = await us.create("Invoice", {**TRANSACTIONS["Invoice"], "TxnDate": "2026-01-15"})
    february = await us.create("Invoice", {**TRANSACTIONS["Invoice"], "TxnDate": "2026-02-10"})
    await close_books(us, CLOSED)

    def sparse(invoice: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True, **changes}

    note_in_january = await us.post("Invoice", sparse(january, PrivateNote="x"))
    out_of_january = await us.post("Invoice", sparse(january, TxnDate="2026-02-01"))
    into_january = await us.post("Invoice", sparse(february, TxnDate="2026-01-20"))
    full_update_into_january = await us.post(
        "Invoice",
        {**TRANSACTIONS["Invoice"], "Id": february["Id"], "SyncToken": "0", "TxnDate": CLOSED},
    )
    within_february = await us.post("Invoice", sparse(february, TxnDate="2026-02-20"))

    for refused in (note_in_january, out_of_january, into_january, full_update_into_january):
        assert_period_closed(refused)
    assert within_february.status_code == 200
    assert await us.read("Invoice", january["Id"]) == january


async def test_a_closed_period_transaction_is_not_voided_or_deleted(us: Api) -> None:
    invoice = await us.create("Invoice", {**TRANSACTIONS["Invoice"], "TxnDate": "2026-01-15"})
    payment = await us.create("Payment", {**TRANSACTIONS["Payment"], "TxnDate": "2026-01-20"})
    purchase = await us.create("Purchase", {**TRANSACTIONS["Purchase"], "TxnDate": "2026-01-20"})
    bill = await us.create("Bill", {**TRANSACTIONS["Bill"], "TxnDate": "2026-01-20"})
    await close_books(us, CLOSED)

    def ids(document: dict[str, Any]) -> dict[str, Any]:
        return {"Id": document["Id"], "SyncToken": document["SyncToken"]}

    refused = [
        await us.post("Invoice", ids(invoice), operation="delete"),
        await us.post("Invoice", ids(invoice), operation="void"),
        await us.post("Payment", ids(payment), operation="delete"),
        await us.post(
            "Payment", {**ids(payment), "sparse": True}, operation="update", include="void"
        ),
        await us.post("Purchase", ids(purchase), operation="void"),
        await us.post("Purchase", ids(purchase), operation="delete"),
        await us.post("Bill", ids(bill), operation="delete"),
    ]

    for response in refused:
        assert_period_closed(response)
    assert await us.read("Invoice", invoice["Id"]) == invoice
    await close_books(us, None)
    reopened = await us.post("Invoice", ids(invoice), operation="delete")
    assert decode(reopened)["Invoice"]["status"] == "Deleted"


async def test_payments_in_the_open_period_still_settle_closed_period_invoices(us: Api) -> None:
    invoice = await us.create("Invoice", {**TRANSACTIONS["Invoice"], "TxnDate": "2026-01-15"})
    await close_books(us, CLOSED)
    paid = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": Decimal("4"),
        "TxnDate": "2026-02-03",
        "Line": [
            {"Amount": Decimal("4"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
        ],
    }

    payment = await us.create("Payment", paid)

    assert (await us.read("Invoice", invoice["Id"]))["Balance"] == Decimal("6.00")
    deleted = await us.post("Payment", {"Id": payment["Id"], "SyncToken": "0"}, operation="delete")
    assert deleted.status_code == 200
    assert (await us.read("Invoice", invoice["Id"]))["Balance"] == Decimal("10.00")


async def test_voiding_an_invoice_that_would_unapply_a_closed_period_payment_is_refused(
    us: Api,
) -> None:
    invoice = await us.create("Invoice", {**TRANSACTIONS["Invoice"], "TxnDate": "2026-02-10"})
    paid = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": Decimal("4"),
        "TxnDate": "2026-01-30",
        "Line": [
            {"Amount": Decimal("4"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
        ],
    }
    payment = await us.create("Payment", paid)
    current = await us.read("Invoice", invoice["Id"])
    await close_books(us, CLOSED)

    voided = await us.post(
        "Invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]}, operation="void"
    )

    assert_period_closed(voided)
    assert await us.read("Invoice", invoice["Id"]) == current
    assert await us.read("Payment", payment["Id"]) == payment


async def test_batch_items_in_the_closed_period_get_the_fault(us: Api) -> None:
    await close_books(us, CLOSED)
    items = [
        {
            "bId": "closed",
            "operation": "create",
            "Invoice": {**TRANSACTIONS["Invoice"], "TxnDate": CLOSED},
        },
        {
            "bId": "open",
            "operation": "create",
            "Invoice": {**TRANSACTIONS["Invoice"], "TxnDate": "2026-02-01"},
        },
    ]

    response = await us.client.post(us.url("batch"), content=dumps({"BatchItemRequest": items}))

    assert response.status_code == 200
    results = {item["bId"]: item for item in decode(response)["BatchItemResponse"]}
    error = results["closed"]["Fault"]["Error"][0]
    assert (error["code"], error["Message"], error["element"]) == (
        "6210",
        "Account Period Closed",
        "TxnDate",
    )
    assert results["closed"]["Fault"]["type"] == "ValidationFault"
    assert results["open"]["Invoice"]["TxnDate"] == "2026-02-01"
    assert len(us.admin.documents(US, "Invoice")) == 1
