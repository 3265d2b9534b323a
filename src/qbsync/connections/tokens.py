"""Token upkeep: one refresh at a time per connection, across every process (R6, R7, R13).

A refresh is claimed with a lease on the connection row (`refresh_lease_id` / `_until`), taken in
a short transaction that commits before Intuit is called; nobody holds a database connection or an
open transaction while the token endpoint answers. The claim re-checks the expiry, so whoever
waited for a lease usually finds the token already fresh. The new pair is stored in a second short
transaction, only while storage still holds the refresh token that was sent (else another
caller refreshed after our lease ran out, and its pair is kept). A lease outlives the token
call's timeout by a margin: the lease of a process that died mid-refresh runs out and the next
caller takes over.

A token endpoint that fails with 5xx or times out leaves the connection `connected`; only
`invalid_grant` against the refresh token storage still holds marks it `needs_reauth`. Tokens that
can't be decrypted (a key removed too early) mark it `needs_reauth` too, saying why.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.payloads import tell_platform
from qbsync.crypto import CryptoError
from qbsync.db import Database
from qbsync.errors import ConflictError
from qbsync.models import Connection, ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.qbo import InvalidGrantError, TokenEndpointUnavailableError, TokenSet
from qbsync.queue import JobQueue, take_pending

# Refresh this long before the access token expires, so no call starts with a dying token.
ACCESS_MARGIN = timedelta(minutes=5)
# How long a refresh lease outlives the token call's own timeout.
LEASE_MARGIN = timedelta(seconds=15)
# Waiting for another caller's refresh: poll the row, a little slower each time.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5
NOT_CONNECTED = "QuickBooks is not connected. Reconnect it from the integration settings."
SWITCHED = "The organisation was connected to another QuickBooks company meanwhile."
log = structlog.get_logger(__name__)
_random = secrets.SystemRandom()
T = TypeVar("T")
# The event loop keeps only weak references to tasks: hold shielded bookkeeping until it ends.
_bookkeeping: set[asyncio.Task[Any]] = set()


class ConnectionUnusableError(ConflictError):
    """The connection can't make calls until the user reconnects; retrying won't help."""

    code = "connection_not_usable"


class RefreshInProgressError(TokenEndpointUnavailableError):
    """Another caller's refresh outlasted this caller's wait limit; retrying soon will do."""


def needs_refresh(connection: Connection, now: datetime) -> bool:
    return (
        connection.access_expires_at is None or connection.access_expires_at - now <= ACCESS_MARGIN
    )


@dataclass(frozen=True)
class _Claimed:
    """This caller holds the lease and must call Intuit with `tokens.refresh_token`."""

    tokens: token_vault.TokenPair


class _Busy:
    """Another caller holds an unexpired lease: wait and look again."""


class ConnectionTokens:
    """An `AccessTokenProvider` for one connection, safe to share between concurrent calls."""

    def __init__(
        self,
        db: Database,
        intuit: IntuitAccess,
        connection_id: uuid.UUID,
        queue: JobQueue | None = None,
        *,
        wait_limit_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._intuit = intuit
        self._connection_id = connection_id
        # The company this provider's calls go to; a connection switched meanwhile is refused.
        self._realm_id: str | None = None
        # Without a queue, the platform still hears of a dead grant through the redrive cron.
        self._queue = queue
        # A person waiting on a page should not wait out the lease of a process that died.
        self._wait_limit = wait_limit_seconds
        self._last_token: str | None = None
        # A provider serves one job: its calls reuse the token instead of reading the row each time.
        self._last_expires_at: datetime | None = None

    async def access_token(self, *, force_refresh: bool = False) -> str:
        expires_at = self._last_expires_at
        fresh_enough = expires_at is not None and expires_at - utcnow() > ACCESS_MARGIN
        if not force_refresh and self._last_token and fresh_enough:
            return self._last_token
        rejected = self._last_token if force_refresh else None
        async with self._transaction() as session:
            connection = await self._load(session, lock=False)
            tokens = await self._open(session, connection)
            if not needs_refresh(connection, utcnow()) and tokens.access_token != rejected:
                self._remember(tokens.access_token, connection.access_expires_at)
                return tokens.access_token
        return await self._refresh(rejected)

    async def refresh_now(self, *, unless_refreshed_after: datetime) -> None:
        """Roll the refresh token forward (upkeep), unless someone did so recently."""
        await self._refresh(None, unless_refreshed_after=unless_refreshed_after)

    def _remember(self, token: str, expires_at: datetime | None) -> None:
        self._last_token = token
        self._last_expires_at = expires_at

    async def _refresh(
        self, rejected: str | None, *, unless_refreshed_after: datetime | None = None
    ) -> str:
        lease_id = uuid.uuid4().hex
        delay = POLL_FIRST_SECONDS
        loop = asyncio.get_running_loop()
        give_up = None if self._wait_limit is None else loop.time() + self._wait_limit
        while True:
            claim = await self._claim(lease_id, rejected, unless_refreshed_after)
            if isinstance(claim, str):
                return claim
            if isinstance(claim, _Claimed):
                return await self._call_intuit(lease_id, claim.tokens)
            if give_up is not None and loop.time() >= give_up:
                raise RefreshInProgressError(
                    "QuickBooks access is being renewed right now; try again in a minute."
                )
            await asyncio.sleep(delay * _random.uniform(0.5, 1.0))
            delay = min(POLL_MAX_SECONDS, delay * 1.5)

    async def _claim(
        self, lease_id: str, rejected: str | None, unless_refreshed_after: datetime | None
    ) -> str | _Claimed | _Busy:
        """One short transaction: the fresh token, the lease for this caller, or busy."""
        async with self._transaction() as session:
            connection = await self._load(session, lock=True)
            tokens = await self._open(session, connection)
            now = utcnow()
            if unless_refreshed_after is not None:
                recent = connection.last_refreshed_at
                if recent is not None and recent > unless_refreshed_after:
                    return tokens.access_token
            elif not needs_refresh(connection, now) and tokens.access_token != rejected:
                self._remember(tokens.access_token, connection.access_expires_at)
                return tokens.access_token
            until = connection.refresh_lease_until
            if connection.refresh_lease_id is not None and until is not None and until > now:
                return _Busy()
            connection.refresh_lease_id = lease_id
            connection.refresh_lease_until = now + self._lease_length()
            return _Claimed(tokens)

    async def _call_intuit(self, lease_id: str, sent: token_vault.TokenPair) -> str:
        try:
            fresh = await self._intuit.oauth.refresh(sent.refresh_token)
        except InvalidGrantError:
            newer = await _shielded(self._refused(lease_id, sent))
            if newer is None:
                raise
            return newer
        except BaseException:
            await _shielded(self._release(lease_id))
            raise
        return await _shielded(self._store(lease_id, sent, fresh))

    async def _store(self, lease_id: str, sent: token_vault.TokenPair, fresh: TokenSet) -> str:
        async with self._transaction() as session:
            connection = await self._load(session, lock=True, release=lease_id)
            stored = await self._open(session, connection)
            if stored.refresh_token != sent.refresh_token:
                # Our lease ran out and another caller refreshed meanwhile: theirs is stored.
                self._remember(stored.access_token, connection.access_expires_at)
                return stored.access_token
            store_tokens(self._intuit, connection, fresh)
            log.info("access_token_refreshed", connection_id=str(connection.id))
        token = fresh.access_token.get_secret_value()
        self._remember(token, fresh.access_expires_at)
        return token

    async def _refused(self, lease_id: str, sent: token_vault.TokenPair) -> str | None:
        """Intuit refused the refresh token: dead (None), unless storage already holds a newer
        pair, whose access token is then the answer."""
        async with self._transaction() as session:
            connection = await self._load(session, lock=True, release=lease_id)
            stored = await self._open(session, connection)
            if stored.refresh_token != sent.refresh_token:
                self._remember(stored.access_token, connection.access_expires_at)
                return stored.access_token
            mark_needs_reauth(session, connection, "QuickBooks refused the stored refresh token")
            log.warning("connection_needs_reauth", connection_id=str(connection.id))
            return None

    async def _release(self, lease_id: str) -> None:
        async with self._transaction() as session:
            await session.execute(
                update(Connection)
                .where(Connection.id == self._connection_id)
                .where(Connection.refresh_lease_id == lease_id)
                .values(refresh_lease_id=None, refresh_lease_until=None)
            )

    def _lease_length(self) -> timedelta:
        return timedelta(seconds=self._intuit.config.timeout_seconds) + LEASE_MARGIN

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A short transaction of its own; events it records are enqueued after the commit."""
        async with self._db.sessions() as session:
            try:
                yield session
            except _UnreadableTokensError:
                # The `needs_reauth` mark must be kept although the caller fails.
                await self._commit(session)
                raise
            await self._commit(session)

    async def _commit(self, session: AsyncSession) -> None:
        await session.commit()
        pending = take_pending(session)
        if self._queue is not None:
            await self._queue.enqueue_all(pending)

    async def _load(
        self, session: AsyncSession, *, lock: bool, release: str | None = None
    ) -> Connection:
        statement = select(Connection).where(Connection.id == self._connection_id)
        if lock:
            statement = statement.with_for_update()
        connection = await session.scalar(statement.execution_options(populate_existing=True))
        if (
            connection is not None
            and release is not None
            and connection.refresh_lease_id == release
        ):
            connection.refresh_lease_id = None
            connection.refresh_lease_until = None
        switched = connection is not None and self._realm_id not in (None, connection.realm_id)
        if connection is None or connection.status is not ConnectionStatus.CONNECTED or switched:
            if release is not None:
                # The lease is given back by the commit; the refreshed pair has nowhere to go.
                await session.commit()
            raise ConnectionUnusableError(SWITCHED if switched else NOT_CONNECTED)
        self._realm_id = connection.realm_id
        return connection

    async def _open(self, session: AsyncSession, connection: Connection) -> token_vault.TokenPair:
        """The decrypted pair; unreadable ciphertext marks the connection `needs_reauth`.

        The mark is made under the row lock by the one caller that still finds the connection
        connected, so concurrent callers tell the platform once.
        """
        try:
            tokens = token_vault.open_tokens(self._intuit.keyring, connection)
        except CryptoError as error:
            reason = unreadable_tokens_reason(error)
            locked = await session.scalar(
                select(Connection)
                .where(Connection.id == connection.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if locked is not None and locked.status is ConnectionStatus.CONNECTED:
                mark_needs_reauth(session, locked, reason)
                log.error(
                    "stored_tokens_unreadable",
                    connection_id=str(connection.id),
                    key_id=connection.token_key_id,
                )
            raise _UnreadableTokensError(reason) from error
        if tokens is None:
            raise ConnectionUnusableError(NOT_CONNECTED)
        return tokens


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """Finish the row's bookkeeping even when the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    _bookkeeping.add(task)
    task.add_done_callback(_bookkeeping.discard)
    return await asyncio.shield(task)


class _UnreadableTokensError(ConnectionUnusableError):
    """Raised inside a transaction that must still commit the `needs_reauth` mark."""


def unreadable_tokens_reason(error: CryptoError) -> str:
    return (
        f"qbsync can't decrypt the stored QuickBooks tokens ({error}). An encryption key was "
        "probably removed before `qbsync rotate-keys` finished. Reconnect QuickBooks."
    )


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
    connection.refresh_lease_id = None
    connection.refresh_lease_until = None
    token_vault.shred(connection)
    tell_platform(session, connection, reason=reason)
