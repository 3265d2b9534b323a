"""Concurrent requests over real HTTP: every check-then-write is atomic, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from qbsync.simulator import LimitsConfig, SimulatorConfig
from qbsync.simulator.testing import running_simulator
from tests.simulator.conftest import US, Api, company_api, decode, first_error, sales_line

CALLS = 10


@pytest.fixture
async def us() -> AsyncIterator[Api]:
    config = SimulatorConfig(limits=LimitsConfig(enabled=False))
    async with (
        running_simulator(config) as sim,
        company_api(httpx.AsyncHTTPTransport(), sim.state, US, sim.base_url) as api,
    ):
        yield api


async def test_one_sync_token_lets_exactly_one_of_many_concurrent_updates_through(
    us: Api,
) -> None:
    customer = await us.create("Customer", {"DisplayName": "Contended Ltd"})
    body = {"Id": customer["Id"], "SyncToken": "0", "sparse": True}

    responses = await asyncio.gather(
        *(us.post("Customer", {**body, "Notes": f"writer {n}"}) for n in range(CALLS))
    )

    [winner] = [response for response in responses if response.status_code == 200]
    losers = [first_error(r)["code"] for r in responses if r is not winner]
    assert losers == ["5010"] * (CALLS - 1)
    stored = await us.read("Customer", customer["Id"])
    assert stored["SyncToken"] == "1"
    assert stored["Notes"] == decode(winner)["Customer"]["Notes"]


async def test_concurrent_creates_with_one_requestid_make_one_object(us: Api) -> None:
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}

    responses = await asyncio.gather(
        *(us.post("Invoice", body, requestid="same-push") for _ in range(CALLS))
    )

    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert len(us.admin.documents(US, "Invoice")) == 1
    assert us.admin.requestid_counts(US) == {"same-push": CALLS}


async def test_concurrent_payments_never_take_an_invoice_below_zero(us: Api) -> None:
    invoice = await us.create(
        "Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("100", code="NON")]}
    )
    line = {"Amount": Decimal(60), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
    body = {"CustomerRef": {"value": "1"}, "TotalAmt": Decimal(60), "Line": [line]}

    responses = await asyncio.gather(*(us.post("Payment", body) for _ in range(CALLS)))

    assert sorted(response.status_code for response in responses) == [200] + [400] * (CALLS - 1)
    assert (await us.read("Invoice", invoice["Id"]))["Balance"] == Decimal("40.00")


async def test_concurrent_creates_of_one_name_make_one_record(us: Api) -> None:
    responses = await asyncio.gather(
        *(
            us.post("Vendor" if n % 2 else "Customer", {"DisplayName": "Racing Ltd"})
            for n in range(CALLS)
        )
    )

    assert sorted(response.status_code for response in responses) == [200] + [400] * (CALLS - 1)
    assert {first_error(r)["code"] for r in responses if r.status_code == 400} == {"6240"}
