"""Which grants qbsync may revoke, and what happens to consents nobody confirmed.

Intuit: "Revoking the refresh token disconnects the app from the company." One revoke ends every
grant our app holds for that company: the connection's and any consent still waiting for its
confirm. So a grant qbsync merely drops (a refused confirm, a lost race, a callback that failed
after the exchange, an expired consent) is revoked only when nothing else of ours holds that
company, checked in a fresh transaction just before the call. A revoke the user asked for (a
disconnect, a switch to another company) happens regardless, and withdraws the consents it kills.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.crypto import CryptoError
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, PendingGrant
from qbsync.models.base import utcnow
from qbsync.qbo import TokenError
from qbsync.queue import JobQueue, unit_of_work

# Spent, withdrawn and expired consents are kept this long, so a late confirm is told why.
KEPT = timedelta(days=1)
log = structlog.get_logger(__name__)


async def company_held(
    session: AsyncSession, realm_id: str, *, except_grant: uuid.UUID | None = None
) -> bool:
    """A connection of ours is connected to the company, or a consent for it awaits confirm."""
    waiting = [
        PendingGrant.realm_id == realm_id,
        PendingGrant.used_at.is_(None),
        PendingGrant.withdrawn_at.is_(None),
        PendingGrant.access_token.is_not(None),
        PendingGrant.expires_at > utcnow(),
    ]
    if except_grant is not None:
        waiting.append(PendingGrant.id != except_grant)
    connected = exists().where(
        Connection.realm_id == realm_id, Connection.status == ConnectionStatus.CONNECTED
    )
    return bool(await session.scalar(select(or_(connected, exists().where(*waiting)))))


async def revoke_unless_held(
    db: Database, queue: JobQueue, intuit: IntuitAccess, realm_id: str, refresh_token: str
) -> bool:
    """Revoke a grant qbsync drops, unless that would cut access something else of ours holds."""
    try:
        async with unit_of_work(db, queue) as session:
            held = await company_held(session, realm_id)
    except (SQLAlchemyError, OSError) as error:
        # Unsure is kept: a live grant dies on its own in ~100 days; a cut connection does not.
        log.warning("grant_kept_unchecked", realm_id=realm_id, error=type(error).__name__)
        return False
    if held:
        log.info("grant_kept_company_held", realm_id=realm_id)
        return False
    return await revoke_quietly(intuit, refresh_token)


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


async def revoke_quietly(intuit: IntuitAccess, refresh_token: str) -> bool:
    """Best effort: a grant Intuit keeps after this dies on its own within ~100 days."""
    try:
        await intuit.oauth.revoke(refresh_token)
    except TokenError as error:
        log.warning("revoke_failed", error=type(error).__name__)
        return False
    return True


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
    dropped: list[tuple[str, str]] = []
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
                dropped.append((grant.realm_id, tokens.refresh_token))
            token_vault.shred(grant)
        await session.execute(delete(PendingGrant).where(PendingGrant.expires_at < now - KEPT))
    revoked = 0
    for realm_id, refresh_token in dropped:
        revoked += await revoke_unless_held(db, queue, intuit, realm_id, refresh_token)
    if expired:
        log.info("pending_grants_expired", count=len(expired), revoked=revoked)
    return len(expired)
