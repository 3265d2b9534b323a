"""Mappings over HTTP against the simulator's US and UK companies: each kind, each refusal."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from qbsync.db import Database
from qbsync.models import Connection, EntityMapping
from qbsync.simulator.faults import FaultSpec
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import UK_REALM, US_REALM, Consent
from tests.mappings.conftest import Org, fields, problem


async def test_a_client_maps_to_a_customer_with_its_name_and_source(us: Org) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    response = await us.put("mappings/clients/cl_1", {"qbo_id": customer})
    assert response.status_code == 200, response.text
    mapping = response.json()
    assert mapping["qbo_id"] == customer
    assert mapping["qbo_name"] == "Cool Cars"
    assert mapping["source"] == "manual"
    assert mapping["kind"] == "clients"
    listed = (await us.get("mappings/clients")).json()
    assert [item["platform_id"] for item in listed["items"]] == ["cl_1"]
    assert listed["next_cursor"] is None


async def test_mappings_are_paged_with_an_opaque_cursor(us: Org) -> None:
    names = ["Amy's Bird Sanctuary", "Bill's Windsurf Shop", "Cool Cars", "Red Rock Diner"]
    for number, name in enumerate(names):
        saved = await us.put(
            f"mappings/clients/cl_{number}", {"qbo_id": us.qbo_id("Customer", name)}
        )
        assert saved.status_code == 200, saved.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await us.get("mappings/clients", **params)).json()
        seen += [item["platform_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["cl_0", "cl_1", "cl_2", "cl_3"]
    problem(await us.get("mappings/clients", cursor="not-ours"), 422, "invalid_cursor")


async def test_a_customer_the_company_does_not_have_is_refused(us: Org) -> None:
    body = problem(
        await us.put("mappings/clients/cl_1", {"qbo_id": "9999"}), 422, "qbo_reference_not_found"
    )
    assert fields(body) == ["qbo_id"]


async def test_an_inactive_customer_is_refused_saying_so(us: Org) -> None:
    inactive = us.qbo_id("Customer", "Kookies by Kathy (deleted)")
    body = problem(
        await us.put("mappings/clients/cl_1", {"qbo_id": inactive}), 422, "qbo_reference_wrong_type"
    )
    assert "inactive" in body["detail"]
    assert fields(body) == ["qbo_id"]


async def test_a_customer_mapped_to_another_client_is_refused(us: Org) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    assert (await us.put("mappings/clients/cl_1", {"qbo_id": customer})).status_code == 200
    body = problem(
        await us.put("mappings/clients/cl_2", {"qbo_id": customer}), 409, "qbo_reference_taken"
    )
    assert body["mapped_to"] == "cl_1"
    # The same client may be mapped again to the same customer (an idempotent PUT).
    assert (await us.put("mappings/clients/cl_1", {"qbo_id": customer})).status_code == 200


async def test_two_clients_racing_for_one_customer_link_one(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """Two PUTs at once on a real pool: the partial unique index decides, one 200 and one 409."""
    org_id = f"{prefix}race"
    live_consent = Consent(live.client, consent.simulator, consent.make_token)
    await live_consent.connect(org_id, US_REALM)
    token = consent.make_token(org_id)
    customer = str(
        next(
            row["Id"]
            for row in consent.simulator.state.company(US_REALM).objects["Customer"].values()
            if row["DisplayName"] == "Cool Cars"
        )
    )

    async def put(client_id: str) -> tuple[int, Any]:
        response = await live.client.put(
            f"/v1/quickbooks/mappings/clients/{client_id}",
            json={"qbo_id": customer},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        return response.status_code, body["platform_id"] if response.status_code == 200 else body

    # Hold the connection row so that all four requests, their checks done, wait at the same
    # point and then check and insert at once: the race the partial unique index must decide.
    async with live.db.sessions() as holder, holder.begin():
        await holder.execute(
            select(Connection.id).where(Connection.org_id == org_id).with_for_update()
        )
        racing = [asyncio.create_task(put(f"cl_{n}")) for n in range(4)]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in racing)
    answers = await asyncio.gather(*racing)
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409]
    winner = next(client for status, client in answers if status == 200)
    # The losers are told which client holds the customer, races included.
    assert {body.get("mapped_to") for status, body in answers if status == 409} == {winner}
    async with live.db.sessions() as session:
        linked = await session.scalar(
            select(func.count())
            .select_from(EntityMapping)
            .where(EntityMapping.org_id == org_id, EntityMapping.qbo_id == customer)
        )
    assert linked == 1


async def test_services_map_to_service_and_non_inventory_items(us: Org) -> None:
    for service, item in (("svc_design", "Design"), ("svc_supplies", "Gardening Supplies")):
        response = await us.put(f"mappings/services/{service}", {"qbo_id": us.qbo_id("Item", item)})
        assert response.status_code == 200, response.text
        assert response.json()["qbo_name"] == item


async def test_an_item_of_another_type_or_inactive_is_refused(us: Org) -> None:
    company = us.simulator.state.company(US_REALM)
    company.insert("Item", {"Name": "Pumps", "Type": "Inventory", "Active": True}, 0.0, "900")
    hours = us.qbo_id("Item", "Hours")
    us.in_quickbooks("Item", {"Id": hours, "Active": False})
    body = problem(
        await us.put("mappings/services/svc_1", {"qbo_id": "900"}), 422, "qbo_reference_wrong_type"
    )
    assert "Inventory" in body["detail"]
    body = problem(
        await us.put("mappings/services/svc_1", {"qbo_id": hours}), 422, "qbo_reference_wrong_type"
    )
    assert "inactive" in body["detail"]


async def test_a_record_made_in_quickbooks_minutes_ago_can_be_mapped(us: Org) -> None:
    """The cached customer list predates it: a doubt costs one read, never a false refusal."""
    first = await us.put("mappings/clients/cl_1", {"qbo_id": us.qbo_id("Customer", "Cool Cars")})
    assert first.status_code == 200
    assert (await us.get("customers")).status_code == 200  # the list is cached now
    created = us.in_quickbooks("Customer", {"DisplayName": "Brand New Ltd"})
    before = us.calls()
    response = await us.put("mappings/clients/cl_2", {"qbo_id": created["Id"]})
    assert response.status_code == 200, response.text
    assert response.json()["qbo_name"] == "Brand New Ltd"
    assert us.calls() - before == 1
    listed = await us.get("customers", q="brand new")
    assert [row["id"] for row in listed.json()["items"]] == [created["Id"]]


async def test_a_us_tax_rate_maps_to_taxable_or_not(us: Org) -> None:
    for platform_id, code in (("tr_sales", "TAX"), ("tr_exempt", "NON")):
        response = await us.put(f"mappings/tax-rates/{platform_id}", {"qbo_id": code})
        assert response.status_code == 200, response.text
        assert response.json()["qbo_id"] == code
    body = problem(
        await us.put("mappings/tax-rates/tr_1", {"qbo_id": "2"}), 422, "qbo_reference_wrong_type"
    )
    assert "TAX" in body["detail"]


async def test_a_uk_tax_rate_maps_to_the_code_whose_sales_rate_matches(uk: Org) -> None:
    response = await uk.put("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"})
    assert response.status_code == 200, response.text
    mapping = response.json()
    assert mapping["qbo_name"] == "20.0% S"
    assert mapping["details"]["sales_percent"] == "20"
    zero = await uk.put("mappings/tax-rates/tr_zero", {"qbo_id": "5", "rate": "0"})
    assert zero.status_code == 200, zero.text


async def test_a_uk_tax_rate_with_another_percentage_is_refused(uk: Org) -> None:
    body = problem(
        await uk.put("mappings/tax-rates/tr_vat5", {"qbo_id": "3", "rate": "5.00"}),
        422,
        "tax_rate_mismatch",
    )
    assert fields(body) == ["rate"]
    assert "20 %" in body["detail"]
    assert "5 %" in body["detail"]
    assert (await uk.get("mappings/tax-rates")).json()["items"] == []


async def test_a_uk_tax_rate_needs_its_rate_and_a_real_code(uk: Org) -> None:
    assert fields(
        problem(await uk.put("mappings/tax-rates/tr_1", {"qbo_id": "3"}), 422, "missing")
    ) == ["rate"]
    problem(
        await uk.put("mappings/tax-rates/tr_1", {"qbo_id": "TAX", "rate": "20"}),
        422,
        "qbo_reference_not_found",
    )
    problem(
        await uk.put("mappings/tax-rates/tr_1", {"qbo_id": "3", "rate": "20%"}),
        422,
        "validation_error",
    )


async def test_an_expense_category_maps_by_id_or_by_account_number(uk: Org) -> None:
    travel = uk.qbo_id("Account", "Travel")
    by_id = await uk.put("mappings/expense-categories/travel", {"qbo_id": travel})
    assert by_id.status_code == 200, by_id.text
    numbered = uk.in_quickbooks(
        "Account", {"Name": "Software", "AccountType": "Expense", "AcctNum": "6100"}
    )
    by_number = await uk.put("mappings/expense-categories/software", {"account_number": "6100"})
    assert by_number.status_code == 200, by_number.text
    assert by_number.json()["qbo_id"] == numbered["Id"]
    assert by_number.json()["details"] == {"account_number": "6100"}
    cogs = uk.in_quickbooks(
        "Account", {"Name": "Subcontractors", "AccountType": "Cost of Goods Sold"}
    )
    assert (
        await uk.put("mappings/expense-categories/subs", {"qbo_id": cogs["Id"]})
    ).status_code == 200


async def test_an_expense_category_refuses_other_accounts_and_numbers(uk: Org) -> None:
    income = uk.qbo_id("Account", "Consulting Income")
    body = problem(
        await uk.put("mappings/expense-categories/x", {"qbo_id": income}),
        422,
        "qbo_reference_wrong_type",
    )
    assert "an Income account" in body["detail"]
    unknown = problem(
        await uk.put("mappings/expense-categories/x", {"account_number": "4242"}),
        422,
        "qbo_reference_not_found",
    )
    assert fields(unknown) == ["account_number"]
    both = await uk.put("mappings/expense-categories/x", {"qbo_id": income, "account_number": "1"})
    assert both.status_code == 422
    neither = await uk.put("mappings/expense-categories/x", {})
    assert neither.status_code == 422


async def test_fields_of_another_kind_are_refused(us: Org) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    body = problem(
        await us.put("mappings/clients/cl_1", {"qbo_id": customer, "rate": "20"}),
        422,
        "field_not_allowed",
    )
    assert fields(body) == ["rate"]
    problem(
        await us.put("mappings/clients/cl_1", {"qbo_id": customer, "extra": 1}),
        422,
        "validation_error",
    )
    widget = problem(
        await us.put("mappings/widgets/cl_1", {"qbo_id": customer}), 422, "validation_error"
    )
    assert fields(widget) == ["kind"]
    long_id = problem(
        await us.put("mappings/clients/" + "x" * 129, {"qbo_id": customer}), 422, "validation_error"
    )
    assert fields(long_id) == ["platform_id"]
    leading_zero = await us.put("mappings/clients/cl_1", {"qbo_id": "0" + customer})
    assert fields(problem(leading_zero, 422, "validation_error")) == ["qbo_id"]
    flag = await us.put("mappings/clients/cl_1", {"qbo_id": "TAX"})
    assert fields(problem(flag, 422, "qbo_reference_not_found")) == ["qbo_id"]


async def test_a_mapping_is_deleted_once(us: Org) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    await us.put("mappings/clients/cl_1", {"qbo_id": customer})
    deleted = await us.delete("mappings/clients/cl_1")
    assert deleted.status_code == 204
    problem(await us.delete("mappings/clients/cl_1"), 404, "mapping_not_found")
    # Freed, the customer can stand for another client.
    assert (await us.put("mappings/clients/cl_2", {"qbo_id": customer})).status_code == 200


async def test_mapping_needs_a_connection(org: Org) -> None:
    problem(await org.put("mappings/clients/cl_1", {"qbo_id": "1"}), 409, "not_connected")
    listed = await org.get("mappings/clients")
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_a_reconnect_to_the_same_company_keeps_mappings_and_settings(
    us: Org, consent: Consent, db: Database
) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    await us.put("mappings/clients/cl_1", {"qbo_id": customer})
    settings = {
        "default_income_account_id": us.qbo_id("Account", "Services"),
        "invoice_auto_push": True,
    }
    assert (await us.put("settings", settings)).status_code == 200
    assert (await us.delete("connection")).status_code == 200
    await consent.connect("org_1", US_REALM)
    assert [m["qbo_id"] for m in (await us.get("mappings/clients")).json()["items"]] == [customer]
    kept = (await us.get("settings")).json()
    assert kept["default_income_account_id"] == settings["default_income_account_id"]
    assert kept["invoice_auto_push"] is True


async def test_another_company_starts_clean_and_coming_back_restores(
    us: Org, consent: Consent
) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    await us.put("mappings/clients/cl_1", {"qbo_id": customer})
    await us.put("mappings/tax-rates/tr_1", {"qbo_id": "TAX"})
    await us.put(
        "settings",
        {
            "default_income_account_id": us.qbo_id("Account", "Services"),
            "ap_account_id": us.qbo_id("Account", "Accounts Payable (A/P)"),
            "invoice_auto_push": True,
            "reconcile_interval_minutes": 20,
        },
    )
    await consent.connect("org_1", UK_REALM)
    assert (await us.get("mappings/clients")).json()["items"] == []
    assert (await us.get("mappings/tax-rates")).json()["items"] == []
    switched = (await us.get("settings")).json()
    assert switched["default_income_account_id"] is None
    assert switched["ap_account_id"] is None
    # Automatic push waits until the new company's mappings are checked.
    assert switched["invoice_auto_push"] is False
    assert switched["reconcile_interval_minutes"] == 20
    await consent.connect("org_1", US_REALM)
    back = (await us.get("mappings/clients")).json()["items"]
    assert [(m["platform_id"], m["qbo_id"]) for m in back] == [("cl_1", customer)]


@pytest.mark.parametrize("kind", ["clients", "services", "tax-rates", "expense-categories"])
async def test_another_org_sees_none_of_the_mappings(
    us: Org, kind: str, make_token: TokenFactory
) -> None:
    """S1: org_1's mappings are invisible to org_2, and org_2 can't delete them."""
    await us.put("mappings/clients/cl_1", {"qbo_id": us.qbo_id("Customer", "Cool Cars")})
    await us.put("mappings/tax-rates/tr_1", {"qbo_id": "TAX"})
    other = bearer(make_token("org_2"))
    listed = await us.client.get(f"/v1/quickbooks/mappings/{kind}", headers=other)
    assert listed.json() == {"items": [], "next_cursor": None}
    for path in ("clients/cl_1", "tax-rates/tr_1"):
        gone = await us.client.delete(f"/v1/quickbooks/mappings/{path}", headers=other)
        problem(gone, 404, "mapping_not_found")
    assert len((await us.get("mappings/clients")).json()["items"]) == 1


async def test_a_company_switch_during_the_check_stores_no_mapping(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """Checked in the US company, stored after the org switched to the UK one: refused."""
    org_id = f"{prefix}mapswitch"
    browser = Consent(live.client, consent.simulator, consent.make_token)
    await browser.connect(org_id, US_REALM)
    handle = await browser.handle(org_id, UK_REALM)
    customer = next(
        str(row["Id"])
        for row in consent.simulator.state.company(US_REALM).objects["Customer"].values()
        if row["DisplayName"] == "Cool Cars"
    )
    consent.simulator.admin.inject(
        FaultSpec(kind="delay", delay_seconds=1.0, path=f"{US_REALM}/query", times=5)
    )
    headers = bearer(consent.make_token(org_id))

    async def switch() -> httpx.Response:
        await asyncio.sleep(0.3)
        return await browser.confirm(handle, org_id)

    mapped, switched = await asyncio.gather(
        live.client.put(
            "/v1/quickbooks/mappings/clients/cl_1", json={"qbo_id": customer}, headers=headers
        ),
        switch(),
    )
    assert switched.status_code == 200, switched.text
    problem(mapped, 409, "company_changed")
    async with live.db.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(EntityMapping).where(EntityMapping.org_id == org_id)
        )
    assert stored == 0
