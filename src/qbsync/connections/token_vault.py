"""Sealing a connection's OAuth tokens (S6): ciphertext in the row, plaintext only in memory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.crypto import Keyring
from qbsync.models import Connection

ROTATION_BATCH = 200


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:
        return "TokenPair(access_token=[redacted], refresh_token=[redacted])"


def _context(connection: Connection, field: str) -> str:
    return f"connections:{connection.id}:{field}"


def seal(keyring: Keyring, connection: Connection, tokens: TokenPair) -> None:
    connection.access_token = keyring.encrypt(
        tokens.access_token, context=_context(connection, "access_token")
    )
    connection.refresh_token = keyring.encrypt(
        tokens.refresh_token, context=_context(connection, "refresh_token")
    )
    connection.token_key_id = keyring.primary_key_id


def open_tokens(keyring: Keyring, connection: Connection) -> TokenPair | None:
    if connection.access_token is None or connection.refresh_token is None:
        return None
    return TokenPair(
        keyring.decrypt(connection.access_token, context=_context(connection, "access_token")),
        keyring.decrypt(connection.refresh_token, context=_context(connection, "refresh_token")),
    )


def shred(connection: Connection) -> None:
    connection.access_token = None
    connection.refresh_token = None
    connection.token_key_id = None


async def rotate_all(session: AsyncSession, keyring: Keyring) -> int:
    """Re-encrypt every row not yet under the primary key; rows are locked one batch at a time."""
    rotated = 0
    while True:
        batch = list(
            await session.scalars(
                select(Connection)
                .where(
                    Connection.access_token.is_not(None),
                    Connection.refresh_token.is_not(None),
                    or_(
                        Connection.token_key_id.is_(None),
                        Connection.token_key_id != keyring.primary_key_id,
                    ),
                )
                .limit(ROTATION_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            return rotated
        for connection in batch:
            tokens = open_tokens(keyring, connection)
            if tokens is not None:
                seal(keyring, connection, tokens)
                rotated += 1
        await session.commit()
