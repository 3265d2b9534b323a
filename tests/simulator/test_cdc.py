"""Change Data Capture: since a moment, per entity, deletions last, 30 days, 1000 objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import Api, decode, first_error, sales_line


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
