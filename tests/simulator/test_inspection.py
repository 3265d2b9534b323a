"""What tests can inspect: requests per company and endpoint, token and revoke calls, documents."""

from __future__ import annotations

import httpx

from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import CLIENT, GB, US, Api, sales_line


async def test_requests_are_counted_per_company_and_endpoint(
    us: Api, gb: Api, client: httpx.AsyncClient
) -> None:
    created = await us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("5")]})
    await us.create("Invoice", {"Id": created["Id"], "SyncToken": "0"}, operation="delete")
    await us.query("select * from Invoice")
    await gb.query("select * from Invoice")

    stats = (await client.get("/_sim/stats")).json()

    assert stats["requests_by_realm"] == {US: 3, GB: 1}
    assert stats["requests_by_endpoint"] == {
        f"{US} POST invoice": 1,
        f"{US} POST invoice?operation=delete": 1,
        f"{US} GET query": 1,
        f"{GB} GET query": 1,
    }


async def test_token_and_revoke_calls_are_counted(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    tokens = state.tokens.connect(US)
    for _ in range(2):
        await client.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
            auth=CLIENT,
        )
    await client.post("/v2/oauth2/tokens/revoke", json={"token": tokens.access_token}, auth=CLIENT)

    stats = (await client.get("/_sim/stats")).json()

    assert stats["token_calls"] == {"refresh_token": 2}
    assert stats["revoke_calls"] == 1
    assert stats["requests_by_endpoint"]["POST /oauth2/v1/tokens/bearer"] == 2


async def test_documents_and_requestids_can_be_inspected(
    us: Api, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await us.post("Customer", {"DisplayName": "Inspected Ltd"}, requestid="same")

    documents = (await client.get(f"/_sim/companies/{US}/documents/Customer")).json()["Customer"]
    stats = (await client.get("/_sim/stats")).json()

    assert [d["DisplayName"] for d in documents].count("Inspected Ltd") == 1
    assert "Kookies by Kathy (deleted)" in [d["DisplayName"] for d in documents]
    assert stats["requestids"] == {US: {"same": 3}}
    assert us.admin.requestid_counts(US) == {"same": 3}
