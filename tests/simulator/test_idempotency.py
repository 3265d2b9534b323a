"""`requestid`: the first answer for a company is replayed byte for byte, never re-executed."""

from __future__ import annotations

import httpx

from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import GB, US, Api, company_api, sales_line

BODY = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}


async def test_a_repeated_requestid_replays_the_first_response(us: Api) -> None:
    first = await us.post("Invoice", BODY, requestid="req-1")
    state_after_first = us.admin.documents(US, "Invoice")

    second = await us.post("Invoice", {**BODY, "PrivateNote": "different"}, requestid="req-1")

    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    assert us.admin.documents(US, "Invoice") == state_after_first
    assert us.admin.requestid_counts(US) == {"req-1": 2}


async def test_a_failed_first_answer_is_replayed_too(us: Api) -> None:
    first = await us.post("Invoice", {"Line": []}, requestid="req-2")

    second = await us.post("Invoice", BODY, requestid="req-2")

    assert first.status_code == second.status_code == 400
    assert second.content == first.content
    assert us.admin.documents(US, "Invoice") == []


async def test_requestids_are_per_company(
    us: Api, transport: httpx.ASGITransport, state: SimulatorState
) -> None:
    await us.post("Customer", {"DisplayName": "Same Id Ltd"}, requestid="shared")
    async with company_api(transport, state, GB, "http://qbo.test") as gb:
        response = await gb.post("Customer", {"DisplayName": "Same Id Ltd"}, requestid="shared")

    assert response.status_code == 200
    assert [c["DisplayName"] for c in gb.admin.documents(GB, "Customer")].count("Same Id Ltd") == 1


async def test_batches_replay_as_well(us: Api) -> None:
    items = {
        "BatchItemRequest": [{"bId": "1", "operation": "create", "Vendor": {"DisplayName": "V"}}]
    }
    first = await us.client.post(us.url("batch"), json=items, params={"requestid": "batch-1"})

    second = await us.client.post(us.url("batch"), json=items, params={"requestid": "batch-1"})

    assert second.content == first.content
    assert "Fault" not in second.text
    vendors = [v["DisplayName"] for v in us.admin.documents(US, "Vendor")]
    assert vendors.count("V") == 1
