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


async def test_a_person_deletes_an_invoice_unless_payments_are_applied(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    ledger = state.ledger(US)
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("100")]}
    paid, plain = (ledger.create("Invoice", WriteRequest(body)) for _ in range(2))
    await client.post(
        f"/_sim/companies/{US}/payments", json={"invoice_id": paid["Id"], "amount": "5"}
    )

    refused = await client.delete(f"/_sim/companies/{US}/invoices/{paid['Id']}")
    deleted = await client.delete(f"/_sim/companies/{US}/invoices/{plain['Id']}")

    assert refused.status_code == 400
    assert refused.json()["Fault"]["Error"][0]["code"] == "6000"
    assert "has payments applied" in refused.json()["Fault"]["Error"][0]["Detail"]
    assert state.companies[US].get("Invoice", paid["Id"]) is not None
    assert deleted.json() == {"Invoice": {"status": "Deleted", "domain": "QBO", "Id": plain["Id"]}}
    assert state.companies[US].get("Invoice", plain["Id"]) is None


async def test_a_person_edits_and_voids_a_payment(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    invoice = state.ledger(US).create(
        "Invoice", WriteRequest({"CustomerRef": {"value": "1"}, "Line": [sales_line("100")]})
    )
    paid = decode(
        await client.post(
            f"/_sim/companies/{US}/payments", json={"invoice_id": invoice["Id"], "amount": "40"}
        )
    )["Payment"]

    edited = await client.patch(
        f"/_sim/companies/{US}/payments/{paid['Id']}", json={"PrivateNote": "cheque 12"}
    )
    voided = await client.post(f"/_sim/companies/{US}/payments/{paid['Id']}/void")
    after = state.companies[US].get("Invoice", invoice["Id"])

    assert edited.json()["Payment"]["PrivateNote"] == "cheque 12"
    assert decode(voided)["Payment"]["TotalAmt"] == Decimal("0.00")
    assert decode(voided)["Payment"]["SyncToken"] == "2"
    assert after is not None
    assert after["Balance"] == invoice["TotalAmt"]


async def test_a_person_makes_list_records_inactive(client: httpx.AsyncClient) -> None:
    made = {
        entity: await client.post(f"/_sim/companies/{US}/documents/{entity}/{object_id}/deactivate")
        for entity, object_id in (
            ("Customer", "3"),
            ("Vendor", "1"),
            ("Item", "1"),
            ("Account", "3"),
        )
    }
    not_a_list = await client.post(f"/_sim/companies/{US}/documents/Invoice/1/deactivate")
    unknown = await client.post(f"/_sim/companies/{US}/documents/Customer/999/deactivate")

    for entity, response in made.items():
        assert response.status_code == 200, response.text
        assert response.json()[entity]["Active"] is False
    assert made["Customer"].json()["Customer"]["DisplayName"] == "Cool Cars (deleted)"
    assert not_a_list.status_code == 400
    assert not_a_list.json()["Fault"]["Error"][0]["code"] == "500"
    assert unknown.json()["Fault"]["Error"][0]["code"] == "610"
