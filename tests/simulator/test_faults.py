"""Injected faults over real HTTP: 5xx, 429, slow answers, a reset after commit, token endpoint."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.jsonio import dumps
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.simulator.conftest import CLIENT, US, Api, company_api, decode, first_error, sales_line

INVOICE = {"CustomerRef": {"value": "1"}, "Line": [sales_line("42.00")]}


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    async with running_simulator() as handle:
        yield handle


@pytest.fixture
async def us(sim: SimulatorHandle) -> AsyncIterator[Api]:
    async with company_api(httpx.AsyncHTTPTransport(), sim.state, US, sim.base_url) as api:
        yield api


async def test_a_reset_after_commit_loses_the_answer_but_keeps_the_invoice(
    sim: SimulatorHandle, us: Api
) -> None:
    sim.admin.inject(FaultSpec(kind="reset", method="POST", path=r"/invoice$"))

    with pytest.raises(httpx.TransportError):
        await us.post("Invoice", INVOICE, requestid="push-1")

    [stored] = (await us.query("SELECT * FROM Invoice"))["Invoice"]
    assert stored["TotalAmt"] > 0
    retried = await us.post("Invoice", INVOICE, requestid="push-1")
    again = await us.post("Invoice", {**INVOICE, "PrivateNote": "changed"}, requestid="push-1")
    assert retried.status_code == again.status_code == 200
    assert again.content == retried.content
    assert decode(retried)["Invoice"] == stored
    assert len(sim.admin.documents(US, "Invoice")) == 1
    assert sim.admin.requestid_counts(US) == {"push-1": 3}


async def test_a_reset_without_requestid_leaves_a_retry_to_duplicate_the_invoice(
    sim: SimulatorHandle, us: Api
) -> None:
    sim.admin.inject(FaultSpec(kind="reset", method="POST", path=r"/invoice$"))

    with pytest.raises(httpx.TransportError):
        await us.post("Invoice", INVOICE)
    retried = await us.post("Invoice", INVOICE)

    assert retried.status_code == 200
    assert len(sim.admin.documents(US, "Invoice")) == 2


async def test_a_reset_batch_is_done_and_replayed_by_its_requestid(
    sim: SimulatorHandle, us: Api
) -> None:
    items = [
        {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Reset Co"}},
        {"bId": "i", "operation": "create", "Invoice": INVOICE},
        {"bId": "bad", "operation": "create", "Customer": {"DisplayName": "Cool Cars"}},
    ]
    body = {"BatchItemRequest": items}
    sim.admin.inject(FaultSpec(kind="reset", method="POST", path=r"/batch$"))

    with pytest.raises(httpx.TransportError):
        await us.client.post(us.url("batch"), content=dumps(body), params={"requestid": "batch-r1"})
    # The work was done before the connection dropped.
    customers = [c["DisplayName"] for c in sim.admin.documents(US, "Customer")]
    assert customers.count("Reset Co") == 1
    [invoice] = sim.admin.documents(US, "Invoice")
    retried = await us.client.post(
        us.url("batch"), content=dumps(body), params={"requestid": "batch-r1"}
    )

    assert retried.status_code == 200
    results = {item["bId"]: item for item in decode(retried)["BatchItemResponse"]}
    assert results["c"]["Customer"]["DisplayName"] == "Reset Co"
    assert results["i"]["Invoice"] == invoice
    assert results["bad"]["Fault"]["Error"][0]["code"] == "6240"
    assert [c["DisplayName"] for c in sim.admin.documents(US, "Customer")] == customers
    assert sim.admin.documents(US, "Invoice") == [invoice]
    assert sim.admin.requestid_counts(US) == {"batch-r1": 2}


async def test_the_next_calls_fail_with_a_server_error(sim: SimulatorHandle, us: Api) -> None:
    sim.admin.inject(
        FaultSpec(kind="error", times=2, status_code=503, method="POST", path="invoice")
    )

    read = await us.client.get(us.url("companyinfo/" + US))
    failures = [await us.post("Invoice", INVOICE) for _ in range(2)]
    success = await us.post("Invoice", INVOICE)

    assert read.status_code == 200
    assert [response.status_code for response in failures] == [503, 503]
    assert decode(failures[0])["Fault"]["type"] == "SystemFault"
    assert first_error(failures[0])["code"] == "10000"
    assert success.status_code == 200
    assert len(sim.admin.documents(US, "Invoice")) == 1


async def test_an_injected_throttle(sim: SimulatorHandle, us: Api) -> None:
    sim.admin.inject(FaultSpec(kind="throttle"))

    throttled = await us.client.get(us.url("query"), params={"query": "select * from Item"})

    assert throttled.status_code == 429
    assert 'code="3001"' in throttled.text
    assert (await us.client.get(us.url("query"), params={"query": "select * from Item"})).is_success


async def test_a_slow_answer(sim: SimulatorHandle, us: Api) -> None:
    sim.admin.inject(FaultSpec(kind="delay", delay_seconds=0.3, times=2, path="query"))

    with pytest.raises(httpx.ReadTimeout):
        await us.client.get(us.url("query"), params={"query": "select * from Item"}, timeout=0.1)
    started = time.monotonic()
    response = await us.client.get(us.url("query"), params={"query": "select * from Item"})

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_the_token_endpoint_fails_or_stalls_on_demand(sim: SimulatorHandle) -> None:
    tokens = sim.admin.connect(US)
    data = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    sim.admin.inject(FaultSpec(kind="error", status_code=502, path="tokens/bearer"))
    sim.admin.inject(FaultSpec(kind="delay", delay_seconds=5, path="tokens/bearer"))
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        failed = await http.post("/oauth2/v1/tokens/bearer", data=data, auth=CLIENT)
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/oauth2/v1/tokens/bearer", data=data, auth=CLIENT, timeout=0.2)

    assert failed.status_code == 502
    assert sim.admin.refresh_calls == 0


async def test_faults_through_the_admin_api(sim: SimulatorHandle, us: Api) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        created = await http.post(
            "/_sim/faults",
            json={"kind": "error", "status_code": 500, "times": 3, "path": "companyinfo"},
        )
        bad_path = await http.post("/_sim/faults", json={"kind": "error", "path": "invoice("})
        listed = (await http.get("/_sim/faults")).json()
        first = await us.client.get(us.url("companyinfo/" + US))
        await http.delete("/_sim/faults")
        unaffected = await us.client.get(us.url("preferences"))
        after_clear = await us.client.get(us.url("companyinfo/" + US))

    assert created.status_code == 200
    assert bad_path.status_code == 422
    assert unaffected.status_code == 200
    assert listed[0]["remaining"] == 3
    assert listed[0]["path"] == "companyinfo"
    assert first.status_code == 500
    assert after_clear.status_code == 200
