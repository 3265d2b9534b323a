"""Revoking any grant disconnects the app from the company (Intuit), so qbsync revokes a grant it
drops only when nothing else of ours holds that company: no connection, no consent waiting."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from qbsync.connections import consent as consent_service
from qbsync.db import Database
from qbsync.models import Connection, OutboundEvent
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import OTHER_US_REALM, US_REALM, Consent


async def _healthy(client: httpx.AsyncClient, token: str) -> bool:
    tested = await client.post("/v1/quickbooks/test-connection", headers=bearer(token))
    return bool(tested.json()["ok"])


async def test_a_failed_callback_does_not_cut_the_connection_made_during_its_exchange(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """Two tabs of one org: tab B's exchange is slow, tab A connects meanwhile, then B's company
    read fails. B's grant is dropped, not revoked: A's connection holds the company."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}tabs"
    state_a, state_b = await consent.start(org), await consent.start(org)
    url_b, url_a = consent.consent(state_b, US_REALM), consent.consent(state_a, US_REALM)
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=1.0, path="tokens/bearer"))
    tab_b = asyncio.create_task(consent.finish(url_b))
    await asyncio.sleep(0.2)
    handle = (await consent.finish(url_a))["handle"][0]
    assert (await consent.confirm(handle, org)).status_code == 200
    simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="companyinfo", times=5))
    assert (await tab_b)["reason"] == ["not_company_admin"]
    simulator.admin.clear_faults()
    assert simulator.admin.revoke_calls == 0
    assert simulator.state.tokens.is_connected(US_REALM)
    assert await _healthy(live.client, make_token(org))


async def test_a_failed_second_attempt_does_not_kill_the_first_one_waiting(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
) -> None:
    """A double click on Connect: tab A's consent waits for its confirm while tab B fails."""
    handle_a = await consent.handle("org_1")
    state_b = await consent.start("org_1")
    simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="companyinfo", times=5))
    assert (await consent.finish(consent.consent(state_b)))["reason"] == ["not_company_admin"]
    simulator.admin.clear_faults()
    assert simulator.admin.revoke_calls == 0
    assert (await consent.confirm(handle_a, "org_1")).status_code == 200
    assert await _healthy(client, make_token("org_1"))


async def test_a_consent_waiting_when_the_company_is_disconnected_is_withdrawn(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
) -> None:
    """The disconnect's revoke ends every grant for the company: the waiting consent is told so
    instead of linking tokens Intuit already killed."""
    await consent.connect()
    handle = await consent.handle()
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.json()["revoked_at_intuit"] is True
    late = await consent.confirm(handle)
    assert late.status_code == 409
    assert late.json()["code"] == "consent_withdrawn"
    status = await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert status.json()["status"] == "disconnected"


async def test_two_tabs_of_a_new_org_confirming_two_companies_at_once(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """Serialised per org: both confirms succeed in turn, the last company wins, and the grant
    of the company left behind is revoked rather than left live with nobody holding it."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}two"
    first = await consent.handle(org, US_REALM)
    second = await consent.handle(org, OTHER_US_REALM)
    answers = await asyncio.gather(consent.confirm(first, org), consent.confirm(second, org))
    assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
    async with live.db.sessions() as session:
        rows = list(await session.scalars(select(Connection).where(Connection.org_id == org)))
    assert len(rows) == 1
    kept = rows[0].realm_id
    left = OTHER_US_REALM if kept == US_REALM else US_REALM
    assert simulator.state.tokens.is_connected(kept)
    assert not simulator.state.tokens.is_connected(left)
    assert await _healthy(live.client, make_token(org))
    assert live.guard.violations == []


async def test_a_disconnect_tells_the_platform_before_intuit_answers(
    settings: Settings,
    database_url: str,
    redis: object,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    prefix: str,
) -> None:
    """Everything the disconnect stores is committed before the revoke: a database that is
    busy while Intuit answers loses nothing and fails nothing."""
    async with committed_app(settings, database_url, redis, prefix, pool_size=1) as live:  # type: ignore[arg-type]
        org = f"{prefix}dis"
        await Consent(live.client, simulator, make_token).connect(org, US_REALM)
        live.db.engine.sync_engine.pool._timeout = 0.3  # type: ignore[attr-defined]
        simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.6, path="revoke"))
        asked = asyncio.create_task(
            live.client.delete("/v1/quickbooks/connection", headers=bearer(make_token(org)))
        )
        await asyncio.sleep(0.25)
        async with live.db.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            answer = await asked
        assert answer.status_code == 200, answer.text
        async with live.db.sessions() as session:
            told = list(
                await session.scalars(
                    select(OutboundEvent.payload).where(OutboundEvent.org_id == org)
                )
            )
        assert [event["status"] for event in told] == ["connected", "disconnected"]


async def test_a_callback_that_fails_after_the_exchange_revokes_its_grant(
    consent: Consent, simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    """Nothing was stored and nothing else holds the company: the grant must not live on."""

    async def broken(*_: object) -> str:
        raise RuntimeError("the store failed")

    monkeypatch.setattr(consent_service, "_hold", broken)
    landed = await consent.finish(consent.consent(await consent.start()))
    assert landed["reason"] == ["unexpected_error"]
    assert simulator.admin.revoke_calls == 1
    assert not simulator.state.tokens.is_connected(US_REALM)


async def test_odd_company_names_are_stored_as_they_can_be(
    consent: Consent, simulator: SimulatorHandle, db: Database
) -> None:
    """A name longer than the column, or with a NUL Postgres can't store, still connects."""
    info = simulator.state.company(US_REALM).objects["CompanyInfo"]["1"]
    info["CompanyName"] = "A\x00" + "B" * 700
    await consent.connect()
    async with db.sessions() as session:
        name = await session.scalar(select(Connection.company_name))
    assert name is not None
    assert name == ("A" + "B" * 700)[:500]
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Connection)) == 1


async def test_a_sign_in_our_own_disconnect_ended_says_so(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """The user re-consents while a disconnect of the same company goes out: the new grant dies
    with the revoke, and the browser is told why, not that QuickBooks was down."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}rc"
    await consent.connect(org, US_REALM)
    callback_url = consent.consent(await consent.start(org), US_REALM)
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=1.0, path="companyinfo"))
    landing = asyncio.create_task(consent.finish(callback_url))
    await asyncio.sleep(0.4)
    gone = await live.client.delete("/v1/quickbooks/connection", headers=bearer(make_token(org)))
    assert gone.json()["revoked_at_intuit"] is True
    assert (await landing)["reason"] == ["consent_withdrawn"]
