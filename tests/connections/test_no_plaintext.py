"""S6: after a connect, a refresh and a disconnect, no token is readable in the database, the logs
or the job queue."""

from __future__ import annotations

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select, text, update

from qbsync.connections.consent import hash_secret
from qbsync.connections.token_vault import open_tokens
from qbsync.crypto import Keyring
from qbsync.db import Database
from qbsync.models import Connection, PendingGrant
from qbsync.models.base import utcnow
from qbsync.settings import Settings
from qbsync.simulator.admin import ExpireRequest
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import US_REALM, Consent


async def _database_text(db: Database) -> str:
    async with db.sessions() as session:
        rows = []
        for table in (
            "connections",
            "pending_grants",
            "pending_revocations",
            "oauth_states",
            "outbound_events",
        ):
            result = await session.execute(text(f"SELECT CAST(t AS text) FROM {table} t"))
            rows += [row[0] for row in result]
    return "\n".join(rows)


async def test_no_plaintext_token_in_database_logs_or_jobs(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    keyring = Keyring.parse(settings.crypto.encryption_keys.get_secret_value())
    handle = await consent.handle()
    seen: set[str] = set()
    async with db.sessions() as session:
        # This consent's grant: other tests' committed rows may share the database.
        grant = await session.scalar(
            select(PendingGrant).where(PendingGrant.handle_hash == hash_secret(handle))
        )
        assert grant is not None
        held = open_tokens(keyring, grant)
        assert held is not None
        seen |= {held.access_token, held.refresh_token, handle}
        assert handle not in await _database_text(db), "only the handle's hash is stored"
    assert (await consent.confirm(handle)).status_code == 200
    async with db.sessions() as session:
        row = await session.scalar(select(Connection).where(Connection.org_id == "org_1"))
        assert row is not None
        first = open_tokens(keyring, row)
        assert first is not None
        seen |= {first.access_token, first.refresh_token}
        await session.execute(update(Connection).values(access_expires_at=utcnow()))
        await session.commit()

    simulator.admin.expire_tokens(ExpireRequest(kind="access", realm_id=US_REALM))
    tested = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert tested.json()["ok"] is True
    async with db.sessions() as session:
        row = await session.scalar(
            select(Connection)
            .where(Connection.org_id == "org_1")
            .execution_options(populate_existing=True)
        )
        assert row is not None
        second = open_tokens(keyring, row)
        assert second is not None
        seen |= {second.access_token, second.refresh_token}
    assert len(seen) == 5, "the refresh rotated both tokens"

    stored = await _database_text(db)
    queued = b" ".join(
        [value or b"" for key in await redis.keys("arq:job:*") for value in [await redis.get(key)]]
    ).decode(errors="replace")
    await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    logs = capfd.readouterr()
    log_text = logs.out + logs.err
    assert "quickbooks_connected" in log_text, "the logs were captured"
    for token in seen:
        assert token not in stored
        assert token not in queued
        assert token not in log_text
