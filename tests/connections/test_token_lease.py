"""The refresh lease's edge cases: a refresh refused after someone else rotated, a company
switched under a job, a caller cancelled mid-refresh."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tokens import ConnectionTokens, ConnectionUnusableError
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.simulator.admin import ExpireRequest
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import (
    OTHER_US_REALM,
    US_REALM,
    Consent,
    expire_access_token,
    load_connection,
)


async def test_a_refused_refresh_answers_the_pair_someone_else_stored_meanwhile(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: FastAPI
) -> None:
    """R7: invalid_grant is a verdict only on the token storage still holds. Here another
    process stored a new pair while our call was in flight: we answer that pair, not a
    reconnect."""
    await consent.connect()
    await expire_access_token(db)
    simulator.admin.expire_tokens(ExpireRequest(kind="refresh", realm_id=US_REALM))
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.4, path="tokens/bearer"))
    intuit: IntuitAccess = app.state.intuit
    connection = await load_connection(db)
    asking = asyncio.create_task(ConnectionTokens(db, intuit, connection.id).access_token())
    await asyncio.sleep(0.15)
    newer = simulator.admin.connect(US_REALM)
    async with db.sessions() as session:
        row = await session.get(Connection, connection.id, populate_existing=True)
        assert row is not None
        token_vault.seal(
            intuit.keyring, row, token_vault.TokenPair(newer.access_token, newer.refresh_token)
        )
        row.access_expires_at = utcnow() + timedelta(hours=1)
        await session.commit()
    assert await asking == newer.access_token
    after = await load_connection(db)
    assert after.status is ConnectionStatus.CONNECTED
    assert after.refresh_lease_id is None


async def test_a_job_started_for_one_company_gets_no_token_of_the_next(
    consent: Consent, db: Database, app: FastAPI
) -> None:
    """R12: a provider that served company A refuses once the org is linked to company B."""
    await consent.connect("org_1", US_REALM)
    intuit: IntuitAccess = app.state.intuit
    connection = await load_connection(db)
    tokens = ConnectionTokens(db, intuit, connection.id)
    await tokens.access_token()
    await consent.connect("org_1", OTHER_US_REALM)
    with pytest.raises(ConnectionUnusableError, match="another QuickBooks company"):
        await tokens.access_token(force_refresh=True)


async def test_a_caller_cancelled_mid_refresh_gives_the_lease_back(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: FastAPI
) -> None:
    """A request whose client went away must not leave the next caller waiting on its lease."""
    await consent.connect()
    await expire_access_token(db)
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=2.0, path="tokens/bearer"))
    intuit: IntuitAccess = app.state.intuit
    connection = await load_connection(db)
    asking = asyncio.create_task(ConnectionTokens(db, intuit, connection.id).access_token())
    await asyncio.sleep(0.3)
    assert (await load_connection(db)).refresh_lease_id is not None
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    await asyncio.sleep(0.1)
    assert (await load_connection(db)).refresh_lease_id is None
    simulator.admin.clear_faults()
    fresh = await ConnectionTokens(db, intuit, connection.id).access_token()
    assert fresh


async def test_a_lease_left_by_a_dead_process_runs_out(
    consent: Consent, db: Database, app: FastAPI
) -> None:
    await consent.connect()
    await expire_access_token(db)
    async with db.sessions() as session:
        await session.execute(
            update(Connection).values(
                refresh_lease_id="dead-process", refresh_lease_until=utcnow() + timedelta(seconds=1)
            )
        )
        await session.commit()
    intuit: IntuitAccess = app.state.intuit
    connection = await load_connection(db)
    started = asyncio.get_running_loop().time()
    assert await ConnectionTokens(db, intuit, connection.id).access_token()
    assert asyncio.get_running_loop().time() - started >= 0.9
    assert (await load_connection(db)).refresh_lease_id is None


async def test_a_person_is_not_kept_waiting_on_a_dead_processs_lease(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    """Test connection waits a few seconds for another caller's refresh, then says to retry."""
    await consent.connect()
    await expire_access_token(db)
    async with db.sessions() as session:
        await session.execute(
            update(Connection).values(
                refresh_lease_id="dead-process", refresh_lease_until=utcnow() + timedelta(minutes=1)
            )
        )
        await session.commit()
    started = asyncio.get_running_loop().time()
    tested = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert asyncio.get_running_loop().time() - started < 10
    credentials = next(c for c in tested.json()["checks"] if c["name"] == "credentials")
    assert credentials["outcome"] == "fail"
    assert "being renewed" in credentials["message"]
    assert (await load_connection(db)).status is ConnectionStatus.CONNECTED
