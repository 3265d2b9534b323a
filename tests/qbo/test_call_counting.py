"""Every call to the Accounting API is reported as Intuit meters it (P7): reads, queries, CDC and
batches holding a query are CorePlus; writes are Core. Retried and re-sent calls count too."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import httpx
import respx

from qbsync.qbo import ApiCall, BatchOperation, BatchQuery, Customer, QboClient
from tests.qbo.conftest import COMPANY, REALM, FakeTokens, RecordingLimiter, make_config


def _client(http: httpx.AsyncClient, seen: list[ApiCall]) -> QboClient:
    config = replace(make_config(), call_observer=seen.append)
    return QboClient(http, config, realm_id=REALM, tokens=FakeTokens(), limiter=RecordingLimiter())


async def test_reads_are_metered_and_writes_are_not() -> None:
    seen: list[ApiCall] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{COMPANY}/customer/1").respond(json={"Customer": {"Id": "1"}})
        mock.get(f"{COMPANY}/query").respond(json={"QueryResponse": {}})
        mock.get(f"{COMPANY}/cdc").respond(json={"CDCResponse": []})
        mock.post(f"{COMPANY}/customer").respond(json={"Customer": {"Id": "2"}})
        mock.post(f"{COMPANY}/batch").respond(
            json={"BatchItemResponse": [{"bId": "a", "Customer": {"Id": "3"}}]}
        )
        async with httpx.AsyncClient() as http:
            qbo = _client(http, seen)
            await qbo.get(Customer, "1")
            await qbo.query_all(Customer)
            await qbo.cdc([Customer], datetime(2026, 11, 1, tzinfo=UTC))
            await qbo.create(Customer(display_name="A"), requestid="r1")
            await qbo.batch(
                [BatchOperation("a", "create", Customer(display_name="B"))], requestid="r2"
            )
            mock.post(f"{COMPANY}/batch").respond(
                json={"BatchItemResponse": [{"bId": "q", "QueryResponse": {}}]}
            )
            await qbo.batch([BatchQuery("q", "SELECT * FROM Customer")])
    assert [(call.operation, call.metered) for call in seen] == [
        ("GET customer", True),
        ("GET query", True),
        ("GET cdc", True),
        ("POST customer", False),
        ("POST batch", False),
        ("POST batch", True),
    ]


async def test_a_retried_call_counts_each_time_it_was_answered() -> None:
    seen: list[ApiCall] = []
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/customer/1").mock(
            side_effect=[
                httpx.Response(503, json={"Fault": {"Error": [{"code": "10000"}]}}),
                httpx.Response(200, json={"Customer": {"Id": "1"}}),
            ]
        )
        async with httpx.AsyncClient() as http:
            await _client(http, seen).get(Customer, "1")
    assert len(seen) == 2
