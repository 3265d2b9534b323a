"""The /_sim admin API: companies, direct connection, a person's edits, the clock, errors."""

from __future__ import annotations

from decimal import Decimal

import httpx

from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import GB, US, decode, sales_line


async def test_companies_are_listed_with_their_connection(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    state.tokens.connect(GB)

    companies = (await client.get("/_sim/companies")).json()

    assert [(c["country"], c["connected"]) for c in companies] == [
        ("US", False),
        ("GB", True),
        ("US", False),
    ]


async def test_connect_issues_working_tokens_without_counting_token_calls(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    tokens = (await client.post(f"/_sim/companies/{US}/connect")).json()

    response = await client.get(
        f"/v3/company/{US}/preferences",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )

    assert response.status_code == 200
    assert tokens["x_refresh_token_hard_expires_in"] > 0
    assert state.stats.token_calls == {}


async def test_a_person_records_edits_and_deletes_in_quickbooks(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    invoice = state.ledger(US).create(
        "Invoice", WriteRequest({"CustomerRef": {"value": "1"}, "Line": [sales_line("100")]})
    )

    paid = decode(
        await client.post(
            f"/_sim/companies/{US}/payments",
            json={"invoice_id": invoice["Id"], "amount": "25.50", "txn_date": "2026-02-01"},
        )
    )["Payment"]
    after_payment = state.companies[US].get("Invoice", invoice["Id"])
    deleted = (await client.delete(f"/_sim/companies/{US}/payments/{paid['Id']}")).json()
    after_delete = state.companies[US].get("Invoice", invoice["Id"])

    assert paid["TotalAmt"] == Decimal("25.50")
    assert paid["TxnDate"] == "2026-02-01"
    assert after_payment is not None
    assert after_payment["Balance"] == invoice["TotalAmt"] - Decimal("25.50")
    assert deleted["Payment"]["status"] == "Deleted"
    assert after_delete is not None
    assert after_delete["Balance"] == invoice["TotalAmt"]


async def test_admin_errors_are_faults(client: httpx.AsyncClient) -> None:
    unknown_invoice = await client.post(
        f"/_sim/companies/{US}/payments", json={"invoice_id": "999", "amount": "1"}
    )
    unknown_company = await client.get("/_sim/companies/1/documents/Invoice")
    bad_consent = await client.post(
        "/_sim/authorize", json={"realm_id": US, "redirect_uri": "x", "client_id": "other"}
    )

    unknown_connect = await client.post("/_sim/companies/1234/connect")

    assert unknown_connect.status_code == 400
    assert unknown_connect.json()["Fault"]["Error"][0]["code"] == "610"
    assert unknown_invoice.status_code == 400
    assert unknown_invoice.json()["Fault"]["Error"][0]["code"] == "610"
    assert unknown_company.status_code == 400
    assert bad_consent.status_code == 400


async def test_the_clock_moves_forward_on_demand(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    before = state.clock.timestamp()

    response = await client.post("/_sim/clock/advance", json={"seconds": 86_400})

    assert response.status_code == 200
    assert state.clock.timestamp() - before >= 86_400
