"""Token upkeep: single-flight refresh across processes (R6), transient failures (R7)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import delete, select, update

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tasks import refresh_expiring_tokens
from qbsync.connections.tokens import ConnectionTokens, ConnectionUnusableError
from qbsync.context import WorkerContext
from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import Connection, ConnectionStatus, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.qbo import InvalidGrantError, TokenEndpointUnavailableError
from qbsync.queue import JobQueue
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory
from tests.connections.conftest import US_REALM, Consent, expire_access_token, load_connection

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
JOBS_PER_PROCESS = 50


@pytest.fixture
async def committed_db(database_url: str) -> AsyncIterator[Database]:
    """Rows other processes can see; removed again after the test."""
    db = Database.connect(database_url)
    yield db
    async with db.sessions() as session:
        await session.execute(delete(Connection).where(Connection.org_id.like("org_r6_%")))
        await session.execute(delete(OutboundEvent).where(OutboundEvent.org_id.like("org_r6_%")))
        await session.commit()
    await db.dispose()


async def test_two_hundred_jobs_in_four_processes_cause_one_refresh(
    simulator: SimulatorHandle,
    settings: Settings,
    committed_db: Database,
    redis: ArqRedis,
    make_token: TokenFactory,
    database_url: str,
    redis_url: str,
) -> None:
    """R6: an expired access token, 200 concurrent jobs across processes → one token call."""
    org_id = f"org_r6_{uuid.uuid4().hex[:8]}"
    app = create_app(settings, database=committed_db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            await Consent(client, simulator, make_token).connect(org_id, US_REALM)
    connection = await load_connection(committed_db, org_id)
    async with committed_db.sessions() as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == connection.id)
            .values(access_expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    refreshes_before = simulator.admin.refresh_calls

    env = {
        **os.environ,
        "QBSYNC_ENV": "test",
        "QBSYNC_DATABASE__URL": database_url,
        "QBSYNC_REDIS__URL": redis_url,
        "QBSYNC_INTUIT__TOKEN_URL": simulator.token_url,
        "QBSYNC_INTUIT__API_BASE_URL": simulator.base_url,
    }
    start_at = time.time() + 3.0
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.connections.refresh_probe",
            str(connection.id),
            str(JOBS_PER_PROCESS),
            str(start_at),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    outputs = await asyncio.gather(*(process.communicate() for process in processes))
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()[-2000:]
    seen = {token for stdout, _ in outputs for token in json.loads(stdout)}

    assert simulator.admin.refresh_calls - refreshes_before == 1
    refreshed = await load_connection(committed_db, org_id)
    assert refreshed.status is ConnectionStatus.CONNECTED
    assert refreshed.access_expires_at is not None
    assert refreshed.access_expires_at > utcnow() + timedelta(minutes=30)
    assert len(seen) == 1, "every job got the one new token"


async def test_token_endpoint_down_keeps_the_connection_and_defers(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: object
) -> None:
    """R7: 5xx from the token endpoint → retryable error, connection stays connected."""
    await consent.connect()
    await expire_access_token(db)
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=5, path="tokens/bearer"))
    intuit: IntuitAccess = app.state.intuit  # type: ignore[attr-defined]
    connection = await load_connection(db)
    with pytest.raises(TokenEndpointUnavailableError) as raised:
        await ConnectionTokens(db, intuit, connection.id).access_token()
    assert raised.value.retryable
    after = await load_connection(db)
    assert after.status is ConnectionStatus.CONNECTED
    assert after.refresh_token == connection.refresh_token


async def test_token_endpoint_timeout_keeps_the_connection(
    consent: Consent,
    simulator: SimulatorHandle,
    db: Database,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    """R7: a timeout is not a verdict on the token."""
    await consent.connect()
    await expire_access_token(db)
    hurried = settings.model_copy(
        update={"intuit": settings.intuit.model_copy(update={"timeout_seconds": 0.2})}
    )
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=2, times=1, path="tokens/bearer"))
    connection = await load_connection(db)
    async with httpx.AsyncClient() as http:
        impatient = IntuitAccess.build(hurried, http, redis)
        with pytest.raises(TokenEndpointUnavailableError):
            await ConnectionTokens(db, impatient, connection.id).access_token()
    after = await load_connection(db)
    assert after.status is ConnectionStatus.CONNECTED
    assert after.refresh_token == connection.refresh_token


async def test_invalid_grant_marks_needs_reauth_and_tells_the_platform(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: object
) -> None:
    """R7: only invalid_grant, checked against stored tokens under the lock, is fatal."""
    await consent.connect()
    await expire_access_token(db)
    simulator.admin.disconnect(US_REALM)
    intuit: IntuitAccess = app.state.intuit  # type: ignore[attr-defined]
    connection = await load_connection(db)
    with pytest.raises(InvalidGrantError):
        await ConnectionTokens(db, intuit, connection.id).access_token()
    after = await load_connection(db)
    assert after.status is ConnectionStatus.NEEDS_REAUTH
    assert after.refresh_token is None
    async with db.sessions() as session:
        events = list(
            await session.scalars(select(OutboundEvent).order_by(OutboundEvent.created_at))
        )
    assert events[-1].payload["status"] == "needs_reauth"
    with pytest.raises(ConnectionUnusableError):
        await ConnectionTokens(db, intuit, connection.id).access_token()


async def test_the_upkeep_cron_rolls_tokens_nearing_idle_expiry(
    consent: Consent,
    simulator: SimulatorHandle,
    db: Database,
    app: object,
    settings: Settings,
    redis: ArqRedis,
) -> None:
    await consent.connect()
    async with db.sessions() as session:
        await session.execute(
            update(Connection).values(
                refresh_expires_at=utcnow() + timedelta(days=3),
                last_refreshed_at=utcnow() - timedelta(days=90),
            )
        )
        await session.commit()
    ctx: WorkerContext = {
        "settings": settings,
        "db": db,
        "queue": JobQueue(redis, settings.redis.queue_name),
        "http": app.state.http,  # type: ignore[attr-defined]
        "redis": redis,
        "intuit": app.state.intuit,  # type: ignore[attr-defined]
    }
    before = simulator.admin.refresh_calls
    assert await refresh_expiring_tokens(ctx) == 1
    assert simulator.admin.refresh_calls == before + 1
    after = await load_connection(db)
    assert after.refresh_expires_at is not None
    assert after.refresh_expires_at > utcnow() + timedelta(days=90)
    assert after.hard_expiry_warned_at is None
    assert await refresh_expiring_tokens(ctx) == 0, "nothing is due right after a refresh"

    async with db.sessions() as session:
        await session.execute(
            update(Connection).values(refresh_hard_expires_at=utcnow() + timedelta(days=10))
        )
        await session.commit()
    assert await refresh_expiring_tokens(ctx) == 0
    assert (await load_connection(db)).hard_expiry_warned_at is not None
    async with db.sessions() as session:
        warning = await session.scalar(
            select(OutboundEvent).where(OutboundEvent.payload["warning"].as_string().is_not(None))
        )
    assert warning is not None
    assert warning.payload["warning"] == "reconnect_required_soon"


async def test_one_job_reads_its_token_once_then_reuses_it(
    consent: Consent, db: Database, app: object
) -> None:
    """A job's calls don't each cost a database read; a rejected token is looked up again."""
    await consent.connect()
    intuit: IntuitAccess = app.state.intuit  # type: ignore[attr-defined]
    connection = await load_connection(db)
    tokens = ConnectionTokens(db, intuit, connection.id)
    first = await tokens.access_token()
    async with db.sessions() as session:
        await session.execute(update(Connection).values(access_token=None, refresh_token=None))
        await session.commit()
    assert await tokens.access_token() == first
    with pytest.raises(ConnectionUnusableError):
        await tokens.access_token(force_refresh=True)
