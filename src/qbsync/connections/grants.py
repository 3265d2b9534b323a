"""Which grants qbsync may revoke, and what happens to consents nobody confirmed.

Intuit: "Revoking the refresh token disconnects the app from the company." One revoke ends every
grant our app holds for that company: a connection's and any consent still waiting for its
confirm. So a grant qbsync lets go of (a disconnect, a switch to another company, a refused
confirm, a lost race, a callback that failed after the exchange, an expired consent) is revoked
only when nothing of ours holds that company, checked in a fresh transaction just before the call.
A disconnect and a switch first withdraw the org's own waiting consents for that company, in the
transaction that lets it go, so only others' holdings (another org that connected it a moment
later) keep the grant alive.

A revoke Intuit can't take right now (5xx, timeout) is stored sealed and retried by a cron for a
week, re-checking each time that nothing holds the company.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.crypto import CryptoError
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, PendingGrant, PendingRevocation
from qbsync.models.base import utcnow
from qbsync.qbo import TokenError
from qbsync.queue import JobQueue, unit_of_work

# Spent, withdrawn and expired consents are kept this long, so a late confirm is told why.
KEPT = timedelta(days=1)
# A revoke Intuit could not take: retried after these delays (then the last, every time), and
# given up after a week, by which time an unused grant is close to dying on its own.
REVOKE_RETRY_DELAYS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
]
REVOKE_GIVE_UP_AFTER = timedelta(days=7)
REVOKE_CLAIM = timedelta(minutes=2)
log = structlog.get_logger(__name__)


async def company_held(session: AsyncSession, realm_id: str) -> bool:
    """A connection of ours is connected to the company, or a consent for it awaits confirm."""
    waiting = exists().where(
        PendingGrant.realm_id == realm_id,
        PendingGrant.used_at.is_(None),
        PendingGrant.withdrawn_at.is_(None),
        PendingGrant.access_token.is_not(None),
        PendingGrant.expires_at > utcnow(),
    )
    connected = exists().where(
        Connection.realm_id == realm_id, Connection.status == ConnectionStatus.CONNECTED
    )
    return bool(await session.scalar(select(or_(connected, waiting))))


async def revoke(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    realm_id: str,
    tokens: token_vault.TokenPair,
) -> bool:
    """Tell Intuit to end a grant qbsync let go of; True once it did.

    Kept when something of ours still holds the company. When Intuit can't be reached the revoke
    is stored and retried by a cron, so a grant nobody holds does not stay live for the ~100 days
    it would otherwise last.
    """
    if await _holding(db, queue, realm_id) is not False:
        return False
    try:
        await intuit.oauth.revoke(tokens.refresh_token)
    except TokenError as error:
        log.warning("revoke_failed", realm_id=realm_id, error=type(error).__name__)
        if error.retryable:
            await _retry_later(db, queue, intuit, realm_id, tokens, error)
        return False
    return True


async def _holding(db: Database, queue: JobQueue, realm_id: str) -> bool | None:
    """Whether something of ours holds the company; None when the database could not say.

    Unsure is kept: a live grant dies on its own in ~100 days; a cut connection does not.
    """
    try:
        async with unit_of_work(db, queue) as session:
            held = await company_held(session, realm_id)
    except (SQLAlchemyError, OSError) as error:
        log.warning("grant_kept_unchecked", realm_id=realm_id, error=type(error).__name__)
        return None
    if held:
        log.info("grant_kept_company_held", realm_id=realm_id)
    return held


async def _retry_later(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    realm_id: str,
    tokens: token_vault.TokenPair,
    error: TokenError,
) -> None:
    try:
        async with unit_of_work(db, queue) as session:
            request = PendingRevocation(
                id=uuid.uuid4(),
                realm_id=realm_id,
                next_attempt_at=utcnow() + REVOKE_RETRY_DELAYS[0],
                last_error=type(error).__name__,
            )
            token_vault.seal(intuit.keyring, request, tokens)
            session.add(request)
    except (SQLAlchemyError, OSError) as failure:
        log.error("revoke_retry_not_stored", realm_id=realm_id, error=type(failure).__name__)


async def retry_revocations(db: Database, queue: JobQueue, intuit: IntuitAccess) -> int:
    """Cron: revokes Intuit could not take earlier, claimed so two workers never both send one."""
    now = utcnow()
    claimed: list[_Claim] = []
    async with unit_of_work(db, queue) as session:
        due = await session.scalars(
            select(PendingRevocation)
            .where(PendingRevocation.next_attempt_at <= now)
            .order_by(PendingRevocation.next_attempt_at)
            .with_for_update(skip_locked=True)
            .limit(100)
        )
        for request in due:
            request.next_attempt_at = now + REVOKE_CLAIM
            claimed.append(_Claim(request.id, request.realm_id, _open(intuit, request)))
    revoked = 0
    for claim in claimed:
        tokens = claim.tokens
        held = None if tokens is None else await _holding(db, queue, claim.realm_id)
        # Nothing to send, or revoking would cut what holds the company: the request is done.
        done = tokens is None or held is True
        failure: TokenError | None = None
        if held is False and tokens is not None:
            try:
                await intuit.oauth.revoke(tokens.refresh_token)
            except TokenError as error:
                failure = error
                done = not error.retryable
            else:
                done = True
                revoked += 1
        await _settle(db, queue, claim.request_id, done=done, failure=failure)
    return revoked


@dataclass(frozen=True)
class _Claim:
    request_id: uuid.UUID
    realm_id: str
    # None when no configured key opens the row any more: nothing can be sent, it is dropped.
    tokens: token_vault.TokenPair | None


def _open(intuit: IntuitAccess, request: PendingRevocation) -> token_vault.TokenPair | None:
    try:
        return token_vault.open_tokens(intuit.keyring, request)
    except CryptoError:
        log.error("pending_revocation_unreadable", request_id=str(request.id))
        return None


async def _settle(
    db: Database, queue: JobQueue, request_id: uuid.UUID, *, done: bool, failure: TokenError | None
) -> None:
    async with unit_of_work(db, queue) as session:
        request = await session.get(PendingRevocation, request_id, with_for_update=True)
        if request is None:
            return
        request.attempts += 1
        given_up = utcnow() - request.created_at >= REVOKE_GIVE_UP_AFTER
        if done or given_up:
            if given_up and not done:
                log.error("revoke_given_up", realm_id=request.realm_id, attempts=request.attempts)
            await session.delete(request)
            return
        delay = REVOKE_RETRY_DELAYS[min(request.attempts, len(REVOKE_RETRY_DELAYS) - 1)]
        request.next_attempt_at = utcnow() + delay
        request.last_error = type(failure).__name__ if failure else None


async def withdraw_waiting(session: AsyncSession, realm_id: str) -> None:
    """Consents waiting for this company die with the revoke about to happen: say so."""
    await session.execute(
        update(PendingGrant)
        .where(
            PendingGrant.realm_id == realm_id,
            PendingGrant.used_at.is_(None),
            PendingGrant.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=utcnow(), access_token=None, refresh_token=None, token_key_id=None)
    )


def open_grant(intuit: IntuitAccess, grant: PendingGrant) -> token_vault.TokenPair | None:
    try:
        return token_vault.open_tokens(intuit.keyring, grant)
    except CryptoError:
        log.error("pending_grant_unreadable", grant_id=str(grant.id))
        return None


async def expire_pending_grants(db: Database, queue: JobQueue, intuit: IntuitAccess) -> int:
    """Consents nobody confirmed in time: shredded, then revoked where nothing else holds the
    company; rows are deleted a day later."""
    now = utcnow()
    dropped: list[tuple[str, token_vault.TokenPair]] = []
    async with unit_of_work(db, queue) as session:
        expired = list(
            await session.scalars(
                select(PendingGrant)
                .where(PendingGrant.expires_at <= now, PendingGrant.access_token.is_not(None))
                .with_for_update(skip_locked=True)
                .limit(500)
            )
        )
        for grant in expired:
            tokens = open_grant(intuit, grant)
            if tokens is not None and grant.used_at is None:
                dropped.append((grant.realm_id, tokens))
            token_vault.shred(grant)
        await session.execute(delete(PendingGrant).where(PendingGrant.expires_at < now - KEPT))
    revoked = 0
    for realm_id, tokens in dropped:
        revoked += await revoke(db, queue, intuit, realm_id, tokens)
    if expired:
        log.info("pending_grants_expired", count=len(expired), revoked=revoked)
    return len(expired)
