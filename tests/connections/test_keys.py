"""Tokens no key can open, and key rotation that really finishes (S6)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select, update

from qbsync.cli import main
from qbsync.connections.token_vault import TokenPair, open_tokens, rotate_all, seal
from qbsync.crypto import CryptoError, Keyring, generate_key
from qbsync.db import Database
from qbsync.models import (
    Connection,
    ConnectionStatus,
    OutboundEvent,
    PendingGrant,
    PendingRevocation,
)
from qbsync.models.base import utcnow
from qbsync.settings import get_settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import US_REALM, Consent, load_connection


def _realm() -> str:
    return str(uuid.uuid4().int)[:19]


GONE = Keyring.parse(f"gone:{generate_key()}")


async def _seal_under_a_removed_key(db: Database, org_id: str = "org_1") -> None:
    """The row's tokens were encrypted with a key the keyring no longer lists."""
    connection = await load_connection(db, org_id)
    seal(GONE, connection, TokenPair("access-under-gone", "refresh-under-gone"))
    async with db.sessions() as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == connection.id)
            .values(
                access_token=connection.access_token,
                refresh_token=connection.refresh_token,
                token_key_id="gone",
            )
        )
        await session.commit()


async def test_unreadable_tokens_mark_the_connection_needs_reauth_and_say_why(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    await consent.connect()
    await _seal_under_a_removed_key(db)
    tested = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert tested.status_code == 200, tested.text
    credentials = next(c for c in tested.json()["checks"] if c["name"] == "credentials")
    assert credentials["outcome"] == "fail"
    assert "decrypt" in credentials["message"]
    status = (await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))).json()
    assert status["status"] == "needs_reauth"
    assert "'gone'" in status["reason"]
    assert "rotate-keys" in status["reason"]
    async with db.sessions() as session:
        told = await session.scalar(
            select(OutboundEvent).where(
                OutboundEvent.payload["status"].as_string() == "needs_reauth"
            )
        )
    assert told is not None, "the platform hears of it"
    again = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert again.status_code == 200


async def test_disconnect_always_works_even_when_the_tokens_are_unreadable(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    db: Database,
    simulator: SimulatorHandle,
) -> None:
    await consent.connect()
    await _seal_under_a_removed_key(db)
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "disconnected"
    assert body["revoked_at_intuit"] is False
    assert "Settings → Apps" in body["message"]
    row = await load_connection(db)
    assert (row.access_token, row.refresh_token, row.token_key_id) == (None, None, None)
    assert simulator.admin.revoke_calls == 0


async def test_a_ciphertext_copied_to_another_row_does_not_open(db: Database) -> None:
    """The associated data names the table, row and field: ciphertexts can't be swapped."""
    keyring = Keyring.parse(f"k:{generate_key()}")
    first = Connection(id=uuid.uuid4(), org_id="a", realm_id="1", status=ConnectionStatus.CONNECTED)
    second = Connection(
        id=uuid.uuid4(), org_id="b", realm_id="2", status=ConnectionStatus.CONNECTED
    )
    seal(keyring, first, TokenPair("first-access", "first-refresh"))
    seal(keyring, second, TokenPair("second-access", "second-refresh"))
    second.access_token = first.access_token
    with pytest.raises(CryptoError):
        open_tokens(keyring, second)
    swapped = Connection(id=first.id, org_id="a", realm_id="1", status=ConnectionStatus.CONNECTED)
    swapped.access_token, swapped.refresh_token = first.refresh_token, first.access_token
    with pytest.raises(CryptoError):
        open_tokens(keyring, swapped)
    grant = PendingGrant(id=first.id)
    grant.access_token, grant.refresh_token = first.access_token, first.refresh_token
    with pytest.raises(CryptoError):
        open_tokens(keyring, grant)


OLD = f"old:{generate_key()}"
NEW = f"new:{generate_key()}"


def _committed(database_url: str, *, key_id_spec: str, org_id: str) -> uuid.UUID:
    connection_id = uuid.uuid4()

    async def seed() -> None:
        db = Database.connect(database_url)
        async with db.sessions() as session:
            row = Connection(
                id=connection_id,
                org_id=org_id,
                realm_id=_realm(),
                status=ConnectionStatus.CONNECTED,
            )
            seal(Keyring.parse(key_id_spec), row, TokenPair("a", "r"))
            session.add(row)
            await session.commit()
        await db.dispose()

    asyncio.run(seed())
    return connection_id


def _remove(database_url: str, prefix: str) -> None:
    async def remove() -> None:
        db = Database.connect(database_url)
        async with db.sessions() as session:
            rows = await session.scalars(
                select(Connection).where(Connection.org_id.like(f"{prefix}%"))
            )
            for row in rows:
                await session.delete(row)
            await session.commit()
        await db.dispose()

    asyncio.run(remove())


def test_rotate_keys_exits_non_zero_and_names_what_it_could_not_rotate(
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A row under a key no longer configured can't be re-encrypted: say so, exit 1."""
    prefix = f"org_rk_{uuid.uuid4().hex[:6]}_"
    readable = _committed(database_url, key_id_spec=OLD, org_id=f"{prefix}ok")
    stuck = _committed(database_url, key_id_spec=f"gone:{generate_key()}", org_id=f"{prefix}x")
    monkeypatch.setenv("QBSYNC_DATABASE__URL", database_url)
    monkeypatch.setenv("QBSYNC_REDIS__URL", redis_url)
    monkeypatch.setenv("QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"{NEW},{OLD}")
    get_settings.cache_clear()
    try:
        assert main(["rotate-keys"]) == 1
    finally:
        get_settings.cache_clear()
        _remove(database_url, prefix)
    out, err = capsys.readouterr()
    assert "re-encrypted 1 row(s)" in out
    assert f"connections {stuck} (key 'gone')" in err
    assert str(readable) not in err


async def test_rotation_waits_for_a_row_someone_holds(database_url: str) -> None:
    """A row locked by a refresh is waited for, not skipped and reported done."""
    db = Database.connect(database_url)
    keyring = Keyring.parse(f"{NEW},{OLD}")
    org_id = f"org_rw_{uuid.uuid4().hex[:6]}"
    try:
        async with db.sessions() as session:
            row = Connection(
                id=uuid.uuid4(), org_id=org_id, realm_id=_realm(), status=ConnectionStatus.CONNECTED
            )
            seal(Keyring.parse(OLD), row, TokenPair("a", "r"))
            session.add(row)
            await session.commit()

        async def hold_for(seconds: float) -> None:
            async with db.sessions() as holder:
                await holder.scalar(
                    select(Connection).where(Connection.id == row.id).with_for_update()
                )
                await asyncio.sleep(seconds)
                await holder.commit()

        async def rotate(lock_timeout_ms: int) -> tuple[int, list[str]]:
            await asyncio.sleep(0.05)
            async with db.sessions() as session:
                report = await rotate_all(session, keyring, lock_timeout_ms=lock_timeout_ms)
            return report.rotated, report.remaining

        _, (rotated, remaining) = await asyncio.gather(hold_for(0.3), rotate(5_000))
        assert rotated >= 1
        assert remaining == []
        async with db.sessions() as session:
            stored = await session.get(Connection, row.id)
            assert stored is not None
            assert stored.token_key_id == "new"

        seal(Keyring.parse(OLD), row, TokenPair("a", "r"))
        async with db.sessions() as session:
            await session.merge(row)
            await session.commit()
        _, (rotated, remaining) = await asyncio.gather(hold_for(1.0), rotate(100))
        assert any("still locked" in line for line in remaining), remaining
    finally:
        async with db.sessions() as session:
            stored = await session.scalar(select(Connection).where(Connection.org_id == org_id))
            if stored is not None:
                await session.delete(stored)
            await session.commit()
        await db.dispose()


async def test_a_connection_with_readable_tokens_still_connects(
    consent: Consent, db: Database
) -> None:
    await consent.connect("org_1", US_REALM)
    assert (await load_connection(db)).token_key_id == "dev"


async def test_concurrent_callers_meeting_unreadable_tokens_tell_the_platform_once(
    live: CommittedApp, simulator: SimulatorHandle, make_token: TokenFactory, prefix: str
) -> None:
    org_id = f"{prefix}keys"
    await Consent(live.client, simulator, make_token).connect(org_id, US_REALM)
    await _seal_under_a_removed_key(live.db, org_id)
    answers = await asyncio.gather(
        *(
            live.client.post("/v1/quickbooks/test-connection", headers=bearer(make_token(org_id)))
            for _ in range(8)
        )
    )
    assert {answer.status_code for answer in answers} == {200}
    async with live.db.sessions() as session:
        told = list(
            await session.scalars(
                select(OutboundEvent.payload)
                .where(OutboundEvent.org_id == org_id)
                .order_by(OutboundEvent.created_at)
            )
        )
    assert [event["status"] for event in told] == ["connected", "needs_reauth"]


async def test_rotation_reaches_every_sealed_table(db: Database) -> None:
    """Consents and revokes waiting for Intuit are sealed too: rotation leaves none behind."""
    old = Keyring.parse(OLD)
    rows: list[PendingGrant | PendingRevocation] = [
        PendingGrant(
            id=uuid.uuid4(),
            handle_hash=uuid.uuid4().hex,
            org_id="org_rot",
            user_id="u",
            realm_id=_realm(),
            company={},
            expires_at=utcnow(),
        ),
        PendingRevocation(id=uuid.uuid4(), realm_id=_realm(), next_attempt_at=utcnow()),
    ]
    async with db.sessions() as session:
        for row in rows:
            seal(old, row, TokenPair("a", "r"))
            session.add(row)
        await session.commit()
        report = await rotate_all(session, Keyring.parse(f"{NEW},{OLD}"))
    assert report.remaining == []
    async with db.sessions() as session:
        grant = await session.get(PendingGrant, rows[0].id, populate_existing=True)
        revocation = await session.get(PendingRevocation, rows[1].id, populate_existing=True)
    assert grant is not None
    assert revocation is not None
    assert (grant.token_key_id, revocation.token_key_id) == ("new", "new")
