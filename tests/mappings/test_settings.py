"""Sync settings over HTTP: defaults, a full replace, and every account checked in the company."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from qbsync.simulator.faults import FaultSpec
from tests.conftest import bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import UK_REALM, US_REALM, Consent
from tests.mappings.conftest import Org, fields, problem

DEFAULTS = {
    "customer_sync_mode": "match_then_create",
    "invoice_auto_push": False,
    "default_income_account_id": None,
    "expense_mode": "bill",
    "default_expense_account_id": None,
    "ap_account_id": None,
    "payment_account_id": None,
    "sync_start_date": None,
    "reconcile_interval_minutes": 60,
}


def _settings_of(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in DEFAULTS}


async def test_an_org_that_never_saved_gets_the_defaults(org: Org) -> None:
    response = await org.get("settings")
    assert response.status_code == 200, response.text
    assert _settings_of(response.json()) == DEFAULTS
    assert response.json()["saved"] is False


async def test_settings_without_accounts_save_without_a_connection(org: Org) -> None:
    body = {
        "customer_sync_mode": "match_only",
        "invoice_auto_push": True,
        "expense_mode": "expense",
        "sync_start_date": "2026-11-01",
        "reconcile_interval_minutes": 15,
    }
    saved = await org.put("settings", body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["saved"] is True
    read = (await org.get("settings")).json()
    assert _settings_of(read) == {**DEFAULTS, **body}


async def test_put_is_a_full_replace(org: Org) -> None:
    await org.put("settings", {"invoice_auto_push": True, "reconcile_interval_minutes": 30})
    replaced = await org.put("settings", {"expense_mode": "expense"})
    assert _settings_of(replaced.json()) == {**DEFAULTS, "expense_mode": "expense"}


async def test_account_ids_need_a_connection(org: Org) -> None:
    response = await org.put("settings", {"default_income_account_id": "1"})
    problem(response, 409, "not_connected")
    assert (await org.get("settings")).json()["saved"] is False


async def test_every_account_of_the_us_company_is_checked_and_saved(us: Org) -> None:
    body = {
        "default_income_account_id": us.qbo_id("Account", "Services"),
        "default_expense_account_id": us.qbo_id("Account", "Office Expenses"),
        "ap_account_id": us.qbo_id("Account", "Accounts Payable (A/P)"),
        "payment_account_id": us.qbo_id("Account", "Mastercard"),
    }
    saved = await us.put("settings", body)
    assert saved.status_code == 200, saved.text
    assert _settings_of(saved.json()) == {**DEFAULTS, **body}
    # A bank account pays expenses as well as a credit card does.
    bank = await us.put(
        "settings", {**body, "payment_account_id": us.qbo_id("Account", "Checking")}
    )
    assert bank.status_code == 200, bank.text


@pytest.mark.parametrize(
    ("field", "account", "found"),
    [
        ("default_income_account_id", "Office Expenses", "an Expense account"),
        ("default_expense_account_id", "Services", "an Income account"),
        ("default_expense_account_id", "Advertising", "an inactive Expense account"),
        ("ap_account_id", "Checking", "a Bank account"),
        ("payment_account_id", "Accounts Payable (A/P)", "an Accounts Payable account"),
        ("payment_account_id", "Accounts Receivable (A/R)", "an Accounts Receivable account"),
    ],
)
async def test_an_account_of_the_wrong_kind_is_refused_naming_field_and_kind(
    us: Org, field: str, account: str, found: str
) -> None:
    response = await us.put("settings", {field: us.qbo_id("Account", account)})
    body = problem(response, 422, "qbo_reference_wrong_type")
    assert fields(body) == [field]
    assert found in body["detail"]
    assert (await us.get("settings")).json()["saved"] is False


async def test_an_account_the_company_does_not_have_is_refused(uk: Org) -> None:
    response = await uk.put("settings", {"ap_account_id": "99999"})
    body = problem(response, 422, "qbo_reference_not_found")
    assert fields(body) == ["ap_account_id"]


async def test_every_bad_account_is_named_in_one_answer(uk: Org) -> None:
    good = uk.qbo_id("Account", "Consulting Income")
    response = await uk.put(
        "settings",
        {
            "default_income_account_id": good,
            "default_expense_account_id": good,
            "ap_account_id": "99999",
        },
    )
    body = problem(response, 422, "qbo_reference_wrong_type")
    assert fields(body) == ["default_expense_account_id", "ap_account_id"]
    codes = [error["code"] for error in body["errors"]]
    assert codes == ["qbo_reference_wrong_type", "qbo_reference_not_found"]


async def test_the_uk_company_accounts_are_accepted(uk: Org) -> None:
    body = {
        "default_income_account_id": uk.qbo_id("Account", "Consulting Income"),
        "default_expense_account_id": uk.qbo_id("Account", "Travel"),
        "ap_account_id": uk.qbo_id("Account", "Accounts Payable (Creditors)"),
        "payment_account_id": uk.qbo_id("Account", "Business Credit Card"),
    }
    saved = await uk.put("settings", body)
    assert saved.status_code == 200, saved.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reconcile_interval_minutes": 4}, "reconcile_interval_minutes"),
        ({"reconcile_interval_minutes": 1441}, "reconcile_interval_minutes"),
        ({"reconcile_interval_minutes": "60"}, "reconcile_interval_minutes"),
        ({"reconcile_interval_minutes": 60.5}, "reconcile_interval_minutes"),
        ({"invoice_auto_push": "yes"}, "invoice_auto_push"),
        ({"invoice_auto_push": 1}, "invoice_auto_push"),
        ({"customer_sync_mode": "guess"}, "customer_sync_mode"),
        ({"expense_mode": "cheque"}, "expense_mode"),
        ({"sync_start_date": "01/11/2026"}, "sync_start_date"),
        ({"sync_start_date": 0}, "sync_start_date"),
        ({"sync_start_date": "2026-11-01T00:00:00"}, "sync_start_date"),
        ({"default_income_account_id": ""}, "default_income_account_id"),
        ({"default_income_account_id": "abc"}, "default_income_account_id"),
        ({"ap_account_id": 7}, "ap_account_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_a_bad_value_is_refused_naming_its_field(
    org: Org, body: dict[str, Any], field: str
) -> None:
    await org.put("settings", {"reconcile_interval_minutes": 30})
    response = await org.put("settings", body)
    refused = problem(response, 422, "validation_error")
    assert field in fields(refused)
    # Nothing already accepted is lost.
    assert (await org.get("settings")).json()["reconcile_interval_minutes"] == 30


async def test_the_accounts_are_checked_as_they_are_now_in_one_call(us: Org) -> None:
    """One query for all four accounts, and never a cached answer: an account made inactive in
    QuickBooks a moment ago is refused straight away."""
    body = {
        "default_income_account_id": us.qbo_id("Account", "Services"),
        "default_expense_account_id": us.qbo_id("Account", "Travel"),
        "ap_account_id": us.qbo_id("Account", "Accounts Payable (A/P)"),
        "payment_account_id": us.qbo_id("Account", "Checking"),
    }
    assert (await us.get("accounts")).status_code == 200  # the list is cached now
    before = us.calls()
    assert (await us.put("settings", body)).status_code == 200
    assert us.calls() - before == 1
    us.in_quickbooks("Account", {"Id": body["default_expense_account_id"], "Active": False})
    refused = problem(await us.put("settings", body), 422, "qbo_reference_wrong_type")
    assert fields(refused) == ["default_expense_account_id"]
    assert refused["errors"][0]["found"]["kind"] == "an inactive Expense account"
    # The page's cached list was dropped: it shows the change too.
    listed = await us.get("accounts", type="Expense")
    assert "Travel" not in [row["name"] for row in listed.json()["items"]]


async def test_a_company_switch_during_the_account_check_saves_nothing(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """The accounts were checked in the US company; the org switched to the UK one meanwhile:
    storing them would point the settings at another company's ids."""
    org_id = f"{prefix}switch"
    browser = Consent(live.client, consent.simulator, consent.make_token)
    await browser.connect(org_id, US_REALM)
    handle = await browser.handle(org_id, UK_REALM)
    us_company = consent.simulator.state.company(US_REALM)
    income = next(
        str(row["Id"])
        for row in us_company.objects["Account"].values()
        if row["Name"] == "Services"
    )
    consent.simulator.admin.inject(
        FaultSpec(kind="delay", delay_seconds=1.0, path=f"{US_REALM}/query", times=5)
    )
    headers = bearer(consent.make_token(org_id))

    async def save() -> httpx.Response:
        return await live.client.put(
            "/v1/quickbooks/settings",
            json={"default_income_account_id": income},
            headers=headers,
        )

    async def switch() -> httpx.Response:
        await asyncio.sleep(0.3)
        return await browser.confirm(handle, org_id)

    saved, switched = await asyncio.gather(save(), switch())
    assert switched.status_code == 200, switched.text
    problem(saved, 409, "company_changed")
    after = await live.client.get("/v1/quickbooks/settings", headers=headers)
    assert after.json()["default_income_account_id"] is None
