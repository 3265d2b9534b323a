"""What QuickBooks receives for each call shape, and how the answers come back."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from qbsync.qbo import (
    BatchItem,
    BatchOperation,
    BatchQuery,
    CompanyInfo,
    Customer,
    Invoice,
    Line,
    Payment,
    Preferences,
    QboAuthenticationError,
    QboClient,
    QboDuplicateNameError,
    QboNotFoundError,
    QboServerError,
    QboStaleObjectError,
    Ref,
    quote,
)
from tests.qbo import bodies
from tests.qbo.conftest import (
    ACCESS_TOKEN_1,
    ACCESS_TOKEN_2,
    COMPANY,
    REALM,
    FakeTokens,
    RecordingLimiter,
    make_config,
)

TIME = "2026-01-15T10:48:27.082-08:00"


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content)


def customer(number: int) -> dict[str, Any]:
    return {"Id": str(number), "SyncToken": "0", "DisplayName": f"Customer {number}"}


async def test_every_call_sends_minorversion_json_and_the_bearer_token(
    intuit: respx.MockRouter, qbo: QboClient, limiter: RecordingLimiter
) -> None:
    route = intuit.get(f"{COMPANY}/customer/58").respond(
        200, json={"Customer": customer(58), "time": TIME}
    )
    found = await qbo.get(Customer, "58")
    request = route.calls.last.request
    assert params(request) == {"minorversion": "75"}
    assert request.headers["accept"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN_1}"
    assert found.display_name == "Customer 58"
    assert limiter.slots == [(REALM, False)]


async def test_company_info_and_preferences(intuit: respx.MockRouter, qbo: QboClient) -> None:
    intuit.get(f"{COMPANY}/companyinfo/{REALM}").respond(
        200,
        json={
            "CompanyInfo": {"CompanyName": "Acme Ltd", "Country": "GB", "Id": "1"},
            "time": TIME,
        },
    )
    intuit.get(f"{COMPANY}/preferences").respond(
        200,
        json={
            "Preferences": {
                "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": True},
                "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
                "SalesFormsPrefs": {"CustomTxnNumbers": True},
                "OtherPrefs": {"NameValue": []},
            }
        },
    )
    info = await qbo.company_info()
    prefs = await qbo.preferences()
    assert isinstance(info, CompanyInfo)
    assert (info.company_name, info.country) == ("Acme Ltd", "GB")
    assert isinstance(prefs, Preferences)
    assert prefs.tax_prefs is not None
    assert prefs.tax_prefs.partner_tax_enabled
    assert prefs.currency_prefs is not None
    assert prefs.currency_prefs.home_currency is not None
    assert prefs.currency_prefs.home_currency.value == "USD"
    assert prefs.sales_forms_prefs is not None
    assert prefs.sales_forms_prefs.custom_txn_numbers


async def test_query_quotes_apostrophes(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.get(f"{COMPANY}/query").respond(200, json={"QueryResponse": {}, "time": TIME})
    name = quote("Adam's Candy Shop")
    rows = await qbo.query_all(Customer, f"DisplayName = {name}")
    assert rows == []
    assert params(route.calls.last.request) == {
        "minorversion": "75",
        "query": "SELECT * FROM Customer WHERE DisplayName = 'Adam\\'s Candy Shop' "
        "STARTPOSITION 1 MAXRESULTS 1000",
    }


def paged_customers(total: int) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        words = request.url.params["query"].split()
        start = int(words[words.index("STARTPOSITION") + 1])
        size = int(words[words.index("MAXRESULTS") + 1])
        rows = [customer(n) for n in range(start, min(start + size, total + 1))]
        page: dict[str, Any] = {"startPosition": start, "maxResults": len(rows)}
        if rows:
            page["Customer"] = rows
        return httpx.Response(200, json={"QueryResponse": page, "time": TIME})

    return answer


async def test_query_pages_past_1000_rows(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.get(f"{COMPANY}/query").mock(side_effect=paged_customers(2345))
    rows = await qbo.query_all(Customer, "Active = true", order_by="Id")
    assert [row.id for row in rows] == [str(n) for n in range(1, 2346)]
    statements = [call.request.url.params["query"] for call in route.calls]
    assert statements == [
        f"SELECT * FROM Customer WHERE Active = true ORDERBY Id STARTPOSITION {start} "
        "MAXRESULTS 1000"
        for start in (1, 1001, 2001)
    ]


async def test_query_stops_after_an_empty_page_when_the_last_page_was_full(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.get(f"{COMPANY}/query").mock(side_effect=paged_customers(6))
    rows = [row async for row in qbo.query(Customer, page_size=3)]
    assert len(rows) == 6
    assert route.call_count == 3


async def test_count(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.get(f"{COMPANY}/query").respond(
        200, json={"QueryResponse": {"totalCount": 42}, "time": TIME}
    )
    assert await qbo.count(Invoice, "Balance > '0'") == 42
    assert route.calls.last.request.url.params["query"] == (
        "SELECT COUNT(*) FROM Invoice WHERE Balance > '0'"
    )


@pytest.mark.parametrize("total", [{"n": 1}, "many", 1.5, -1, True])
async def test_a_count_that_is_not_a_count_is_a_qbo_error(
    intuit: respx.MockRouter, qbo: QboClient, total: object
) -> None:
    intuit.get(f"{COMPANY}/query").respond(
        200, json={"QueryResponse": {"totalCount": total}, "time": TIME}
    )
    with pytest.raises(QboServerError, match="totalCount"):
        await qbo.count(Invoice)


async def test_create_sends_requestid_and_exact_money(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.post(f"{COMPANY}/invoice").respond(
        200,
        json={
            "Invoice": {"Id": "130", "SyncToken": "0", "TotalAmt": 300.10, "Balance": 300.10},
            "time": TIME,
        },
    )
    invoice = Invoice(
        customer_ref=Ref(value="58"),
        doc_number="INV-1001",
        line=[
            Line(
                detail_type="SalesItemLineDetail",
                amount=Decimal("300.10"),
                sales_item_line_detail={"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": "150.05"},
            )
        ],
    )
    created = await qbo.create(invoice, requestid="inv_1:create:v1")
    request = route.calls.last.request
    assert params(request) == {"minorversion": "75", "requestid": "inv_1:create:v1"}
    assert request.headers["content-type"] == "application/json"
    # Money leaves as JSON numbers with every digit, never as strings or rounded floats.
    assert b'"Amount":300.10' in request.content
    assert b'"UnitPrice":150.05' in request.content
    assert json.loads(request.content, parse_float=Decimal) == {
        "DocNumber": "INV-1001",
        "Line": [
            {
                "Amount": Decimal("300.10"),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "1"},
                    "Qty": 2,
                    "UnitPrice": Decimal("150.05"),
                },
            }
        ],
        "CustomerRef": {"value": "58"},
    }
    assert created.id == "130"
    assert created.total_amt == Decimal("300.10")
    assert created.balance == Decimal("300.10")


async def test_sparse_update_sends_only_what_was_set(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.post(f"{COMPANY}/customer").respond(
        200, json={"Customer": {**customer(5), "SyncToken": "3"}, "time": TIME}
    )
    updated = await qbo.update(
        Customer(id="5", sync_token="2", active=False), requestid="cl_1:deactivate:2"
    )
    request = route.calls.last.request
    assert params(request) == {"minorversion": "75", "requestid": "cl_1:deactivate:2"}
    assert sent_json(request) == {"Id": "5", "SyncToken": "2", "Active": False, "sparse": True}
    assert updated.sync_token == "3"


async def test_read_modify_write_keeps_unknown_fields(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    stored = {
        "Id": "7",
        "SyncToken": "1",
        "TotalAmt": 10.5,
        "CustomField": [{"DefinitionId": "1", "StringValue": "PO-9"}],
        "NewFieldFromIntuit": {"Rate": 0.075},
    }
    intuit.get(f"{COMPANY}/invoice/7").respond(200, json={"Invoice": stored, "time": TIME})
    route = intuit.post(f"{COMPANY}/invoice").respond(200, json={"Invoice": stored, "time": TIME})
    invoice = await qbo.get(Invoice, "7")
    invoice.private_note = "synced"
    await qbo.update(invoice, requestid="inv_7:note")
    content = route.calls.last.request.content
    assert b'"Rate":0.075' in content
    assert json.loads(content, parse_float=Decimal) == {
        **stored,
        "TotalAmt": Decimal("10.5"),
        "NewFieldFromIntuit": {"Rate": Decimal("0.075")},
        "PrivateNote": "synced",
        "sparse": True,
    }


async def test_delete(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.post(f"{COMPANY}/invoice").respond(
        200, json={"Invoice": {"status": "Deleted", "domain": "QBO", "Id": "33"}, "time": TIME}
    )
    deleted = await qbo.delete(Invoice, "33", "3", requestid="inv_33:delete")
    request = route.calls.last.request
    assert params(request) == {
        "minorversion": "75",
        "operation": "delete",
        "requestid": "inv_33:delete",
    }
    assert sent_json(request) == {"Id": "33", "SyncToken": "3"}
    assert deleted.is_deleted


async def test_void_invoice_uses_the_void_operation(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.post(f"{COMPANY}/invoice").respond(
        200, json={"Invoice": {"Id": "33", "SyncToken": "4", "Balance": 0}, "time": TIME}
    )
    voided = await qbo.void(Invoice, "33", "3", requestid="inv_33:void")
    request = route.calls.last.request
    assert params(request) == {
        "minorversion": "75",
        "operation": "void",
        "requestid": "inv_33:void",
    }
    assert sent_json(request) == {"Id": "33", "SyncToken": "3"}
    assert voided.balance == 0


async def test_void_payment_is_a_sparse_update_with_include_void(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.post(f"{COMPANY}/payment").respond(
        200, json={"Payment": {"Id": "90", "SyncToken": "2", "TotalAmt": 0}, "time": TIME}
    )
    await qbo.void(Payment, "90", "1", requestid="pay_1:void")
    request = route.calls.last.request
    assert params(request) == {
        "minorversion": "75",
        "operation": "update",
        "include": "void",
        "requestid": "pay_1:void",
    }
    assert sent_json(request) == {"Id": "90", "SyncToken": "1", "sparse": True}


@pytest.mark.parametrize("requestid", ["", "x" * 51, "has space"])
async def test_requestid_is_validated_before_anything_is_sent(
    intuit: respx.MockRouter, qbo: QboClient, requestid: str
) -> None:
    route = intuit.post(f"{COMPANY}/customer").respond(200, json={"Customer": customer(1)})
    with pytest.raises(ValueError, match="requestid"):
        await qbo.create(Customer(display_name="Acme"), requestid=requestid)
    assert route.call_count == 0


async def test_a_requestid_of_50_characters_is_accepted(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.post(f"{COMPANY}/customer").respond(200, json={"Customer": customer(1)})
    await qbo.create(Customer(display_name="Acme"), requestid="r" * 50)
    assert params(route.calls.last.request)["requestid"] == "r" * 50


async def test_batch_with_some_items_failing(
    intuit: respx.MockRouter, qbo: QboClient, limiter: RecordingLimiter
) -> None:
    route = intuit.post(f"{COMPANY}/batch").respond(
        200,
        json={
            "BatchItemResponse": [
                # Out of order on purpose: results follow the request's order.
                {
                    "bId": "b2",
                    "Fault": {"type": "ValidationFault", **bodies.DUPLICATE_NAME["Fault"]},
                },
                {"bId": "b1", "Customer": {"Id": "164", "SyncToken": "0", "DisplayName": "A"}},
                {"bId": "b3", "Fault": bodies.STALE_OBJECT["Fault"]},
                {"bId": "b4", "Invoice": {"status": "Deleted", "Id": "129", "domain": "QBO"}},
            ],
            "time": TIME,
        },
        headers={"intuit_tid": "tid-batch"},
    )
    operations = [
        BatchOperation("b1", "create", Customer(display_name="A")),
        BatchOperation("b2", "create", Customer(display_name="Taken")),
        BatchOperation("b3", "update", Invoice(id="130", sync_token="2", private_note="x")),
        BatchOperation("b4", "delete", Invoice(id="129", sync_token="0", private_note="ignored")),
        BatchOperation("b5", "create", Customer(display_name="Lost")),
    ]
    results = await qbo.batch(operations, requestid="batch-0001")

    request = route.calls.last.request
    assert params(request) == {"minorversion": "75", "requestid": "batch-0001"}
    assert sent_json(request) == {
        "BatchItemRequest": [
            {"bId": "b1", "operation": "create", "Customer": {"DisplayName": "A"}},
            {"bId": "b2", "operation": "create", "Customer": {"DisplayName": "Taken"}},
            {
                "bId": "b3",
                "operation": "update",
                "Invoice": {"Id": "130", "SyncToken": "2", "PrivateNote": "x", "sparse": True},
            },
            {"bId": "b4", "operation": "delete", "Invoice": {"Id": "129", "SyncToken": "0"}},
            {"bId": "b5", "operation": "create", "Customer": {"DisplayName": "Lost"}},
        ]
    }
    assert [result.bid for result in results] == ["b1", "b2", "b3", "b4", "b5"]
    assert [result.ok for result in results] == [True, False, False, True, False]
    assert isinstance(results[0].entity, Customer)
    assert results[0].entity.id == "164"
    assert isinstance(results[1].error, QboDuplicateNameError)
    assert results[1].error.intuit_tid == "tid-batch"
    assert isinstance(results[2].error, QboStaleObjectError)
    assert isinstance(results[3].entity, Invoice)
    assert results[3].entity.is_deleted
    assert results[4].error is not None
    assert results[4].error.retryable
    assert limiter.slots == [(REALM, True)]


async def test_batch_limits_are_checked_before_sending(qbo: QboClient) -> None:
    one = [BatchOperation("b1", "create", Customer(display_name="A"))]
    with pytest.raises(ValueError, match="requestid"):
        await qbo.batch(one, requestid="x" * 37)
    many = [BatchOperation(f"b{n}", "create", Customer(display_name=str(n))) for n in range(31)]
    with pytest.raises(ValueError, match="30"):
        await qbo.batch(many, requestid="batch")
    with pytest.raises(ValueError, match="unique"):
        await qbo.batch(one + one, requestid="batch")
    with pytest.raises(ValueError, match="bId"):
        BatchOperation("b" * 11, "create", Customer(display_name="A"))
    with pytest.raises(ValueError, match="SyncToken"):
        BatchOperation("b1", "update", Customer(id="5", display_name="A"))


def cdc_body(invoices: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [{"Id": str(n), "SyncToken": "1"} for n in range(invoices)]
    rows.append(
        {
            "domain": "QBO",
            "status": "Deleted",
            "Id": "979",
            "MetaData": {"LastUpdatedTime": "2015-12-23T12:55:50-08:00"},
        }
    )
    return {
        "CDCResponse": [
            {
                "QueryResponse": [
                    {"Customer": [customer(63)], "startPosition": 1, "maxResults": 1},
                    {"Invoice": rows, "startPosition": 1, "maxResults": len(rows)},
                ]
            }
        ],
        "time": "2015-12-23T12:56:06.196-08:00",
    }


async def test_change_data_capture(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.get(f"{COMPANY}/cdc").respond(200, json=cdc_body(1))
    since = datetime(2026, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=-8)))
    result = await qbo.cdc([Invoice, Customer, Payment], since)
    assert params(route.calls.last.request) == {
        "minorversion": "75",
        "entities": "Invoice,Customer,Payment",
        "changedSince": "2026-01-10T00:00:00-08:00",
    }
    assert set(result.changes) == {"Customer", "Invoice"}
    assert isinstance(result.changes["Customer"][0], Customer)
    deleted = result.changes["Invoice"][-1]
    assert isinstance(deleted, Invoice)
    assert deleted.is_deleted
    assert deleted.id == "979"
    assert result.object_count == 3
    assert not result.truncated


async def test_change_data_capture_sends_whole_seconds_and_keeps_quickbooks_time(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """Intuit's reference writes changedSince with seconds and an offset, no fraction; the
    fraction is dropped downwards, so nothing changed in that second is missed."""
    route = intuit.get(f"{COMPANY}/cdc").respond(200, json=cdc_body(1))
    result = await qbo.cdc([Invoice], datetime(2026, 1, 10, 8, 30, 5, 999_999, tzinfo=UTC))
    assert params(route.calls.last.request)["changedSince"] == "2026-01-10T08:30:05+00:00"
    assert result.server_time == datetime(2015, 12, 23, 20, 56, 6, 196_000, tzinfo=UTC)


async def test_change_data_capture_says_when_it_hit_1000_objects(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    intuit.get(f"{COMPANY}/cdc").respond(200, json=cdc_body(998))
    result = await qbo.cdc([Invoice, Customer], datetime(2026, 1, 10, tzinfo=UTC))
    assert result.object_count == 1000
    assert result.truncated


async def test_change_data_capture_refuses_a_naive_time(qbo: QboClient) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        await qbo.cdc([Invoice], datetime(2026, 1, 10))  # noqa: DTZ001


async def test_a_401_forces_one_refresh_and_one_retry(
    intuit: respx.MockRouter, qbo: QboClient, tokens: FakeTokens
) -> None:
    route = intuit.get(f"{COMPANY}/customer/1").mock(
        side_effect=[
            httpx.Response(401, json=bodies.authentication_failed("AB01")),
            httpx.Response(200, json={"Customer": customer(1), "time": TIME}),
        ]
    )
    found = await qbo.get(Customer, "1")
    assert found.id == "1"
    assert tokens.forced == 1
    sent = [call.request.headers["authorization"] for call in route.calls]
    assert sent == [f"Bearer {ACCESS_TOKEN_1}", f"Bearer {ACCESS_TOKEN_2}"]


async def test_a_second_401_is_an_authentication_error(
    intuit: respx.MockRouter, qbo: QboClient, tokens: FakeTokens
) -> None:
    route = intuit.get(f"{COMPANY}/customer/1").respond(
        401, json=bodies.authentication_failed("AB01")
    )
    with pytest.raises(QboAuthenticationError) as caught:
        await qbo.get(Customer, "1")
    assert not caught.value.retryable
    assert tokens.forced == 1
    assert route.call_count == 2


def test_a_realm_id_cannot_escape_the_path(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="realm"):
        QboClient(
            http, make_config(), realm_id="../1", tokens=FakeTokens(), limiter=RecordingLimiter()
        )


async def test_query_stops_when_the_server_ignores_startposition(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """A page that is not the one asked for ends the query with an error, not an endless loop."""
    full_page = {
        "QueryResponse": {"Customer": [customer(n) for n in range(1, 4)], "startPosition": 1},
        "time": TIME,
    }
    route = intuit.get(f"{COMPANY}/query").respond(200, json=full_page)
    with pytest.raises(QboServerError, match="page"):
        [row async for row in qbo.query(Customer, page_size=3)]
    assert route.call_count == 2


async def test_query_stops_when_a_page_repeats_without_saying_where_it_starts(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    full_page = {"QueryResponse": {"Customer": [customer(n) for n in range(1, 4)]}, "time": TIME}
    route = intuit.get(f"{COMPANY}/query").respond(200, json=full_page)
    with pytest.raises(QboServerError, match="page"):
        [row async for row in qbo.query(Customer, page_size=3)]
    assert route.call_count == 2


@pytest.mark.parametrize(
    "body",
    [
        {"Invoice": {"Id": "1", "TotalAmt": "not money"}, "time": TIME},
        {"Invoice": {"Id": "1", "LinkedTxn": [{"TxnId": "5"}]}, "time": TIME},
        {"Invoice": {"Id": "1", "TotalAmt": "NaN"}, "time": TIME},
    ],
    ids=["bad-amount", "missing-required", "nan-amount"],
)
async def test_an_entity_that_does_not_fit_its_model_is_a_qbo_error(
    intuit: respx.MockRouter, qbo: QboClient, body: dict[str, Any]
) -> None:
    """One error hierarchy: never a bare pydantic ValidationError."""
    intuit.get(f"{COMPANY}/invoice/1").respond(200, json=body, headers={"intuit_tid": "tid-v"})
    with pytest.raises(QboServerError) as caught:
        await qbo.get(Invoice, "1")
    assert caught.value.intuit_tid == "tid-v"


async def test_a_query_row_or_cdc_row_that_does_not_fit_is_a_qbo_error(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    bad = {"Id": "1", "Balance": "lots"}
    intuit.get(f"{COMPANY}/query").respond(
        200, json={"QueryResponse": {"Customer": [bad], "startPosition": 1}, "time": TIME}
    )
    with pytest.raises(QboServerError):
        await qbo.query_all(Customer)
    intuit.get(f"{COMPANY}/cdc").respond(
        200, json={"CDCResponse": [{"QueryResponse": [{"Customer": [bad]}]}], "time": TIME}
    )
    with pytest.raises(QboServerError):
        await qbo.cdc([Customer], datetime(2026, 1, 10, tzinfo=UTC))


async def test_a_batch_item_with_an_empty_or_odd_fault_is_not_a_success(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    intuit.post(f"{COMPANY}/batch").respond(
        200,
        json={
            "BatchItemResponse": [
                {"bId": "b1", "Fault": {}},
                {"bId": "b2", "fault": {"error": [{"message": "Duplicate", "code": "6240"}]}},
                {"bId": "b3", "Customer": {"Id": "1", "Balance": "lots"}},
            ],
            "time": TIME,
        },
    )
    operations = [
        BatchOperation(f"b{n}", "create", Customer(display_name=str(n))) for n in (1, 2, 3)
    ]
    first, second, third = await qbo.batch(operations, requestid="batch-odd")
    assert isinstance(first.error, QboServerError)
    assert first.entity is None
    assert isinstance(second.error, QboDuplicateNameError)
    assert isinstance(third.error, QboServerError)
    assert [first.ok, second.ok, third.ok] == [False, False, False]


async def test_batch_queries_answer_rows_counts_or_their_own_fault(
    intuit: respx.MockRouter, qbo: QboClient, limiter: RecordingLimiter
) -> None:
    route = intuit.post(f"{COMPANY}/batch").respond(
        200,
        json={
            "BatchItemResponse": [
                {
                    "bId": "q1",
                    "QueryResponse": {
                        "CompanyInfo": [{"Id": "1", "CompanyName": "Acme Ltd"}],
                        "startPosition": 1,
                        "maxResults": 1,
                    },
                },
                {"bId": "q2", "QueryResponse": {"totalCount": 42}},
                {"bId": "q3", "Fault": {"type": "AuthorizationFault", **bodies.NOT_FOUND["Fault"]}},
                {"bId": "q4", "QueryResponse": {}},
                {"bId": "w1", "Customer": customer(7)},
            ],
            "time": TIME,
        },
    )
    items: list[BatchItem] = [
        BatchQuery("q1", "SELECT * FROM CompanyInfo"),
        BatchQuery("q2", "SELECT COUNT(*) FROM Customer"),
        BatchQuery("q3", "SELECT COUNT(*) FROM Vendor"),
        BatchQuery("q4", "SELECT * FROM Invoice WHERE Balance > '0' MAXRESULTS 10"),
        BatchOperation("w1", "create", Customer(display_name="Customer 7")),
    ]
    company, count, refused, empty, written = await qbo.batch(items, requestid="mixed-1")

    assert sent_json(route.calls.last.request)["BatchItemRequest"][:2] == [
        {"bId": "q1", "Query": "SELECT * FROM CompanyInfo"},
        {"bId": "q2", "Query": "SELECT COUNT(*) FROM Customer"},
    ]
    assert params(route.calls.last.request)["requestid"] == "mixed-1"
    assert isinstance(company.rows[0], CompanyInfo)
    assert company.rows[0].company_name == "Acme Ltd"
    assert company.total_count is None
    assert (count.ok, count.rows, count.total_count) == (True, (), 42)
    assert isinstance(refused.error, QboNotFoundError)
    assert (empty.ok, empty.rows, empty.total_count) == (True, (), None)
    assert isinstance(written.entity, Customer)
    assert limiter.slots == [(REALM, True)]


async def test_a_batch_of_queries_only_gets_a_fresh_requestid_each_time(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """A fixed id would make Intuit replay an old answer to a new read."""
    route = intuit.post(f"{COMPANY}/batch").respond(
        200, json={"BatchItemResponse": [{"bId": "q1", "QueryResponse": {"totalCount": 1}}]}
    )
    for _ in range(2):
        await qbo.batch([BatchQuery("q1", "SELECT COUNT(*) FROM Customer")])
    sent = [params(call.request)["requestid"] for call in route.calls]
    assert len(set(sent)) == 2
    assert all(len(requestid) <= 36 for requestid in sent)


async def test_a_batch_with_a_write_still_needs_the_callers_requestid(qbo: QboClient) -> None:
    items: list[BatchItem] = [
        BatchQuery("q1", "SELECT COUNT(*) FROM Customer"),
        BatchOperation("w1", "create", Customer(display_name="A")),
    ]
    with pytest.raises(ValueError, match="requestid"):
        await qbo.batch(items)
    with pytest.raises(ValueError, match="bId"):
        BatchQuery("q" * 11, "SELECT * FROM Customer")
    with pytest.raises(ValueError, match="statement"):
        BatchQuery("q1", " ")


async def test_an_odd_query_answer_in_a_batch_is_that_items_error(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    intuit.post(f"{COMPANY}/batch").respond(
        200,
        json={
            "BatchItemResponse": [
                {"bId": "q1"},
                {"bId": "q2", "QueryResponse": {"totalCount": "many"}},
                {"bId": "q3", "QueryResponse": {"Customer": ["not an object"]}},
                {"bId": "q4", "QueryResponse": {"Customer": [{"Id": "1", "Balance": "lots"}]}},
                {"bId": "q5", "QueryResponse": {"totalCount": 0}},
            ]
        },
    )
    items = [BatchQuery(f"q{n}", "SELECT * FROM Customer") for n in range(1, 6)]
    results = await qbo.batch(items)
    assert [type(result.error) for result in results[:4]] == [QboServerError] * 4
    assert results[4].ok
    assert results[4].total_count == 0


async def test_the_limiter_wait_bound_comes_from_the_config(
    intuit: respx.MockRouter, http: httpx.AsyncClient, limiter: RecordingLimiter
) -> None:
    intuit.get(f"{COMPANY}/customer/1").respond(200, json={"Customer": customer(1)})
    for bound in (None, 2.5):
        config = replace(make_config(), limiter_wait_seconds=bound)
        client = QboClient(http, config, realm_id=REALM, tokens=FakeTokens(), limiter=limiter)
        await client.get(Customer, "1")
    assert limiter.waits == [None, 2.5]
    with pytest.raises(ValueError, match="negative"):
        replace(make_config(), limiter_wait_seconds=-1)
