"""Pool discipline (R13): more concurrent work than pooled connections, all waiting on Intuit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import update

from qbsync.connections.tokens import ConnectionTokens
from qbsync.models import Connection, ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import US_REALM, Consent, load_connection

POOL = 3
SLOW_TOKEN_ENDPOINT = 0.5


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    async with committed_app(settings, database_url, redis, prefix, pool_size=POOL) as running:
        yield running


async def _connect_with_a_due_token(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, org_id: str
) -> Connection:
    await Consent(live.client, simulator, make_token).connect(org_id, US_REALM)
    connection = await load_connection(live.db, org_id)
    async with live.db.sessions() as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == connection.id)
            .values(access_expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    simulator.admin.inject(
        FaultSpec(kind="delay", delay_seconds=SLOW_TOKEN_ENDPOINT, path="tokens/bearer", times=1)
    )
    return connection


async def test_four_times_the_pool_of_requests_and_jobs_share_one_slow_refresh(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """R13: four times the pool size of test-connection calls and as many jobs, an expired
    token and a slow token endpoint → every one succeeds, one refresh, no pool timeout, and no
    task ever holds a pooled connection while Intuit answers or checks out a second one."""
    org_id = f"{prefix}r13"
    connection = await _connect_with_a_due_token(live, simulator, make_token, org_id)
    refreshes = simulator.admin.refresh_calls
    live.guard.violations.clear()

    async def request() -> httpx.Response:
        return await live.client.post(
            "/v1/quickbooks/test-connection", headers=bearer(make_token(org_id))
        )

    async def job() -> str:
        tokens = ConnectionTokens(live.db, live.intuit, connection.id, live.queue)
        company = await live.intuit.client(US_REALM, tokens).company_info()
        return company.company_name or ""

    answers = await asyncio.gather(
        *(request() for _ in range(4 * POOL)), *(job() for _ in range(4 * POOL))
    )
    responses = [answer for answer in answers if isinstance(answer, httpx.Response)]
    assert [response.status_code for response in responses] == [200] * 4 * POOL
    for response in responses:
        checks = {check["name"]: check["outcome"] for check in response.json()["checks"]}
        assert checks["credentials"] == "pass", response.text
    names = [answer for answer in answers if isinstance(answer, str)]
    assert names == ["Craig's Design and Landscaping"] * 4 * POOL
    assert simulator.admin.refresh_calls - refreshes == 1
    assert live.guard.requests_seen >= 4 * POOL
    assert live.guard.violations == []
    stored = await load_connection(live.db, org_id)
    assert stored.status is ConnectionStatus.CONNECTED
    assert stored.refresh_lease_id is None, "the lease is given back"


async def test_a_disconnect_and_a_confirm_hold_no_connection_while_intuit_answers(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    """R13: the revoke call of a disconnect and the exchange and reads of a consent happen
    between short transactions."""
    org_id = f"{prefix}dis"
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.2, path="revoke", times=1))
    await Consent(live.client, simulator, make_token).connect(org_id, US_REALM)
    response = await live.client.delete(
        "/v1/quickbooks/connection", headers=bearer(make_token(org_id))
    )
    assert response.status_code == 200
    assert response.json()["revoked_at_intuit"] is True
    assert live.guard.requests_seen >= 4, "exchange, company reads and revoke were watched"
    assert live.guard.violations == []


async def test_a_pool_timeout_is_a_503_with_retry_after(
    settings: Settings,
    database_url: str,
    redis: ArqRedis,
    make_token: TokenFactory,
    prefix: str,
) -> None:
    """Overload answers 503 with Retry-After, never a 500."""
    async with committed_app(settings, database_url, redis, prefix, pool_size=1) as live:
        live.db.engine.sync_engine.pool._timeout = 0.2  # type: ignore[attr-defined]
        async with live.db.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            response = await live.client.get(
                "/v1/quickbooks/connection", headers=bearer(make_token(f"{prefix}busy"))
            )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_busy"
