"""The settings page's reference lists: what they show, how they page, and what they cost (P7)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import Redis

from qbsync.qbo import Customer
from qbsync.reference_cache import ReferenceCache
from qbsync.simulator.faults import FaultSpec
from tests.conftest import bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import US_REALM, Consent
from tests.mappings.conftest import Org, fields, problem


def _names(response_body: dict[str, Any], key: str = "name") -> list[str]:
    return [row[key] for row in response_body["items"]]


async def _all(org: Org, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await org.get(path, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rows


async def test_accounts_filter_by_type_search_and_activity(us: Org) -> None:
    expense = (await us.get("accounts", type="Expense,Other Expense")).json()
    assert _names(expense) == [
        "Dues & Subscriptions",
        "Legal & Professional Fees",
        "Office Expenses",
        "Travel",
    ]
    with_inactive = (await us.get("accounts", type="expense", include_inactive=True)).json()
    inactive = [row for row in with_inactive["items"] if not row["active"]]
    assert [row["name"].removesuffix(" (deleted)") for row in inactive] == ["Advertising"]
    assert not any(row["name"].startswith("Advertising") for row in expense["items"])
    payment = (await us.get("accounts", type="Bank,Credit Card")).json()
    assert {row["account_type"] for row in payment["items"]} == {"Bank", "Credit Card"}
    searched = (await us.get("accounts", q="SAV")).json()
    assert _names(searched) == ["Savings"]
    problem(await us.get("accounts", type="Assets"), 422, "validation_error")


async def test_items_customers_and_vendors_are_searchable(us: Org) -> None:
    items = (await us.get("items", q="garden")).json()["items"]
    assert [(row["name"], row["type"]) for row in items] == [("Gardening Supplies", "NonInventory")]
    assert items[0]["income_account"]["name"] == "Sales of Product Income"
    by_email = (await us.get("customers", q="SURF@intuit")).json()
    assert _names(by_email, "display_name") == ["Bill's Windsurf Shop"]
    shared = (await us.get("customers", q="qbwebsamplecompany@yahoo.com")).json()
    assert _names(shared, "display_name") == ["Red Rock Diner"]
    also_inactive = await us.get("customers", q="qbwebsamplecompany", include_inactive=True)
    assert len(also_inactive.json()["items"]) == 2
    vendors = (await us.get("vendors", q="jenni")).json()
    assert _names(vendors, "display_name") == ["Computers by Jenni"]


async def test_uk_tax_codes_carry_their_sales_and_purchase_rates(uk: Org) -> None:
    codes = {row["name"]: row for row in (await uk.get("tax-codes")).json()["items"]}
    standard = codes["20.0% S"]
    assert standard["sales_percent"] == "20"
    assert standard["purchase_percent"] == "20"
    assert [rate["name"] for rate in standard["sales_rates"]] == ["20.0% S (sales)"]
    assert codes["5.0% R"]["sales_percent"] == "5"
    assert codes["Exempt"]["sales_percent"] == "0"


async def test_us_tax_codes_include_taxable_and_not(us: Org) -> None:
    codes = {row["id"] for row in (await us.get("tax-codes")).json()["items"]}
    assert {"TAX", "NON"} <= codes


async def test_pages_follow_the_cursor_to_the_end(us: Org) -> None:
    for number in range(7):
        us.in_quickbooks("Customer", {"DisplayName": f"Paged Customer {number}"})
    every = await _all(us, "customers", limit=3)
    names = [row["display_name"] for row in every]
    assert names == sorted(names, key=str.casefold)
    assert len(names) == len(set(names)) == 4 + 7


async def test_a_bad_cursor_or_limit_is_refused_before_any_read(us: Org) -> None:
    before = us.calls()
    assert fields(problem(await us.get("customers", cursor="bm9wZQ"), 422, "invalid_cursor")) == [
        "cursor"
    ]
    problem(await us.get("customers", limit=0), 422, "validation_error")
    problem(await us.get("customers", limit=201), 422, "validation_error")
    assert us.calls() == before


async def test_a_second_identical_page_load_costs_no_call(us: Org) -> None:
    """P7: the lists come from the cache; searching or paging them costs nothing either."""
    paths = ["accounts", "items", "tax-codes", "customers", "vendors"]
    before = us.calls()
    for path in paths:
        assert (await us.get(path)).status_code == 200
    first = us.calls() - before
    # One read per list (tax codes need their rates too); every page of a list is one read here.
    assert first == len(paths) + 1
    for path in paths:
        assert (await us.get(path)).status_code == 200
    assert (await us.get("customers", q="cool")).status_code == 200
    assert (await us.get("accounts", type="Income", limit=1)).status_code == 200
    assert us.calls() - before == first


def _metered(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("qbsync_intuit_calls_total{") and 'kind="coreplus"' in line
    )


async def test_every_call_is_counted_as_metered_or_not(us: Org) -> None:
    """P7: /metrics counts each Accounting API call as Intuit meters it (reads: coreplus)."""
    before = _metered((await us.client.get("/metrics")).text)
    calls = us.calls()
    await us.get("customers")
    await us.get("customers")
    after = _metered((await us.client.get("/metrics")).text)
    assert after - before == us.calls() - calls == 1


async def test_a_change_reported_by_quickbooks_drops_that_list_only(us: Org, app: FastAPI) -> None:
    """The webhook and CDC code call `drop`; the next load reads that list again, and no other."""
    await us.get("customers")
    await us.get("items")
    created = us.in_quickbooks("Customer", {"DisplayName": "Fresh Customer"})
    stale = (await us.get("customers", q="fresh")).json()["items"]
    assert stale == []
    cache: ReferenceCache = app.state.reference_cache
    await cache.drop(us.realm_id, "Customer")
    before = us.calls()
    fresh = (await us.get("customers", q="fresh")).json()["items"]
    assert [row["id"] for row in fresh] == [created["Id"]]
    await us.get("items")
    assert us.calls() - before == 1


async def test_ten_people_opening_the_page_at_once_cost_one_read(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """Concurrent misses on a real pool are single-flighted: one read of the list in all."""
    org_id = f"{prefix}ten"
    await Consent(live.client, consent.simulator, consent.make_token).connect(org_id, US_REALM)
    headers = bearer(consent.make_token(org_id))
    stats = consent.simulator.state.stats
    before = stats.requests_by_realm[US_REALM]
    responses = await asyncio.gather(
        *(live.client.get("/v1/quickbooks/customers", headers=headers) for _ in range(10))
    )
    assert {response.status_code for response in responses} == {200}
    assert stats.requests_by_realm[US_REALM] - before == 1


async def test_a_connect_forgets_the_companys_lists(us: Org, consent: Consent) -> None:
    """Webhooks stop while a company is not connected: a reconnect reads what is there now."""
    assert (await us.get("customers")).status_code == 200
    created = us.in_quickbooks("Customer", {"DisplayName": "Joined While Away"})
    assert (await us.delete("connection")).status_code == 200
    await consent.connect("org_1", US_REALM)
    found = (await us.get("customers", q="joined while")).json()["items"]
    assert [row["id"] for row in found] == [created["Id"]]


async def test_reference_lists_need_a_connection(org: Org) -> None:
    for path in ("accounts", "items", "tax-codes", "customers", "vendors"):
        problem(await org.get(path), 409, "not_connected")


async def test_quickbooks_throttling_is_a_503_with_retry_after(us: Org) -> None:
    us.simulator.admin.inject(FaultSpec(kind="throttle", path="query", times=10))
    response = await us.get("customers")
    body = problem(response, 503, "quickbooks_busy")
    assert int(response.headers["retry-after"]) >= 1
    assert "try again" in body["detail"]


async def test_quickbooks_failing_is_a_503_and_is_not_cached(us: Org) -> None:
    us.simulator.admin.inject(FaultSpec(kind="error", status_code=500, path="query", times=10))
    problem(await us.get("vendors"), 503, "quickbooks_unavailable")
    us.simulator.admin.clear_faults()
    assert (await us.get("vendors")).status_code == 200


def _unique(key_prefix: str) -> str:
    return f"{key_prefix}:{uuid.uuid4().hex[:8]}"


class _Rows:
    """A fake QuickBooks read that counts how often it runs (ReferenceCache unit tests)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.reads = 0

    async def __call__(self) -> list[Customer]:
        self.reads += 1
        await asyncio.sleep(0.01)
        return [Customer(id=str(n), display_name=name) for n, name in enumerate(self.names)]


async def test_a_drop_during_a_load_is_not_undone_by_it(redis: ArqRedis, key_prefix: str) -> None:
    """A load that began before a drop stores what it read, but later reads ignore it."""
    cache = ReferenceCache(redis, key_prefix=_unique(key_prefix), ttl_seconds=300)
    rows = _Rows(["Before"])

    async def read_then_change() -> list[Customer]:
        answer = await rows()
        rows.names = ["After"]
        await cache.drop("1", "Customer")  # QuickBooks reported the change mid-read
        return answer

    first = await cache.load("1", Customer, read_then_change)
    assert [row.display_name for row in first] == ["Before"]
    again = await cache.load("1", Customer, rows)
    assert [row.display_name for row in again] == ["After"]
    assert rows.reads == 2


async def test_without_redis_the_list_is_read_from_quickbooks(key_prefix: str) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    cache = ReferenceCache(gone, key_prefix=_unique(key_prefix), ttl_seconds=300)
    rows = _Rows(["Only"])
    loaded = await cache.load("1", Customer, rows)
    assert [row.display_name for row in loaded] == ["Only"]
    await gone.aclose()


@pytest.mark.parametrize("ttl", [1])
async def test_a_list_expires_after_its_time(redis: ArqRedis, key_prefix: str, ttl: int) -> None:
    cache = ReferenceCache(redis, key_prefix=_unique(key_prefix), ttl_seconds=ttl)
    rows = _Rows(["A"])
    await cache.load("1", Customer, rows)
    await cache.load("1", Customer, rows)
    assert rows.reads == 1
    await asyncio.sleep(ttl + 0.2)
    await cache.load("1", Customer, rows)
    assert rows.reads == 2


async def test_a_read_quickbooks_forbids_is_not_called_a_reconnect(us: Org) -> None:
    """403: the user who connected lost a permission; signing in again as them won't help."""
    us.simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="query", times=5))
    body = problem(await us.get("items"), 409, "quickbooks_access_denied")
    assert body["detail"]
