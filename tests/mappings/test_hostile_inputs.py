"""Inputs and states an attacker or a bad day brings: odd ids and cursors, long names, a cache
entry no release can read, Redis gone, records changed in QuickBooks a moment ago."""

from __future__ import annotations

import base64
import json

import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import update

from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus
from qbsync.reference_cache import FORMAT, ReferenceCache
from tests.mappings.conftest import Org, fields, problem


def _cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '[{"Id": {"x": 1}}]', '{"rows": []}'])
async def test_an_unreadable_cached_list_is_read_again(
    us: Org, app: FastAPI, redis: ArqRedis, payload: str
) -> None:
    prefix = app.state.settings.redis.key_prefix
    await redis.set(f"{prefix}:reference:{FORMAT}:{us.realm_id}:Customer", payload)
    response = await us.get("customers")
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 4
    before = us.calls()
    again = await us.get("customers")
    assert again.status_code == 200
    assert us.calls() == before  # the unreadable entry was replaced


async def test_a_drop_without_redis_reports_it_and_does_not_fail(key_prefix: str) -> None:
    gone = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert (
        await ReferenceCache(gone, key_prefix=key_prefix, ttl_seconds=300).drop("1", "Customer")
        is False
    )
    await gone.aclose()


async def test_every_cursor_handed_out_is_accepted_back(us: Org) -> None:
    for number in range(3):
        us.in_quickbooks("Customer", {"DisplayName": f"{'Ä' * 400} {number}"})
    seen = 0
    cursor = None
    while True:
        page = await us.get("customers", limit=1, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        seen += len(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == 7


@pytest.mark.parametrize("path", ["mappings/clients/a%00b", "mappings/clients/a%01b"])
async def test_control_characters_in_a_platform_id_are_refused(us: Org, path: str) -> None:
    customer = us.qbo_id("Customer", "Cool Cars")
    assert fields(problem(await us.put(path, {"qbo_id": customer}), 422, "validation_error")) == [
        "platform_id"
    ]
    problem(await us.delete(path), 422, "validation_error")


@pytest.mark.parametrize("cursor", [_cursor("", "\u0000"), _cursor("", "\ud800"), ""])
async def test_a_crafted_cursor_is_refused(us: Org, cursor: str) -> None:
    for path in ("mappings/clients", "customers"):
        assert fields(problem(await us.get(path, cursor=cursor), 422, "invalid_cursor")) == [
            "cursor"
        ]


@pytest.mark.parametrize("qbo_id", [".", "..", "1/2", "abc", "TAXX"])
async def test_a_qbo_id_that_is_not_one_is_refused_before_quickbooks_is_asked(
    us: Org, qbo_id: str
) -> None:
    before = us.calls()
    problem(await us.put("mappings/clients/c1", {"qbo_id": qbo_id}), 422, "validation_error")
    assert us.calls() == before


async def test_a_very_long_quickbooks_name_is_kept_shortened(uk: Org) -> None:
    uk.simulator.state.company(uk.realm_id).insert(
        "Account",
        {
            "Name": "Deep",
            "FullyQualifiedName": ":".join(["Level" + "x" * 95] * 6),
            "AccountType": "Expense",
            "Active": True,
        },
        0.0,
        "950",
    )
    response = await uk.put("mappings/expense-categories/deep", {"qbo_id": "950"})
    assert response.status_code == 200, response.text
    assert len(response.json()["qbo_name"]) == 500


async def test_a_record_made_inactive_a_moment_ago_is_refused(us: Org) -> None:
    """The lists are cached for minutes, but a mapping is checked against QuickBooks now."""
    assert (await us.get("customers")).status_code == 200
    cool = us.qbo_id("Customer", "Cool Cars")
    us.in_quickbooks("Customer", {"Id": cool, "Active": False})
    problem(await us.put("mappings/clients/c1", {"qbo_id": cool}), 422, "qbo_reference_wrong_type")


async def test_a_reactivated_account_can_be_mapped_by_its_number(uk: Org) -> None:
    account = uk.in_quickbooks(
        "Account", {"Name": "Software", "AccountType": "Expense", "AcctNum": "6100"}
    )
    uk.in_quickbooks("Account", {"Id": account["Id"], "Active": False})
    assert (await uk.get("accounts", include_inactive=True)).status_code == 200
    uk.in_quickbooks("Account", {"Id": account["Id"], "Active": True})
    response = await uk.put("mappings/expense-categories/sw", {"account_number": "6100"})
    assert response.status_code == 200, response.text


async def test_a_connection_that_needs_reauth_always_says_so(us: Org, db: Database) -> None:
    async with db.sessions() as session:
        await session.execute(update(Connection).values(status=ConnectionStatus.NEEDS_REAUTH))
        await session.commit()
    for _ in range(2):
        problem(await us.get("accounts"), 409, "needs_reauth")
        problem(await us.put("mappings/clients/c1", {"qbo_id": "1"}), 409, "needs_reauth")


async def test_employees_are_cached_by_name_only(uk: Org, app: FastAPI, redis: ArqRedis) -> None:
    """Only their names take display names: nothing else of an employee's record is kept."""
    uk.in_quickbooks(
        "Employee",
        {
            "GivenName": "Ada",
            "FamilyName": "Lovelace",
            "PrimaryAddr": {"Line1": "1 Home Street", "City": "London"},
            "BirthDate": "1990-12-10",
        },
    )
    result = await uk.post("preview", {"clients": [{"id": "c", "name": "Ada Lovelace"}]})
    assert "an employee" in result.json()["clients"][0]["note"]
    prefix = app.state.settings.redis.key_prefix
    cached = json.loads(await redis.get(f"{prefix}:reference:{FORMAT}:{uk.realm_id}:Employee"))
    assert {key for row in cached for key in row} <= {"Id", "SyncToken", "DisplayName", "Active"}
    assert "Lovelace" in json.dumps(cached)
    assert "Home Street" not in json.dumps(cached)
