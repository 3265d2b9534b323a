"""`requestid`: the first answer for a company is replayed byte for byte, never re-executed."""

from __future__ import annotations

import httpx

from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import GB, US, Api, company_api, decode, first_error, sales_line

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


async def test_a_fault_is_replayed_byte_for_byte_even_after_its_cause_is_gone(us: Api) -> None:
    dated = {**BODY, "TxnDate": "2026-01-15"}
    await us.client.post(f"/_sim/companies/{US}/close-books", json={"date": "2026-01-31"})
    first = await us.post("Invoice", dated, requestid="closed-1")
    await us.client.post(f"/_sim/companies/{US}/close-books", json={"date": None})

    replayed = await us.post("Invoice", dated, requestid="closed-1")
    fresh = await us.post("Invoice", dated, requestid="closed-2")

    assert first_error(first)["code"] == "6210"
    assert (replayed.status_code, replayed.content) == (400, first.content)
    assert fresh.status_code == 200
    assert len(us.admin.documents(US, "Invoice")) == 1


async def test_answers_the_gateway_gives_are_not_remembered(us: Api) -> None:
    # A throttle or a server error never reached QuickBooks' books: the retry runs.
    us.admin.inject(FaultSpec(kind="throttle", method="POST", path="/invoice$"))
    us.admin.inject(FaultSpec(kind="error", status_code=503, method="POST", path="/invoice$"))

    throttled = await us.post("Invoice", BODY, requestid="edge-1")
    failed = await us.post("Invoice", BODY, requestid="edge-1")
    done = await us.post("Invoice", BODY, requestid="edge-1")
    again = await us.post("Invoice", BODY, requestid="edge-1")

    assert (throttled.status_code, failed.status_code) == (429, 503)
    assert done.status_code == 200
    assert again.content == done.content
    assert len(us.admin.documents(US, "Invoice")) == 1


async def test_forgotten_requestids_run_again_so_a_retry_duplicates_the_document(
    us: Api, gb: Api
) -> None:
    first = await us.post("Invoice", BODY, requestid="push-1")
    await us.post("Customer", {"DisplayName": "Remembered Ltd"}, requestid="push-2")

    forgotten = await us.client.post(f"/_sim/companies/{US}/forget-requestids")
    retried = await us.post("Invoice", BODY, requestid="push-1")

    assert forgotten.status_code == 200
    assert forgotten.json() == {"forgotten": 2}
    assert retried.status_code == 200
    assert decode(retried)["Invoice"]["Id"] != decode(first)["Invoice"]["Id"]
    assert len(us.admin.documents(US, "Invoice")) == 2
    assert us.admin.requestid_counts(US)["push-1"] == 2

    # A DocNumber of the client's own is what still catches the duplicate (GB numbers are the
    # caller's, so a repeat is 6140).
    gb_body = {
        "CustomerRef": {"value": "1"},
        "DocNumber": "PUSH-1",
        "GlobalTaxCalculation": "TaxExcluded",
        "Line": [sales_line("10", code="3")],
    }
    assert (await gb.post("Invoice", gb_body, requestid="gb-1")).status_code == 200
    await gb.client.post(f"/_sim/companies/{GB}/forget-requestids")
    duplicate = await gb.post("Invoice", gb_body, requestid="gb-1")
    assert first_error(duplicate)["code"] == "6140"
    assert len(gb.admin.documents(GB, "Invoice")) == 1


async def test_forgetting_is_per_company_and_needs_a_known_one(us: Api, gb: Api) -> None:
    await gb.post("Customer", {"DisplayName": "Kept Ltd"}, requestid="kept")

    mine = await us.client.post(f"/_sim/companies/{US}/forget-requestids")
    unknown = await us.client.post("/_sim/companies/1234/forget-requestids")
    replayed = await gb.post("Customer", {"DisplayName": "Kept Ltd"}, requestid="kept")

    assert mine.json() == {"forgotten": 0}
    assert first_error(unknown)["code"] == "610"
    assert replayed.status_code == 200
