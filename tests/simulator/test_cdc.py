"""Change Data Capture: since a moment, per entity, deletions last, 30 days, 1000 objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from qbsync.simulator import SimulatorConfig, cdc
from qbsync.simulator.cdc import DAY
from qbsync.simulator.errors import QboError
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import US, Api, decode, first_error, sales_line


def cdc_groups(body: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = body["CDCResponse"][0]["QueryResponse"]
    return groups


async def test_changes_since_a_moment_with_deletions_last(us: Api, state: SimulatorState) -> None:
    since = state.clock.now().isoformat()
    state.clock.advance(1)
    kept = await us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]})
    gone = await us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("20")]})
    await us.create("Invoice", {"Id": gone["Id"], "SyncToken": "0"}, operation="delete")
    await us.create("Customer", {"Id": "2", "SyncToken": "0", "sparse": True, "Notes": "changed"})

    response = await us.client.get(
        us.url("cdc"), params={"entities": "invoice,Customer,Payment", "changedSince": since}
    )

    assert response.status_code == 200
    invoices, customers, payments = cdc_groups(decode(response))
    assert [row["Id"] for row in invoices["Invoice"]] == [kept["Id"], gone["Id"]]
    deleted = invoices["Invoice"][1]
    assert deleted["status"] == "Deleted"
    assert set(deleted) == {"domain", "status", "Id", "MetaData"}
    assert invoices["maxResults"] == invoices["totalCount"] == 2
    assert [row["Id"] for row in customers["Customer"]] == ["2"]
    assert payments == {}


async def test_changed_since_must_be_within_thirty_days(us: Api, state: SimulatorState) -> None:
    too_old = (state.clock.now() - timedelta(days=31)).date().isoformat()
    recent = (state.clock.now() - timedelta(days=29)).isoformat()

    refused = await us.client.get(
        us.url("cdc"), params={"entities": "Invoice", "changedSince": too_old}
    )
    accepted = await us.client.get(
        us.url("cdc"), params={"entities": "Invoice", "changedSince": recent}
    )
    missing = await us.client.get(us.url("cdc"), params={"changedSince": recent})

    assert refused.status_code == 400
    assert "older than fixed days" in first_error(refused)["Detail"]
    assert accepted.status_code == 200
    assert first_error(missing)["element"] == "entities"


async def test_unsupported_entities_are_refused(us: Api, state: SimulatorState) -> None:
    response = await us.client.get(
        us.url("cdc"), params={"entities": "TaxCode", "changedSince": state.clock.now().isoformat()}
    )

    assert response.status_code == 400


@pytest.fixture
def config() -> SimulatorConfig:
    return SimulatorConfig(cdc_max_objects=3)


async def test_at_most_the_cap_of_objects_oldest_first(us: Api, state: SimulatorState) -> None:
    since = state.clock.now().isoformat()
    created = []
    for amount in ("1", "2", "3", "4"):
        state.clock.advance(1)
        body = {"CustomerRef": {"value": "1"}, "Line": [sales_line(amount)]}
        created.append((await us.create("Invoice", body))["Id"])

    response = await us.client.get(
        us.url("cdc"), params={"entities": "Invoice,Customer", "changedSince": since}
    )

    invoices, customers = cdc_groups(decode(response))
    assert [row["Id"] for row in invoices["Invoice"]] == created[:3]
    assert customers == {}


async def changes(us: Api, entities: str, since: str) -> httpx.Response:
    return await us.client.get(us.url("cdc"), params={"entities": entities, "changedSince": since})


@pytest.mark.parametrize(
    "since",
    [
        "{date}",  # Intuit's reference
        "{date}T00:00:00-08:00",  # Intuit's reference
        "{date}T08:00:00+00:00",
        "{date}T00:00:00",  # python-quickbooks, read as Pacific time
        "{date}T00:00:00.5-08:00",  # Python's isoformat(), as tests/clients sends it
        "{date}T00:00:00.123456+00:00",
    ],
)
async def test_changed_since_in_the_forms_intuit_and_its_clients_use(
    us: Api, state: SimulatorState, since: str
) -> None:
    date = state.companies[US].today(state.clock.timestamp())

    response = await changes(us, "Customer", since.format(date=date))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "since",
    [
        "{date}T00:00:00Z",
        "{date}T00:00:00-0800",
        "{date}T00:00:00.1234567-08:00",
        "{date} 00:00:00-08:00",
        "{date}T00:00-08:00",
        "{date}-08:00",
        " {date}",
        "2026-02-30",
        "yesterday",
        "1767225600",
    ],
)
async def test_other_forms_of_changed_since_are_refused(
    us: Api, state: SimulatorState, since: str
) -> None:
    date = state.companies[US].today(state.clock.timestamp())

    response = await changes(us, "Customer", since.format(date=date))

    assert response.status_code == 400
    error = first_error(response)
    assert (error["code"], error["element"]) == ("2010", "changedSince")
    assert "Fault" in decode(response)


async def test_a_changed_since_without_offset_is_pacific_time(
    us: Api, state: SimulatorState
) -> None:
    state.clock.advance(3000)  # the seed's changes are fifty minutes old
    customer = await us.create("Customer", {"DisplayName": "Just Now Ltd"})
    now = state.clock.now()
    half_an_hour_ago = (now - timedelta(minutes=30)).replace(tzinfo=None)
    pacific = half_an_hour_ago - timedelta(hours=8)

    as_utc = decode(await changes(us, "Customer", half_an_hour_ago.isoformat(timespec="seconds")))
    as_pacific = decode(await changes(us, "Customer", pacific.isoformat(timespec="seconds")))

    # Read as Pacific time, the UTC wall clock is hours ahead: nothing changed since.
    assert cdc_groups(as_utc) == [{}]
    [found] = cdc_groups(as_pacific)
    assert customer["Id"] in [row["Id"] for row in found["Customer"]]


def test_the_window_is_configurable_and_inclusive_at_its_edge(state: SimulatorState) -> None:
    company = state.companies[US]
    now = 1_800_000_000.0

    def since(seconds_ago: int) -> str:
        return company.stamp(now - seconds_ago)

    inside = cdc.run(company, now, "Invoice", since(2 * DAY), window_days=2, max_objects=10)
    with pytest.raises(QboError) as outside:
        cdc.run(company, now, "Invoice", since(2 * DAY + 1), window_days=2, max_objects=10)

    assert inside == {"CDCResponse": [{"QueryResponse": [{}]}]}
    assert "older than fixed days" in outside.value.errors[0].detail


async def test_every_entity_qbsync_follows_is_captured_and_tax_entities_are_refused(
    us: Api, state: SimulatorState
) -> None:
    since = state.clock.now().isoformat()
    followed = ["Invoice", "Payment", "Customer", "Item", "Account", "Vendor"]

    response = await changes(us, ",".join(name.lower() for name in followed), since)
    refused = [
        await changes(us, entities, since) for entities in ("TaxCode", "TaxRate", "Invoice,TaxRate")
    ]

    assert response.status_code == 200
    assert len(cdc_groups(decode(response))) == len(followed)
    # Without this module's cap of 3, each has its changes, in the order asked.
    invoice = await us.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("9")]})
    await us.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 1})
    await us.create("Customer", {"DisplayName": "Followed Ltd"})
    await us.create("Item", {"Name": "Followed", "IncomeAccountRef": {"value": "1"}})
    await us.create("Account", {"Name": "Followed", "AccountType": "Expense"})
    await us.create("Vendor", {"DisplayName": "Followed Supplies"})
    company = state.companies[US]
    uncapped = cdc.run(
        company,
        state.clock.timestamp(),
        ",".join(followed),
        since,
        window_days=30,
        max_objects=1000,
    )
    groups = cdc_groups(uncapped)
    assert [name for group in groups for name in group if name in followed] == followed
    assert invoice["Id"] in [row["Id"] for row in groups[0]["Invoice"]]
    for response in refused:
        assert response.status_code == 400
        assert first_error(response)["code"] == "500"
        assert "Operation cdc is not supported for entity Tax" in first_error(response)["Detail"]


async def test_objects_come_oldest_change_first_and_deletions_after_them(
    us: Api, state: SimulatorState
) -> None:
    state.clock.advance(1)
    since = state.clock.now().isoformat()
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}
    first = await us.create("Invoice", body)
    state.clock.advance(1)
    deleted = await us.create("Invoice", body)
    await us.create("Invoice", {"Id": deleted["Id"], "SyncToken": "0"}, operation="delete")
    second = await us.create("Invoice", body)
    state.clock.advance(1)
    await us.create(
        "Invoice", {"Id": first["Id"], "SyncToken": "0", "sparse": True, "DueDate": "2027-01-01"}
    )

    [invoices] = cdc_groups(decode(await changes(us, "Invoice", since)))

    # By the time of the last change, not by Id; the deletion last though it is not the newest.
    rows = invoices["Invoice"]
    assert [row["Id"] for row in rows] == [second["Id"], first["Id"], deleted["Id"]]
    tombstone = rows[2]
    assert tombstone == {
        "domain": "QBO",
        "status": "Deleted",
        "Id": deleted["Id"],
        "MetaData": {"LastUpdatedTime": tombstone["MetaData"]["LastUpdatedTime"]},
    }
    assert tombstone["MetaData"]["LastUpdatedTime"] < rows[1]["MetaData"]["LastUpdatedTime"]


async def test_past_the_cap_a_client_continues_from_the_last_time_it_saw(
    us: Api, state: SimulatorState
) -> None:
    """The cap (3 here) keeps the oldest changes across entities, deletions included, so
    asking again from the latest LastUpdatedTime returned misses nothing."""
    state.clock.advance(1)
    since = state.clock.now().isoformat(timespec="seconds")
    changed: list[tuple[str, str]] = []
    body = {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}
    for n in range(4):
        state.clock.advance(1)
        changed.append(("Invoice", (await us.create("Invoice", body))["Id"]))
        state.clock.advance(1)
        customer = await us.create("Customer", {"DisplayName": f"Paged {n}"})
        changed.append(("Customer", customer["Id"]))
    state.clock.advance(1)
    await us.create("Invoice", {"Id": changed[-2][1], "SyncToken": "0"}, operation="delete")

    pages: list[list[tuple[str, dict[str, Any]]]] = []
    while len(pages) < 10:
        groups = cdc_groups(decode(await changes(us, "Invoice,Customer", since)))
        rows = [(name, row) for group in groups for name, row in _rows(group)]
        pages.append(rows)
        if len(rows) < 3:
            break
        since = max(row["MetaData"]["LastUpdatedTime"] for _, row in rows)

    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert {(name, row["Id"]) for name, row in pages[0]} == set(changed[:3])
    assert {(name, row["Id"]) for page in pages for name, row in page} == set(changed)
    assert pages[-1][0][1]["Id"] == changed[-2][1]  # the deletion, last of all
    assert pages[-1][0][1]["status"] == "Deleted"


def _rows(group: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, row) for name, rows in group.items() if isinstance(rows, list) for row in rows]
