"""Consent races run for real: concurrent browsers against real Postgres through a real pool."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from qbsync.models import Connection, ConnectionStatus, OAuthState
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import OTHER_US_REALM, US_REALM, Consent

COMPANY_TAKEN = "company_already_connected"


async def _browser(consent: Consent, state: str, org_id: str) -> str:
    """Consent at Intuit, land on the settings page, and confirm as the frontend does."""
    landed = await consent.finish(consent.consent(state, US_REALM))
    if landed["quickbooks"] != ["confirm"]:
        return landed["reason"][0]
    confirmed = await consent.confirm(landed["handle"][0], org_id)
    if confirmed.status_code == 200:
        return "connected"
    assert confirmed.headers["content-type"] == "application/problem+json"
    return str(confirmed.json()["code"])


async def _states_unspent(live: CommittedApp, prefix: str) -> int:
    async with live.db.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(OAuthState)
                .where(OAuthState.org_id.like(f"{prefix}%"), OAuthState.used_at.is_(None))
            )
            or 0
        )


async def _connected(live: CommittedApp, prefix: str) -> list[Connection]:
    async with live.db.sessions() as session:
        return list(
            await session.scalars(
                select(Connection).where(
                    Connection.org_id.like(f"{prefix}%"),
                    Connection.status == ConnectionStatus.CONNECTED,
                )
            )
        )


@pytest.mark.parametrize("round_", range(3))
async def test_two_orgs_consenting_to_one_company_at_once(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    prefix: str,
    round_: int,
) -> None:
    """Exactly one org gets the company; the other is told why; every state is spent; and the
    winner's grant survives (revoking the loser's would disconnect the app from the company)."""
    consent = Consent(live.client, simulator, make_token)
    orgs = [f"{prefix}a", f"{prefix}b"]
    states = [await consent.start(org) for org in orgs]
    outcomes = await asyncio.gather(
        *(_browser(consent, state, org) for state, org in zip(states, orgs, strict=True))
    )
    assert sorted(outcomes) == [COMPANY_TAKEN, "connected"], outcomes
    winners = await _connected(live, prefix)
    assert [row.org_id for row in winners] == [orgs[outcomes.index("connected")]]
    assert await _states_unspent(live, prefix) == 0
    assert simulator.admin.revoke_calls == 0
    tested = await live.client.post(
        "/v1/quickbooks/test-connection", headers=bearer(make_token(winners[0].org_id))
    )
    assert tested.json()["ok"] is True, tested.text
    assert live.guard.violations == []


async def test_two_tabs_of_one_org_consenting_at_once(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """One connection; both tabs end connected (the later grant replaces the earlier one)."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}tabs"
    states = [await consent.start(org), await consent.start(org)]
    outcomes = await asyncio.gather(*(_browser(consent, state, org) for state in states))
    assert outcomes == ["connected", "connected"]
    assert len(await _connected(live, prefix)) == 1
    assert await _states_unspent(live, prefix) == 0
    assert simulator.admin.revoke_calls == 0
    tested = await live.client.post(
        "/v1/quickbooks/test-connection", headers=bearer(make_token(org))
    )
    assert tested.json()["ok"] is True, tested.text


async def test_one_handle_confirmed_twice_at_once(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """A double click: one confirm links, the other finds the handle spent."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}dbl"
    handle = (await consent.finish(consent.consent(await consent.start(org), US_REALM)))["handle"][
        0
    ]
    answers = await asyncio.gather(consent.confirm(handle, org), consent.confirm(handle, org))
    assert sorted(answer.status_code for answer in answers) == [200, 404]
    assert len(await _connected(live, prefix)) == 1


@pytest.mark.parametrize("round_", range(3))
async def test_a_switch_and_a_reconsent_of_one_org_confirmed_at_once(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    prefix: str,
    round_: int,
) -> None:
    """Two tabs of a connected org: one switches company, one re-consents the current one.
    One lock order for every path: no deadlock, no 500, and the company in the end works."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}sw"
    await consent.connect(org, US_REALM)
    to_other = await consent.handle(org, OTHER_US_REALM)
    again = await consent.handle(org, US_REALM)
    answers = await asyncio.gather(consent.confirm(to_other, org), consent.confirm(again, org))
    assert all(answer.status_code in (200, 409) for answer in answers), [a.text for a in answers]
    assert 200 in [answer.status_code for answer in answers]
    [row] = await _connected(live, prefix)
    assert simulator.state.tokens.is_connected(row.realm_id)
    tested = await live.client.post(
        "/v1/quickbooks/test-connection", headers=bearer(make_token(org))
    )
    assert tested.json()["ok"] is True, tested.text
    assert live.guard.violations == []


@pytest.mark.parametrize("round_", range(3))
async def test_a_disconnect_and_a_reconsent_at_once(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    prefix: str,
    round_: int,
) -> None:
    """Whichever wins, no 500, and a connection shown as connected really works."""
    consent = Consent(live.client, simulator, make_token)
    org = f"{prefix}dc"
    await consent.connect(org, US_REALM)
    again = await consent.handle(org, US_REALM)
    disconnected, confirmed = await asyncio.gather(
        live.client.delete("/v1/quickbooks/connection", headers=bearer(make_token(org))),
        consent.confirm(again, org),
    )
    assert disconnected.status_code == 200, disconnected.text
    assert confirmed.status_code in (200, 409), confirmed.text
    status = await live.client.get("/v1/quickbooks/connection", headers=bearer(make_token(org)))
    if status.json()["status"] == "connected":
        tested = await live.client.post(
            "/v1/quickbooks/test-connection", headers=bearer(make_token(org))
        )
        assert tested.json()["ok"] is True, tested.text


@pytest.mark.parametrize("round_", range(3))
async def test_parallel_clicks_do_not_pass_the_sign_in_cap(
    live: CommittedApp, make_token: TokenFactory, prefix: str, round_: int
) -> None:
    """S8: the count and the insert run under the org's lock: two sign-ins short of the cap,
    five at once let exactly two through."""
    org = f"{prefix}cap"

    async def click() -> int:
        answer = await live.client.post("/v1/quickbooks/connect", headers=bearer(make_token(org)))
        return answer.status_code

    for _ in range(18):
        assert await click() == 200
    codes = sorted(await asyncio.gather(*(click() for _ in range(5))))
    assert codes == [200, 200, 429, 429, 429]
