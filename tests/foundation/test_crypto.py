"""Tokens at rest (S6): encrypted with a key id, rotated without downtime, never in plaintext."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest
from sqlalchemy import text

from qbsync.cli import main
from qbsync.connections.token_vault import TokenPair, open_tokens, rotate_all, seal
from qbsync.crypto import CryptoError, Keyring, generate_key, key_id_of
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus
from qbsync.settings import get_settings

OLD = f"old:{generate_key()}"
NEW = f"new:{generate_key()}"
ACCESS = "eyJhbGciOi-access-token-plaintext-" + uuid.uuid4().hex
REFRESH = "AB11-refresh-token-plaintext-" + uuid.uuid4().hex


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old = Keyring.parse(OLD)
    sealed = old.encrypt("hello", context="c")
    assert key_id_of(sealed) == "old"
    both = Keyring.parse(f"{NEW},{OLD}")
    assert both.decrypt(sealed, context="c") == "hello"
    assert key_id_of(both.encrypt("hello", context="c")) == "new"


def test_a_ciphertext_is_bound_to_its_context() -> None:
    keyring = Keyring.parse(OLD)
    sealed = keyring.encrypt("hello", context="connections:1:access_token")
    with pytest.raises(CryptoError, match="authentication"):
        keyring.decrypt(sealed, context="connections:2:access_token")


def test_a_removed_key_is_named_when_decryption_needs_it() -> None:
    sealed = Keyring.parse(OLD).encrypt("hello", context="c")
    with pytest.raises(CryptoError, match="'old'"):
        Keyring.parse(NEW).decrypt(sealed, context="c")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nokey",
        "bad id:" + generate_key(),
        "k:not-base64!",
        "k:" + base64.b64encode(b"short").decode(),
    ],
    ids=["empty", "no-colon", "bad-key-id", "not-base64", "short-key"],
)
def test_bad_key_configuration_is_refused_without_echoing_keys(spec: str) -> None:
    with pytest.raises(CryptoError, match="QBSYNC_CRYPTO__ENCRYPTION_KEYS") as raised:
        Keyring.parse(spec)
    secret_part = spec.partition(":")[2]
    if secret_part:
        assert secret_part not in str(raised.value)


async def test_rotate_keys_reencrypts_every_row_and_leaves_no_plaintext(db: Database) -> None:
    """S6: old key decrypts, new key encrypts, the rotation re-encrypts all rows."""
    old = Keyring.parse(OLD)
    connections = []
    async with db.sessions() as session:
        for index in range(3):
            connection = Connection(
                id=uuid.uuid4(),
                org_id=f"org_rot_{index}_{uuid.uuid4().hex[:6]}",
                realm_id=f"934145000000000{index}",
                status=ConnectionStatus.CONNECTED,
            )
            seal(old, connection, TokenPair(f"{ACCESS}-{index}", f"{REFRESH}-{index}"))
            session.add(connection)
            connections.append(connection)
        await session.commit()

        dump = await session.execute(text("SELECT CAST(connections AS text) FROM connections"))
        everything = " ".join(row[0] for row in dump)
        assert ACCESS not in everything
        assert REFRESH not in everything

        rotated_keyring = Keyring.parse(f"{NEW},{OLD}")
        assert (await rotate_all(session, rotated_keyring)).rotated == 3
        again = await rotate_all(session, rotated_keyring)
        assert (again.rotated, again.remaining) == (0, [])

    new_only = Keyring.parse(NEW)
    async with db.sessions() as session:
        for index, original in enumerate(connections):
            row = await session.get(Connection, original.id, populate_existing=True)
            assert row is not None
            assert row.token_key_id == "new"
            assert open_tokens(new_only, row) == TokenPair(
                f"{ACCESS}-{index}", f"{REFRESH}-{index}"
            )


@pytest.mark.parametrize(
    "ciphertext",
    ["v1.old.AAAA", "v1.old.!!!notbase64", "v1.old.", "v1.old." + "A" * 30, "garbage", "v1.old.-_"],
)
def test_a_damaged_ciphertext_is_a_crypto_error_never_a_crash(ciphertext: str) -> None:
    """Whatever sits in the column, callers get the one error they handle (needs_reauth)."""
    with pytest.raises(CryptoError):
        Keyring.parse(OLD).decrypt(ciphertext, context="connections:1:access_token")


def test_token_pairs_never_print_their_values() -> None:
    pair = TokenPair(ACCESS, REFRESH)
    assert ACCESS not in repr(pair)
    assert ACCESS not in str(pair)


def test_generated_keys_are_32_bytes() -> None:
    assert len(base64.b64decode(generate_key())) == 32


def test_the_rotate_keys_command_reencrypts_committed_rows(
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """S6: `qbsync rotate-keys` against the real database, as an operator runs it."""
    org_id = f"org_cli_{uuid.uuid4().hex[:8]}"
    connection_id = uuid.uuid4()

    async def seed() -> None:
        db = Database.connect(database_url)
        async with db.sessions() as session:
            connection = Connection(
                id=connection_id, org_id=org_id, realm_id="1", status=ConnectionStatus.CONNECTED
            )
            seal(Keyring.parse(OLD), connection, TokenPair(ACCESS, REFRESH))
            session.add(connection)
            await session.commit()
        await db.dispose()

    async def read_back_and_remove() -> tuple[str | None, TokenPair | None]:
        db = Database.connect(database_url)
        async with db.sessions() as session:
            row = await session.get(Connection, connection_id)
            assert row is not None
            result = row.token_key_id, open_tokens(Keyring.parse(NEW), row)
            await session.delete(row)
            await session.commit()
        await db.dispose()
        return result

    asyncio.run(seed())
    monkeypatch.setenv("QBSYNC_DATABASE__URL", database_url)
    monkeypatch.setenv("QBSYNC_REDIS__URL", redis_url)
    monkeypatch.setenv("QBSYNC_CRYPTO__ENCRYPTION_KEYS", f"{NEW},{OLD}")
    get_settings.cache_clear()
    try:
        assert main(["rotate-keys"]) == 0
    finally:
        get_settings.cache_clear()
    assert "with key 'new'" in capsys.readouterr().out
    key_id, tokens = asyncio.run(read_back_and_remove())
    assert key_id == "new"
    assert tokens == TokenPair(ACCESS, REFRESH)
