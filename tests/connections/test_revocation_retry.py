"""The revoke ledger: a revoke is written down before Intuit is called, and one Intuit can't take
right now is retried until it lands, unless something of ours holds the company again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text, update

from qbsync.connections import grants, token_vault
from qbsync.connections.tasks import expire_pending_grants, retry_revocations
from qbsync.crypto import Keyring, generate_key
from qbsync.db import Database
from qbsync.models import PendingGrant, PendingRevocation
from qbsync.models.base import utcnow
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import OTHER_US_REALM, US_REALM, Consent, load_connection


async def _requests(db: Database) -> list[PendingRevocation]:
    async with db.sessions() as session:
        return list(
            await session.scalars(
                select(PendingRevocation)
                .order_by(PendingRevocation.created_at)
                .execution_options(populate_existing=True)
            )
        )


async def _make_due(db: Database, *, created_days_ago: float = 0) -> None:
    async with db.sessions() as session:
        await session.execute(
            update(PendingRevocation)
            .where(PendingRevocation.done_at.is_(None))
            .values(
                next_attempt_at=utcnow(), created_at=utcnow() - timedelta(days=created_days_ago)
            )
        )
        await session.commit()


def _ctx(app: FastAPI, db: Database) -> dict[str, object]:
    return {"db": db, "queue": app.state.queue, "intuit": app.state.intuit}


async def _disconnect_while_intuit_is_down(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    realm_id: str = US_REALM,
) -> httpx.Response:
    await consent.connect("org_1", realm_id)
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="revoke"))
    return await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))


async def test_a_disconnect_intuit_could_not_hear_is_revoked_later(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    app: FastAPI,
) -> None:
    await consent.connect()
    plain = token_vault.open_tokens(app.state.intuit.keyring, await load_connection(db))
    assert plain is not None
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="revoke"))
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.json()["revoked_at_intuit"] is False
    assert "keeps trying" in response.json()["message"]
    [stored] = await _requests(db)
    assert (stored.realm_id, stored.attempts, stored.done_at) == (US_REALM, 1, None)
    async with db.sessions() as session:
        raw = str(await session.scalar(text("SELECT CAST(t AS text) FROM pending_revocations t")))
    assert plain.refresh_token not in raw
    assert plain.access_token not in raw
    assert token_vault.open_tokens(app.state.intuit.keyring, stored) == plain
    assert simulator.state.tokens.is_connected(US_REALM), "still live at Intuit"

    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 0, "Intuit still down: kept for later"  # type: ignore[arg-type]
    [again] = await _requests(db)
    assert again.attempts == 2
    assert again.next_attempt_at > utcnow() + timedelta(minutes=4)

    simulator.admin.clear_faults()
    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 1  # type: ignore[arg-type]
    [done] = await _requests(db)
    assert done.done_at is not None
    assert (done.access_token, done.refresh_token) == (None, None), "shredded once done"
    assert not simulator.state.tokens.is_connected(US_REALM)


async def test_a_reconnect_before_the_retry_keeps_the_new_connection(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    app: FastAPI,
) -> None:
    """The retry finds the company held again: revoking would cut the reconnection."""
    await _disconnect_while_intuit_is_down(consent, client, make_token, simulator)
    simulator.admin.clear_faults()
    await consent.connect()
    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 0  # type: ignore[arg-type]
    assert [request.done_at is not None for request in await _requests(db)] == [True]
    assert simulator.admin.revoke_calls == 0
    tested = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert tested.json()["ok"] is True


async def test_a_consent_made_while_a_revoke_was_being_sent_is_not_linked(
    consent: Consent, db: Database, app: FastAPI
) -> None:
    """Intuit may act on a revoke at any moment of its call: a grant exchanged meanwhile may be
    dead, so it is refused rather than shown as connected."""
    handle = await consent.handle("org_1", OTHER_US_REALM)
    async with db.sessions() as session:
        request = PendingRevocation(
            id=uuid.uuid4(),
            realm_id=OTHER_US_REALM,
            next_attempt_at=utcnow() + timedelta(minutes=2),
            attempt_started_at=utcnow(),
        )
        token_vault.seal(app.state.intuit.keyring, request, token_vault.TokenPair("a", "r"))
        session.add(request)
        await session.commit()
    refused = await consent.confirm(handle)
    assert refused.status_code == 409
    assert refused.json()["code"] == "consent_withdrawn"
    landed = await consent.finish(consent.consent(await consent.start(), OTHER_US_REALM))
    assert landed["reason"] == ["consent_withdrawn"]


async def test_a_dropped_grant_is_kept_if_its_company_is_held_by_the_retry(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: FastAPI
) -> None:
    state = await consent.start()
    simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="companyinfo"))
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=1, path="revoke"))
    assert (await consent.finish(consent.consent(state)))["reason"] == ["not_company_admin"]
    assert len(await _requests(db)) == 1
    simulator.admin.clear_faults()
    await consent.connect()
    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 0  # type: ignore[arg-type]
    assert simulator.state.tokens.is_connected(US_REALM)


async def test_a_row_this_worker_cannot_read_is_kept_for_a_worker_that_can(
    db: Database, app: FastAPI
) -> None:
    """A rolling key rollout: the revoke was sealed under a key this worker lacks yet."""
    async with db.sessions() as session:
        request = PendingRevocation(
            id=uuid.uuid4(), realm_id="9341450000000077", next_attempt_at=utcnow()
        )
        token_vault.seal(
            Keyring.parse(f"k2:{generate_key()}"), request, token_vault.TokenPair("a", "r")
        )
        session.add(request)
        await session.commit()
    assert await retry_revocations(_ctx(app, db)) == 0  # type: ignore[arg-type]
    [kept] = await _requests(db)
    assert kept.done_at is None
    assert kept.refresh_token is not None
    assert kept.next_attempt_at > utcnow()


async def test_a_revoke_is_given_up_after_a_week(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    app: FastAPI,
    capfd: pytest.CaptureFixture[str],
) -> None:
    await _disconnect_while_intuit_is_down(consent, client, make_token, simulator, OTHER_US_REALM)
    await _make_due(db, created_days_ago=8)
    await retry_revocations(_ctx(app, db))  # type: ignore[arg-type]
    [given_up] = await _requests(db)
    assert given_up.done_at is not None
    logged = capfd.readouterr()
    assert "revoke_given_up" in logged.out + logged.err


async def test_a_revoke_call_is_cut_off_before_its_claim_runs_out(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However slowly Intuit answers, an attempt ends within its claim, so a consent is never
    judged against a revoke that is secretly still out."""
    monkeypatch.setattr(grants, "REVOKE_SEND_LIMIT", timedelta(seconds=0.3))
    await consent.connect()
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=3, path="revoke"))
    started = asyncio.get_running_loop().time()
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert asyncio.get_running_loop().time() - started < 2.5
    assert "keeps trying" in response.json()["message"]
    [stored] = await _requests(db)
    assert (stored.attempt_started_at, stored.done_at) == (None, None)
    assert stored.attempt_ended_at is not None


async def test_a_late_sender_leaves_a_newer_claim_alone(
    db: Database, app: FastAPI, simulator: SimulatorHandle
) -> None:
    """Two senders of one row: the first to finish must not erase the other's in-flight stamp."""
    pair = token_vault.TokenPair("access", "refresh")
    async with db.sessions() as session:
        ticket = await grants.decide_revoke(session, app.state.intuit.keyring, "934145000099", pair)
        await session.commit()
    assert ticket is not None
    newer = utcnow() + timedelta(seconds=1)
    async with db.sessions() as session:
        await session.execute(
            update(PendingRevocation).values(attempt_started_at=newer, next_attempt_at=newer)
        )
        await session.commit()
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=1, path="revoke"))
    outcome = await grants.send_revoke(db, app.state.queue, app.state.intuit, ticket, pair)
    assert outcome is grants.RevokeOutcome.RETRYING
    [stored] = await _requests(db)
    assert stored.attempt_started_at == newer
    assert stored.next_attempt_at == newer, "the newer sender reschedules its own attempt"


async def test_the_expire_cron_never_waits_on_a_row_someone_holds(
    consent: Consent, database_url: str, app: FastAPI
) -> None:
    """It takes no lock in the lifecycle's order, so it skips locked rows instead of waiting."""
    db = Database.connect(database_url)
    try:
        async with db.sessions() as session:
            old = PendingGrant(
                id=uuid.uuid4(),
                handle_hash=uuid.uuid4().hex,
                org_id=f"org_ex_{uuid.uuid4().hex[:6]}",
                user_id="u",
                realm_id="934145000098",
                company={},
                expires_at=utcnow() - timedelta(days=2),
            )
            session.add(old)
            await session.commit()
        async with db.sessions() as holder:
            await holder.scalar(
                select(PendingGrant).where(PendingGrant.id == old.id).with_for_update()
            )
            ctx = {"db": db, "queue": app.state.queue, "intuit": app.state.intuit}
            await asyncio.wait_for(expire_pending_grants(ctx), timeout=5)  # type: ignore[arg-type]
            await holder.commit()
        async with db.sessions() as session:
            assert await session.get(PendingGrant, old.id) is not None, "skipped, not waited for"
            await session.execute(delete(PendingGrant).where(PendingGrant.id == old.id))
            await session.commit()
    finally:
        await db.dispose()
