"""Sealing OAuth tokens (S6): ciphertext in the row, plaintext only in memory.

Each ciphertext is bound to its table, row id and field (AES-GCM associated data), so a value
copied into another row or field fails to decrypt instead of handing one company's access to
another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy import or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.crypto import CryptoError, Keyring
from qbsync.models import Connection, PendingGrant, PendingRevocation

ROTATION_BATCH = 200
# rotate-keys waits this long for a row another transaction holds, then reports it as remaining.
ROTATION_LOCK_TIMEOUT_MS = 30_000
LOCK_NOT_AVAILABLE = "55P03"
SealedModel = TypeVar("SealedModel", Connection, PendingGrant, PendingRevocation)


class SealedRow(Protocol):
    """A row that carries a sealed token pair: a connection, a pending grant or revocation."""

    __tablename__: str
    id: uuid.UUID
    token_key_id: str | None
    access_token: str | None
    refresh_token: str | None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:
        return "TokenPair(access_token=[redacted], refresh_token=[redacted])"


def _context(row: SealedRow, field: str) -> str:
    return f"{row.__tablename__}:{row.id}:{field}"


def seal(keyring: Keyring, row: SealedRow, tokens: TokenPair) -> None:
    row.access_token = keyring.encrypt(tokens.access_token, context=_context(row, "access_token"))
    row.refresh_token = keyring.encrypt(
        tokens.refresh_token, context=_context(row, "refresh_token")
    )
    row.token_key_id = keyring.primary_key_id


def open_tokens(keyring: Keyring, row: SealedRow) -> TokenPair | None:
    """The plaintext pair, None when the row holds none; CryptoError when it can't be read."""
    if row.access_token is None or row.refresh_token is None:
        return None
    return TokenPair(
        keyring.decrypt(row.access_token, context=_context(row, "access_token")),
        keyring.decrypt(row.refresh_token, context=_context(row, "refresh_token")),
    )


def shred(row: SealedRow) -> None:
    row.access_token = None
    row.refresh_token = None
    row.token_key_id = None


@dataclass
class RotationReport:
    rotated: int = 0
    # "table id (key id)" of each row still under an old key after the run, and why.
    remaining: list[str] = field(default_factory=list)


async def rotate_all(
    session: AsyncSession, keyring: Keyring, *, lock_timeout_ms: int = ROTATION_LOCK_TIMEOUT_MS
) -> RotationReport:
    """Re-encrypt every sealed row not under the primary key, waiting for rows others lock.

    A row whose ciphertext no configured key opens is left as it is and reported, as is a row
    still locked after the lock timeout.
    """
    report = RotationReport()
    await _rotate_table(session, keyring, Connection, report, lock_timeout_ms)
    await _rotate_table(session, keyring, PendingGrant, report, lock_timeout_ms)
    await _rotate_table(session, keyring, PendingRevocation, report, lock_timeout_ms)
    return report


async def _rotate_table(
    session: AsyncSession,
    keyring: Keyring,
    model: type[SealedModel],
    report: RotationReport,
    lock_timeout_ms: int,
) -> None:
    unreadable: set[uuid.UUID] = set()
    while True:
        await session.execute(
            text("SELECT set_config('lock_timeout', :timeout, true)"),
            {"timeout": f"{int(lock_timeout_ms)}ms"},
        )
        statement = (
            select(model)
            .where(
                model.access_token.is_not(None),
                model.refresh_token.is_not(None),
                or_(model.token_key_id.is_(None), model.token_key_id != keyring.primary_key_id),
            )
            .order_by(model.id)
            .limit(ROTATION_BATCH)
            .with_for_update()
        )
        if unreadable:
            statement = statement.where(model.id.not_in(unreadable))
        try:
            batch = list(await session.scalars(statement))
        except DBAPIError as error:
            await session.rollback()
            if _sqlstate(error) != LOCK_NOT_AVAILABLE:
                raise
            report.remaining.append(
                f"{model.__tablename__}: rows still locked after {lock_timeout_ms} ms"
            )
            return
        if not batch:
            await session.commit()
            break
        for row in batch:
            try:
                tokens = open_tokens(keyring, row)
            except CryptoError as error:
                unreadable.add(row.id)
                report.remaining.append(
                    f"{model.__tablename__} {row.id} (key {row.token_key_id!r}): {error}"
                )
                continue
            if tokens is not None:
                seal(keyring, row, tokens)
                report.rotated += 1
        await session.commit()


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return str(code) if code is not None else None
