"""The confirm step: only the user who started a consent can link it (S9, RFC 6749 §10.12)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from qbsync.connections.tasks import expire_pending_grants
from qbsync.db import Database
from qbsync.models import (
    Connection,
    ConnectionStatus,
    OAuthState,
    PendingGrant,
    RecordKind,
    RecordStatus,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import OTHER_US_REALM, US_REALM, Consent, load_connection


async def _status(client: httpx.AsyncClient, token: str) -> str:
    response = await client.get("/v1/quickbooks/connection", headers=bearer(token))
    assert response.status_code == 200
    return str(response.json()["status"])


async def _count(db: Database, model: type[Connection] | type[PendingGrant]) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_consent_link_sent_to_another_business_links_nothing(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    """S9: a member of org X sends another business's admin the consent link. The admin consents;
    their browser lands on the settings page signed in as their own org; nothing is linked to X,
    nor to them, and the grant Intuit made is withdrawn."""
    state = await consent.start("org_x")
    landed = await consent.finish(consent.consent(state, OTHER_US_REALM))
    assert landed["quickbooks"] == ["confirm"]
    refused = await consent.confirm(landed["handle"][0], "org_victim", "user_victim")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "consent_not_yours"
    assert refused.json()["errors"][0]["field"] == "handle"
    assert await _status(client, make_token("org_x")) == "not_connected"
    assert await _status(client, make_token("org_victim")) == "not_connected"
    assert await _count(db, Connection) == 0
    assert simulator.admin.revoke_calls == 1
    assert not simulator.state.tokens.is_connected(OTHER_US_REALM)
    again = await consent.confirm(landed["handle"][0], "org_x")
    assert again.status_code == 404, "a refused handle is spent, even for the right user"


async def test_another_user_of_the_same_org_cannot_confirm(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S9: the consent is bound to the user, not only to the org."""
    handle = await consent.handle("org_1")
    refused = await consent.confirm(handle, "org_1", "user_2")
    assert refused.status_code == 403
    assert await _status(client, make_token("org_1")) == "not_connected"


async def test_a_refused_consent_does_not_cut_a_connection_that_holds_the_company(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
) -> None:
    """Revoking any grant disconnects the app from the company (Intuit): so a grant dropped for
    a company that is already connected is not revoked."""
    handle = await consent.handle("org_x", US_REALM)
    await consent.connect("org_victim", US_REALM)
    # The victim's own frontend confirms the handle the attacker's link produced.
    assert (await consent.confirm(handle, "org_victim")).status_code == 403
    assert simulator.admin.revoke_calls == 0
    assert simulator.state.tokens.is_connected(US_REALM)
    tested = await client.post(
        "/v1/quickbooks/test-connection", headers=bearer(make_token("org_victim"))
    )
    assert tested.json()["ok"] is True, tested.text


async def test_a_handle_works_once(consent: Consent) -> None:
    handle = await consent.handle()
    assert (await consent.confirm(handle)).status_code == 200
    replay = await consent.confirm(handle)
    assert replay.status_code == 404
    assert replay.json()["code"] == "consent_not_found"


async def test_an_unknown_or_missing_handle_is_refused(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    unknown = await client.post(
        "/v1/quickbooks/connect/confirm", json={"handle": "x" * 43}, headers=bearer(make_token())
    )
    assert unknown.status_code == 404
    missing = await client.post(
        "/v1/quickbooks/connect/confirm", json={}, headers=bearer(make_token())
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "handle"
    unsigned = await client.post("/v1/quickbooks/connect/confirm", json={"handle": "x"})
    assert unsigned.status_code == 401


async def test_a_consent_confirmed_too_late_is_refused_and_withdrawn(
    consent: Consent, simulator: SimulatorHandle, db: Database
) -> None:
    handle = await consent.handle()
    async with db.sessions() as session:
        await session.execute(update(PendingGrant).values(expires_at=utcnow()))
        await session.commit()
    late = await consent.confirm(handle)
    assert late.status_code == 409
    assert late.json()["code"] == "consent_expired"
    assert simulator.admin.revoke_calls == 1
    assert await _count(db, Connection) == 0


async def test_the_cron_withdraws_consents_nobody_confirmed(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: FastAPI
) -> None:
    """A consent left unconfirmed (the victim never signed in) does not keep its grant; a late
    confirm is still told why, until the row is deleted a day later."""
    handle = await consent.handle("org_1", OTHER_US_REALM)
    async with db.sessions() as session:
        await session.execute(
            update(PendingGrant).values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    ctx = {"db": db, "queue": app.state.queue, "intuit": app.state.intuit}
    assert await expire_pending_grants(ctx) == 1  # type: ignore[arg-type]
    assert simulator.admin.revoke_calls == 1
    assert not simulator.state.tokens.is_connected(OTHER_US_REALM)
    async with db.sessions() as session:
        grant = await session.scalar(select(PendingGrant).execution_options(populate_existing=True))
    assert grant is not None
    assert (grant.access_token, grant.refresh_token) == (None, None)
    late = await consent.confirm(handle)
    assert late.json()["code"] == "consent_expired"
    async with db.sessions() as session:
        await session.execute(update(PendingGrant).values(expires_at=utcnow() - timedelta(days=2)))
        await session.commit()
    assert await expire_pending_grants(ctx) == 0  # type: ignore[arg-type]
    assert await _count(db, PendingGrant) == 0


async def test_the_callback_stores_no_plaintext_and_links_nothing(
    consent: Consent, db: Database
) -> None:
    await consent.handle()
    assert await _count(db, Connection) == 0
    async with db.sessions() as session:
        grant = await session.scalar(select(PendingGrant))
        assert grant is not None
        assert grant.access_token is not None
        assert grant.access_token.startswith("v1.")
        assert grant.org_id == "org_1"
        assert grant.user_id == "user_1"
        states = list(await session.scalars(select(OAuthState)))
        assert all(state.used_at is not None for state in states)


async def test_switching_company_revokes_the_old_grant_and_detaches_unsent_work(
    consent: Consent, simulator: SimulatorHandle, db: Database
) -> None:
    """R12: once the new company is stored, the old one's grant is withdrawn, and no record not
    yet synced (in progress included) keeps the old company's ids."""
    await consent.connect("org_1", US_REALM)
    async with db.sessions() as session:
        for status in (RecordStatus.PENDING, RecordStatus.IN_PROGRESS, RecordStatus.FAILED):
            session.add(
                SyncRecord(
                    id=uuid.uuid4(),
                    org_id="org_1",
                    kind=RecordKind.INVOICE,
                    platform_id=f"inv_{status.value}",
                    snapshot={},
                    status=status,
                    realm_id=US_REALM,
                    qbo_id="130",
                    qbo_sync_token="3",
                )
            )
        await session.commit()
    await consent.connect("org_1", OTHER_US_REALM)
    assert simulator.admin.revoke_calls == 1
    assert not simulator.state.tokens.is_connected(US_REALM)
    assert simulator.state.tokens.is_connected(OTHER_US_REALM)
    assert (await load_connection(db)).realm_id == OTHER_US_REALM
    async with db.sessions() as session:
        records = list(
            await session.scalars(select(SyncRecord).execution_options(populate_existing=True))
        )
    assert {(r.realm_id, r.qbo_id, r.qbo_sync_token) for r in records} == {(None, None, None)}
    assert RecordStatus.IN_PROGRESS not in {r.status for r in records}


async def test_reconnecting_the_same_company_revokes_nothing(
    consent: Consent, simulator: SimulatorHandle, db: Database
) -> None:
    """A second grant for the company the org holds replaces the first; revoking either would
    disconnect the app from the company."""
    await consent.connect("org_1", US_REALM)
    await consent.connect("org_1", US_REALM)
    assert simulator.admin.revoke_calls == 0
    assert (await load_connection(db)).status is ConnectionStatus.CONNECTED


async def test_the_confirm_answers_the_connection(
    consent: Consent, make_token: TokenFactory
) -> None:
    confirmed = await consent.confirm(await consent.handle("org_1", US_REALM))
    body = confirmed.json()
    assert body["status"] == "connected"
    assert body["company_name"] == "Craig's Design and Landscaping"
    assert body["token_health"]["days_left"] >= 90


async def test_switching_company_withdraws_the_consents_waiting_for_the_old_one(
    consent: Consent, simulator: SimulatorHandle
) -> None:
    """The switch lets the old company go: its grant is revoked, which ends the consent another
    tab left waiting for it, so that consent is told it was withdrawn instead of linking."""
    await consent.connect("org_1", US_REALM)
    waiting = await consent.handle("org_1", US_REALM)
    await consent.connect("org_1", OTHER_US_REALM)
    assert not simulator.state.tokens.is_connected(US_REALM)
    late = await consent.confirm(waiting)
    assert late.status_code == 409
    assert late.json()["code"] == "consent_withdrawn"
