"""Token upkeep: one refresh at a time per connection, across every process (R6, R7).

The connection row is locked (`SELECT … FOR UPDATE`) for the refresh, the expiry is checked again
once the lock is held, and the new pair is committed in that same short transaction before anyone
uses it. A token endpoint that fails with 5xx or times out leaves the connection `connected`; only
`invalid_grant` against the refresh token storage holds right now marks it `needs_reauth`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.errors import ConflictError
from qbsync.models import Connection, ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.notify import service as notify
from qbsync.qbo import InvalidGrantError, TokenSet
from qbsync.queue import JobQueue, take_pending

# Refresh this long before the access token expires, so no call starts with a dying token.
ACCESS_MARGIN = timedelta(minutes=5)
log = structlog.get_logger(__name__)


class ConnectionUnusableError(ConflictError):
    """The connection can't make calls until the user reconnects; retrying won't help."""

    code = "connection_not_usable"


def needs_refresh(connection: Connection, now: datetime) -> bool:
    return (
        connection.access_expires_at is None or connection.access_expires_at - now <= ACCESS_MARGIN
    )


class ConnectionTokens:
    """An `AccessTokenProvider` for one connection, safe to share between concurrent calls."""

    def __init__(
        self,
        db: Database,
        intuit: IntuitAccess,
        connection_id: uuid.UUID,
        queue: JobQueue | None = None,
    ) -> None:
        self._db = db
        self._intuit = intuit
        self._connection_id = connection_id
        # Without a queue, the platform still hears of a dead grant through the redrive cron.
        self._queue = queue
        self._last_token: str | None = None
        # A provider serves one job: its calls reuse the token instead of reading the row each time.
        self._last_expires_at: datetime | None = None

    async def access_token(self, *, force_refresh: bool = False) -> str:
        expires_at = self._last_expires_at
        fresh_enough = expires_at is not None and expires_at - utcnow() > ACCESS_MARGIN
        if not force_refresh and self._last_token and fresh_enough:
            return self._last_token
        rejected = self._last_token if force_refresh else None
        async with self._db.sessions() as session:
            connection = await self._load(session, lock=False)
            tokens = self._open(connection)
            if not needs_refresh(connection, utcnow()) and tokens.access_token != rejected:
                self._remember(tokens.access_token, connection.access_expires_at)
                return tokens.access_token
        return await self._refresh(rejected)

    def _remember(self, token: str, expires_at: datetime | None) -> None:
        self._last_token = token
        self._last_expires_at = expires_at

    async def refresh_now(self, *, unless_refreshed_after: datetime) -> None:
        """Roll the refresh token forward (upkeep), unless someone did so recently."""
        await self._refresh(None, unless_refreshed_after=unless_refreshed_after)

    async def _refresh(
        self, rejected: str | None, *, unless_refreshed_after: datetime | None = None
    ) -> str:
        async with self._db.sessions() as session:
            connection = await self._load(session, lock=True)
            tokens = self._open(connection)
            # Another worker may have refreshed while we waited for the lock.
            if unless_refreshed_after is not None:
                recent = connection.last_refreshed_at
                if recent is not None and recent > unless_refreshed_after:
                    await session.commit()
                    return tokens.access_token
            elif not needs_refresh(connection, utcnow()) and tokens.access_token != rejected:
                await session.commit()
                self._remember(tokens.access_token, connection.access_expires_at)
                return tokens.access_token
            try:
                fresh = await self._intuit.oauth.refresh(tokens.refresh_token)
            except InvalidGrantError:
                # Storage holds the latest refresh token (we hold the lock), so Intuit really
                # refused it: the user must reconnect.
                mark_needs_reauth(
                    session, connection, "QuickBooks refused the stored refresh token"
                )
                await session.commit()
                if self._queue is not None:
                    await self._queue.enqueue_all(take_pending(session))
                log.warning("connection_needs_reauth", connection_id=str(connection.id))
                raise
            store_tokens(self._intuit, connection, fresh)
            await session.commit()
            log.info("access_token_refreshed", connection_id=str(connection.id))
            token = fresh.access_token.get_secret_value()
            self._remember(token, fresh.access_expires_at)
            return token

    async def _load(self, session: AsyncSession, *, lock: bool) -> Connection:
        statement = select(Connection).where(Connection.id == self._connection_id)
        if lock:
            statement = statement.with_for_update()
        connection = await session.scalar(statement.execution_options(populate_existing=True))
        if connection is None or connection.status is not ConnectionStatus.CONNECTED:
            raise ConnectionUnusableError(
                "QuickBooks is not connected. Reconnect it from the integration settings.",
            )
        return connection

    def _open(self, connection: Connection) -> token_vault.TokenPair:
        tokens = token_vault.open_tokens(self._intuit.keyring, connection)
        if tokens is None:
            raise ConnectionUnusableError(
                "QuickBooks is not connected. Reconnect it from the integration settings."
            )
        return tokens


def store_tokens(intuit: IntuitAccess, connection: Connection, fresh: TokenSet) -> None:
    token_vault.seal(
        intuit.keyring,
        connection,
        token_vault.TokenPair(
            fresh.access_token.get_secret_value(), fresh.refresh_token.get_secret_value()
        ),
    )
    connection.access_expires_at = fresh.access_expires_at
    connection.refresh_expires_at = fresh.refresh_expires_at
    if fresh.refresh_hard_expires_at is not None:
        connection.refresh_hard_expires_at = fresh.refresh_hard_expires_at
    connection.last_refreshed_at = utcnow()
    connection.last_error = None


def mark_needs_reauth(session: AsyncSession, connection: Connection, reason: str) -> None:
    connection.status = ConnectionStatus.NEEDS_REAUTH
    connection.last_error = reason
    token_vault.shred(connection)
    notify.record(
        session,
        connection.org_id,
        "quickbooks.connection.updated",
        {
            "status": ConnectionStatus.NEEDS_REAUTH.value,
            "realm_id": connection.realm_id,
            "company_name": connection.company_name,
            "reason": reason,
        },
    )
