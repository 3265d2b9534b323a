"""The confirm step: the frontend links a pending grant with the JWT of the user who started it.

One transaction decides, under advisory locks taken in the one order of `locks` (the org's, then
the companies involved), so two confirms of one org or of one company, and a confirm racing a
disconnect, are serialised across processes. Revokes are recorded in that transaction and sent
only after it committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import structlog
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import grants, locks, token_vault
from qbsync.connections.consent import connected_elsewhere, hash_secret
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.payloads import tell_platform
from qbsync.connections.tokens import store_tokens
from qbsync.crypto import CryptoError
from qbsync.db import Database
from qbsync.errors import AppError, ConflictError, ForbiddenError, NotFoundError
from qbsync.models import (
    Connection,
    ConnectionStatus,
    EntityMapping,
    PendingGrant,
    RecordStatus,
    SyncRecord,
    SyncSettings,
)
from qbsync.models.base import utcnow
from qbsync.qbo import TokenSet
from qbsync.queue import JobQueue, unit_of_work
from qbsync.reference_cache import ReferenceCache
from qbsync.sync.schedule import schedule_push

REALM_CONSTRAINT = "uq_connections_realm_id_connected"
COMPANY_TAKEN = (
    "This QuickBooks company is already connected to another organisation. Disconnect it "
    "there first; nothing was linked here."
)
WITHDRAWN = (
    "QuickBooks access to this company was withdrawn while this consent waited (it was "
    "disconnected). Connect again."
)
log = structlog.get_logger(__name__)


class ConsentNotFoundError(NotFoundError):
    code = "consent_not_found"


class ConsentExpiredError(ConflictError):
    code = "consent_expired"


class ConsentWithdrawnError(ConflictError):
    code = "consent_withdrawn"


class ConsentNotYoursError(ForbiddenError):
    code = "consent_not_yours"


class CompanyTakenError(ConflictError):
    code = "company_already_connected"


@dataclass
class _Outcome:
    """What the confirm transaction decided; Intuit is told only after it committed."""

    failure: AppError | None = None
    connection: Connection | None = None
    # Revokes the transaction recorded (a refused consent's grant, the old company's after a
    # switch), to send once it committed.
    to_send: list[tuple[grants.RevokeTicket, token_vault.TokenPair]] = field(default_factory=list)


async def confirm(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    references: ReferenceCache,
    *,
    org_id: str,
    user_id: str,
    handle: str,
) -> Connection:
    """Link the pending grant to the org, if this org's user started it."""
    try:
        async with unit_of_work(db, queue) as session:
            outcome = await _decide(session, intuit, org_id, user_id, handle)
    except IntegrityError as error:
        if REALM_CONSTRAINT not in str(error.orig):
            raise
        # The partial unique index caught what the company lock did not: spend the handle.
        async with unit_of_work(db, queue) as session:
            await _spend(session, handle)
        outcome = _Outcome(failure=CompanyTakenError(COMPANY_TAKEN, field="handle"))
    for ticket, tokens in outcome.to_send:
        await grants.send_revoke(db, queue, intuit, ticket, tokens)
    if outcome.failure is not None:
        log.info("quickbooks_confirm_refused", org_id=org_id, code=outcome.failure.code)
        raise outcome.failure
    assert outcome.connection is not None
    # Webhooks stop while a company is not connected: start from what QuickBooks holds now.
    # (A Redis that can't be told leaves the lists to expire within minutes.)
    await references.drop_company(outcome.connection.realm_id)
    return outcome.connection


async def _decide(
    session: AsyncSession, intuit: IntuitAccess, org_id: str, user_id: str, handle: str
) -> _Outcome:
    # Locks in the one order (locks.py): the org's, the companies' involved, then the rows.
    await locks.lock_org(session, org_id)
    peek = await session.scalar(
        select(PendingGrant.realm_id).where(PendingGrant.handle_hash == hash_secret(handle))
    )
    current = await session.scalar(select(Connection.realm_id).where(Connection.org_id == org_id))
    await locks.lock_companies(session, *(realm for realm in (peek, current) if realm))
    grant = await session.scalar(
        select(PendingGrant)
        .where(PendingGrant.handle_hash == hash_secret(handle))
        .with_for_update()
    )
    if grant is None or grant.used_at is not None:
        return _Outcome(
            failure=ConsentNotFoundError(
                "This QuickBooks consent is unknown or was already used. Connect again.",
                field="handle",
            )
        )
    grant.used_at = utcnow()
    tokens = grants.open_grant(intuit, grant)
    unreadable = tokens is None and grant.access_token is not None
    token_vault.shred(grant)
    if grant.withdrawn_at is not None:
        return _Outcome(failure=ConsentWithdrawnError(WITHDRAWN, field="handle"))
    if unreadable:
        return _Outcome(
            failure=ConsentWithdrawnError(
                "This consent can't be read any more (an encryption key was removed). "
                "Connect again.",
                field="handle",
            )
        )
    if tokens is None or grant.expires_at <= utcnow():
        return await _refused(
            session,
            intuit,
            grant,
            tokens,
            ConsentExpiredError(
                "This QuickBooks consent was not confirmed within 10 minutes. Connect again.",
                field="handle",
            ),
        )
    if grant.org_id != org_id or grant.user_id != user_id:
        log.warning("quickbooks_consent_not_yours", org_id=org_id, started_by_org=grant.org_id)
        return await _refused(
            session,
            intuit,
            grant,
            tokens,
            ConsentNotYoursError(
                "This QuickBooks consent was started by another user, so nothing was linked. "
                "Connect from your own account.",
                field="handle",
            ),
        )
    if await connected_elsewhere(session, grant.realm_id, org_id):
        # Not revoked: that would disconnect the app from the company, the other org included.
        return _Outcome(failure=CompanyTakenError(COMPANY_TAKEN, field="handle"))
    exchanged = grant.exchange_started_at or grant.created_at
    if await grants.revoked_since(session, grant.realm_id, exchanged):
        # A revoke of this company may have ended this grant after it was made.
        return await _refused(
            session, intuit, grant, tokens, ConsentWithdrawnError(WITHDRAWN, field="handle")
        )
    return await _link(session, intuit, grant, tokens)


async def _refused(
    session: AsyncSession,
    intuit: IntuitAccess,
    grant: PendingGrant,
    tokens: token_vault.TokenPair | None,
    failure: AppError,
) -> _Outcome:
    """The grant is dropped: its revoke is recorded unless something holds the company."""
    outcome = _Outcome(failure=failure)
    if tokens is not None:
        ticket = await grants.decide_revoke(session, intuit.keyring, grant.realm_id, tokens)
        if ticket is not None:
            outcome.to_send.append((ticket, tokens))
    return outcome


async def _spend(session: AsyncSession, handle: str) -> None:
    grant = await session.scalar(
        select(PendingGrant)
        .where(PendingGrant.handle_hash == hash_secret(handle))
        .with_for_update()
    )
    if grant is not None:
        grant.used_at = grant.used_at or utcnow()
        token_vault.shred(grant)


async def _link(
    session: AsyncSession, intuit: IntuitAccess, grant: PendingGrant, tokens: token_vault.TokenPair
) -> _Outcome:
    """Store the grant on the org's connection; a switch lets go of the old company's grant."""
    connection = await session.scalar(
        select(Connection).where(Connection.org_id == grant.org_id).with_for_update()
    )
    left: tuple[str, token_vault.TokenPair] | None = None
    if connection is None:
        connection = Connection(id=uuid.uuid4(), org_id=grant.org_id, realm_id=grant.realm_id)
        session.add(connection)
    elif connection.realm_id != grant.realm_id:
        old = _old_tokens(intuit, connection)
        if old is not None:
            left = (connection.realm_id, old)
            await grants.withdraw_waiting(session, connection.realm_id)
        await _leave_company(session, connection.org_id, connection.realm_id)
        connection.realm_id = grant.realm_id
        await _return_to_company(session, connection.org_id, connection.realm_id)
    connection.status = ConnectionStatus.CONNECTED
    connection.connected_by = grant.user_id
    connection.connected_at = utcnow()
    connection.disconnected_at = None
    connection.hard_expiry_warned_at = None
    connection.refresh_lease_id = None
    connection.refresh_lease_until = None
    company = grant.company
    connection.company_name = company.get("company_name")
    connection.country = company.get("country")
    connection.home_currency = company.get("home_currency")
    connection.automated_sales_tax = bool(company.get("automated_sales_tax"))
    connection.multi_currency = bool(company.get("multi_currency"))
    connection.custom_txn_numbers = bool(company.get("custom_txn_numbers"))
    store_tokens(
        intuit,
        connection,
        TokenSet(
            access_token=SecretStr(tokens.access_token),
            refresh_token=SecretStr(tokens.refresh_token),
            access_expires_at=grant.access_expires_at or utcnow(),
            refresh_expires_at=grant.refresh_expires_at,
            refresh_hard_expires_at=grant.refresh_hard_expires_at,
            intuit_tid=None,
        ),
    )
    await session.flush()
    await _resume_held_work(session, connection.org_id)
    tell_platform(session, connection)
    log.info("quickbooks_connected", org_id=connection.org_id, realm_id=connection.realm_id)
    outcome = _Outcome(connection=connection)
    if left is not None:
        realm_id, tokens = left
        ticket = await grants.decide_revoke(session, intuit.keyring, realm_id, tokens)
        if ticket is not None:
            outcome.to_send.append((ticket, tokens))
    return outcome


def _old_tokens(intuit: IntuitAccess, connection: Connection) -> token_vault.TokenPair | None:
    if connection.status is not ConnectionStatus.CONNECTED:
        return None
    try:
        return token_vault.open_tokens(intuit.keyring, connection)
    except CryptoError:
        return None


async def _leave_company(session: AsyncSession, org_id: str, realm_id: str) -> None:
    """One company's ids mean nothing in another: archive its mappings, clear the accounts chosen
    in it, detach unsent work (R12). Automatic invoice push is switched off, as the setup tip
    asks before turning it on: the user turns it on again once the new company is set up."""
    now = utcnow()
    await session.execute(
        update(SyncSettings)
        .where(SyncSettings.org_id == org_id)
        .values(
            default_income_account_id=None,
            default_expense_account_id=None,
            ap_account_id=None,
            payment_account_id=None,
            invoice_auto_push=False,
            updated_at=now,
        )
    )
    await session.execute(
        update(EntityMapping)
        .where(
            EntityMapping.org_id == org_id,
            EntityMapping.realm_id == realm_id,
            EntityMapping.archived_at.is_(None),
        )
        .values(archived_at=now)
    )
    unsent = [
        RecordStatus.HELD,
        RecordStatus.PENDING,
        RecordStatus.IN_PROGRESS,
        RecordStatus.FAILED,
    ]
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status.in_(unsent))
        .values(realm_id=None, qbo_id=None, qbo_sync_token=None)
    )
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status == RecordStatus.IN_PROGRESS)
        .values(status=RecordStatus.PENDING)
    )


async def _return_to_company(session: AsyncSession, org_id: str, realm_id: str) -> None:
    """Back in a company the org left earlier: its ids mean what they meant, so its mappings
    (archived when the org switched away) are current again."""
    await session.execute(
        update(EntityMapping)
        .where(
            EntityMapping.org_id == org_id,
            EntityMapping.realm_id == realm_id,
            EntityMapping.archived_at.is_not(None),
        )
        .values(archived_at=None)
    )


async def _resume_held_work(session: AsyncSession, org_id: str) -> None:
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status == RecordStatus.HELD)
        .values(status=RecordStatus.PENDING, next_attempt_at=utcnow())
    )
    schedule_push(session, org_id)
