"""Which grants qbsync may revoke, the ledger of revokes, and consents nobody confirmed.

Intuit: "Revoking the refresh token disconnects the app from the company." One revoke ends every
grant our app holds for that company: a connection's and any consent still waiting for its
confirm. So a grant qbsync lets go of (a disconnect, a switch to another company, a refused
confirm, a lost race, a callback that failed after the exchange, an expired consent) is revoked
only when nothing of ours holds that company. A disconnect and a switch first withdraw the
consents waiting for that company, in the transaction that lets it go.

The decision is a row in `pending_revocations`, written under the company's advisory lock in the
same transaction as the check, before Intuit is called. Each attempt is stamped: while one is
being sent, or if one ended after a consent's code exchange began, that consent may have died
with it and is not linked. A revoke Intuit can't take right now (5xx, timeout) stays in the
ledger and a cron retries it with backoff for a week, re-checking each time that nothing holds
the company. Done rows are kept a day for those comparisons.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.backoff import delay_after
from qbsync.connections import locks, token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.crypto import CryptoError, Keyring
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, PendingGrant, PendingRevocation
from qbsync.models.base import utcnow
from qbsync.qbo import TokenEndpointUnavailableError, TokenError
from qbsync.queue import JobQueue, unit_of_work

# Spent, withdrawn and expired consents, and done revokes, are kept this long.
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
# A revoke call is cut off after this long, whatever the HTTP client's own timeouts allow (they
# apply per phase, so a slow answer can outlast them); the attempt is then retried.
REVOKE_SEND_LIMIT = timedelta(seconds=60)
# An attempt is its sender's for this long: past the send limit, with room for the commits.
REVOKE_CLAIM = timedelta(minutes=2)

log = structlog.get_logger(__name__)


class RevokeOutcome(enum.StrEnum):
    REVOKED = "revoked"
    # Intuit could not be reached: the ledger keeps it and the cron retries it.
    RETRYING = "retrying"
    # Intuit refused it in a way a retry would not change (say, the app was already removed).
    REFUSED = "refused"
    # Something of ours holds the company: revoking would cut it.
    KEPT = "kept"
    # The database could not say whether something holds the company: kept, nothing stored.
    UNSURE = "unsure"


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock: the one clock every process shares."""
    now = await session.scalar(select(func.clock_timestamp()))
    assert isinstance(now, datetime)
    return now


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


@dataclass(frozen=True)
class RevokeTicket:
    """One attempt's claim on a ledger row: the row, and the stamp its sender wrote."""

    request_id: uuid.UUID
    started_at: datetime


async def revoked_since(session: AsyncSession, realm_id: str, since: datetime) -> bool:
    """A revoke of the company is being sent, or one ended after `since`: a grant made after
    `since` may have ended with it. Call under the company's lock. Every time compared here is
    the database's clock (`database_now`), so the hosts' clocks may disagree."""
    sending = and_(
        PendingRevocation.attempt_started_at.is_not(None),
        PendingRevocation.attempt_started_at > since - REVOKE_CLAIM,
    )
    return bool(
        await session.scalar(
            select(
                exists().where(
                    PendingRevocation.realm_id == realm_id,
                    or_(sending, PendingRevocation.attempt_ended_at > since),
                )
            )
        )
    )


async def decide_revoke(
    session: AsyncSession, keyring: Keyring, realm_id: str, tokens: token_vault.TokenPair
) -> RevokeTicket | None:
    """In the caller's transaction: record a revoke claimed for sending, unless something of ours
    holds the company. Send it with `send_revoke` once the transaction committed."""
    await locks.lock_companies(session, realm_id)
    if await company_held(session, realm_id):
        log.info("grant_kept_company_held", realm_id=realm_id)
        return None
    now = await database_now(session)
    request = PendingRevocation(
        id=uuid.uuid4(),
        realm_id=realm_id,
        next_attempt_at=now + REVOKE_CLAIM,
        attempt_started_at=now,
    )
    token_vault.seal(keyring, request, tokens)
    session.add(request)
    return RevokeTicket(request.id, now)


async def send_revoke(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    ticket: RevokeTicket,
    tokens: token_vault.TokenPair,
) -> RevokeOutcome:
    """Send a revoke `decide_revoke` recorded, and write down how it went."""
    failure: TokenError | None = None
    try:
        async with asyncio.timeout(REVOKE_SEND_LIMIT.total_seconds()):
            await intuit.oauth.revoke(tokens.refresh_token)
    except TokenError as error:
        failure = error
    except TimeoutError:
        failure = TokenEndpointUnavailableError("the revoke call outlasted its limit")
    if failure is not None:
        log.warning("revoke_failed", error=type(failure).__name__)
    try:
        await _settle(db, queue, ticket, failure=failure)
    except (SQLAlchemyError, OSError) as error:
        # The claim runs out and the cron sends it again; a repeated revoke is harmless.
        log.warning("revoke_outcome_not_stored", error=type(error).__name__)
    if failure is None:
        return RevokeOutcome.REVOKED
    return RevokeOutcome.RETRYING if failure.retryable else RevokeOutcome.REFUSED


async def revoke(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    realm_id: str,
    tokens: token_vault.TokenPair,
) -> RevokeOutcome:
    """Decide and send in one go, for callers with no transaction of their own."""
    try:
        async with unit_of_work(db, queue) as session:
            ticket = await decide_revoke(session, intuit.keyring, realm_id, tokens)
    except (SQLAlchemyError, OSError) as error:
        # Unsure is kept: a live grant dies on its own in ~100 days; a cut connection does not.
        log.warning("grant_kept_unchecked", realm_id=realm_id, error=type(error).__name__)
        return RevokeOutcome.UNSURE
    if ticket is None:
        return RevokeOutcome.KEPT
    return await send_revoke(db, queue, intuit, ticket, tokens)


async def _settle(
    db: Database, queue: JobQueue, ticket: RevokeTicket, *, failure: TokenError | None
) -> None:
    async with unit_of_work(db, queue) as session:
        request = await session.get(PendingRevocation, ticket.request_id, with_for_update=True)
        if request is None:
            return
        now = await database_now(session)
        # Another sender may have claimed the row after this one's claim ran out: its attempt
        # is still out, so its stamp stays and it reschedules its own failure.
        ours = request.attempt_started_at == ticket.started_at
        request.attempts += 1
        request.attempt_ended_at = now
        request.last_error = type(failure).__name__ if failure else None
        if ours:
            request.attempt_started_at = None
        if failure is None or not failure.retryable:
            _finish(request, now)
        elif ours:
            _later(request, now)


def _finish(request: PendingRevocation, now: datetime) -> None:
    request.done_at = now
    token_vault.shred(request)


def _later(request: PendingRevocation, now: datetime) -> None:
    if now - request.created_at >= REVOKE_GIVE_UP_AFTER:
        log.error("revoke_given_up", realm_id=request.realm_id, attempts=request.attempts)
        _finish(request, now)
        return
    delay = delay_after(request.attempts, REVOKE_RETRY_DELAYS)
    request.next_attempt_at = now + delay


async def retry_revocations(db: Database, queue: JobQueue, intuit: IntuitAccess) -> int:
    """Cron: revokes Intuit could not take earlier. Each is claimed right before it is sent, so
    two workers never send one at the same time and a long run never outlives its claims."""
    async with db.sessions() as session:
        due = list(
            await session.execute(
                select(PendingRevocation.id, PendingRevocation.realm_id)
                .where(
                    PendingRevocation.done_at.is_(None),
                    PendingRevocation.next_attempt_at <= utcnow(),
                )
                .order_by(PendingRevocation.next_attempt_at)
                .limit(100)
            )
        )
    revoked = 0
    for request_id, realm_id in due:
        async with unit_of_work(db, queue) as session:
            claimed = await _claim(session, intuit.keyring, request_id, realm_id)
        if claimed is not None:
            ticket, tokens = claimed
            outcome = await send_revoke(db, queue, intuit, ticket, tokens)
            revoked += outcome is RevokeOutcome.REVOKED
    return revoked


async def _claim(
    session: AsyncSession, keyring: Keyring, request_id: uuid.UUID, realm_id: str
) -> tuple[RevokeTicket, token_vault.TokenPair] | None:
    """The pair to send now, or None: not due any more, held again, or unreadable for now."""
    await locks.lock_companies(session, realm_id)
    now = await database_now(session)
    request = await session.scalar(
        select(PendingRevocation)
        .where(
            PendingRevocation.id == request_id,
            PendingRevocation.done_at.is_(None),
            PendingRevocation.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    if request is None:
        return None
    if await company_held(session, realm_id):
        log.info("grant_kept_company_held", realm_id=realm_id)
        request.last_error = "kept: the company is held again"
        _finish(request, now)
        return None
    try:
        tokens = token_vault.open_tokens(keyring, request)
    except CryptoError:
        # Perhaps a key this worker does not have yet: kept, and reported each time.
        log.error("pending_revocation_unreadable", request_id=str(request.id))
        request.attempts += 1
        request.last_error = "unreadable with the configured keys"
        _later(request, now)
        return None
    if tokens is None:
        _finish(request, now)
        return None
    request.next_attempt_at = now + REVOKE_CLAIM
    request.attempt_started_at = now
    return RevokeTicket(request.id, now), tokens


async def withdraw_waiting(session: AsyncSession, realm_id: str) -> None:
    """Consents waiting for this company (any org's) die with the revoke about to be decided.

    Only live ones: expired consents are the expire cron's, which locks them without waiting.
    """
    await session.execute(
        update(PendingGrant)
        .where(
            PendingGrant.realm_id == realm_id,
            PendingGrant.used_at.is_(None),
            PendingGrant.withdrawn_at.is_(None),
            PendingGrant.access_token.is_not(None),
            PendingGrant.expires_at > utcnow(),
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
    company; their rows, and done revokes, are deleted a day later."""
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
    async with unit_of_work(db, queue) as session:
        # Rows someone holds are skipped, never waited for: the cron takes no lock in order.
        for model, old in (
            (PendingGrant, PendingGrant.expires_at < now - KEPT),
            (PendingRevocation, PendingRevocation.done_at < now - KEPT),
        ):
            stale = select(model.id).where(old).with_for_update(skip_locked=True)
            await session.execute(delete(model).where(model.id.in_(stale)))
    revoked = 0
    for realm_id, tokens in dropped:
        outcome = await revoke(db, queue, intuit, realm_id, tokens)
        revoked += outcome is RevokeOutcome.REVOKED
    if expired:
        log.info("pending_grants_expired", count=len(expired), revoked=revoked)
    return len(expired)
