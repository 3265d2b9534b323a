"""Connect, status and disconnect: the connection's life from the user's side.

The consent itself lives in `consent` (the callback) and `confirm`; which grants may be revoked,
in `grants`.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import grants, locks, token_vault
from qbsync.connections.consent import hash_secret
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.payloads import tell_platform
from qbsync.connections.schemas import ConnectionStatusView, ConnectStarted, TokenHealth
from qbsync.crypto import CryptoError
from qbsync.db import Database
from qbsync.errors import AppError, NotFoundError
from qbsync.models import Connection, ConnectionStatus, OAuthState, RecordStatus, SyncRecord
from qbsync.models.base import utcnow
from qbsync.queue import JobQueue, unit_of_work

STATE_TTL = timedelta(minutes=10)
# Spent and expired states are kept a day for support questions, then deleted.
STATE_KEPT = timedelta(days=1)
# Unfinished sign-ins an org may have at once (S8): enough for every tab a person opens.
MAX_OPEN_CONSENTS = 20
log = structlog.get_logger(__name__)


class TooManyConsentsError(AppError):
    status = 429
    code = "too_many_consents"


async def start_connect(
    session: AsyncSession, intuit: IntuitAccess, org_id: str, user_id: str
) -> ConnectStarted:
    state = secrets.token_urlsafe(32)
    now = utcnow()
    # Counted under the org's lock, so concurrent clicks can't pass the cap together.
    await locks.lock_org(session, org_id)
    expires_at = now + STATE_TTL
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < now - STATE_KEPT))
    open_states = await session.scalar(
        select(func.count())
        .select_from(OAuthState)
        .where(
            OAuthState.org_id == org_id, OAuthState.used_at.is_(None), OAuthState.expires_at > now
        )
    )
    if (open_states or 0) >= MAX_OPEN_CONSENTS:
        raise TooManyConsentsError(
            f"This organisation has {MAX_OPEN_CONSENTS} QuickBooks sign-ins in progress. Finish "
            "one, or try again in 10 minutes when they expire.",
            headers={"Retry-After": "600"},
        )
    session.add(
        OAuthState(
            state_hash=hash_secret(state), org_id=org_id, user_id=user_id, expires_at=expires_at
        )
    )
    return ConnectStarted(
        authorization_url=intuit.oauth.authorization_url(state), expires_at=expires_at
    )


async def hold_pending_work(session: AsyncSession, org_id: str) -> None:
    await session.execute(
        update(SyncRecord)
        .where(
            SyncRecord.org_id == org_id,
            SyncRecord.status.in_([RecordStatus.PENDING, RecordStatus.IN_PROGRESS]),
        )
        .values(status=RecordStatus.HELD, next_attempt_at=None)
    )


def settings_redirect(settings_url: str, outcome: dict[str, str]) -> str:
    parts = urlsplit(settings_url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *outcome.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def get_connection(session: AsyncSession, org_id: str) -> Connection | None:
    result: Connection | None = await session.scalar(
        select(Connection).where(Connection.org_id == org_id)
    )
    return result


async def require_connection(
    session: AsyncSession, org_id: str, *, lock: bool = False
) -> Connection:
    statement = select(Connection).where(Connection.org_id == org_id)
    if lock:
        statement = statement.with_for_update()
    connection = await session.scalar(statement)
    if connection is None:
        raise NotFoundError(
            "This organisation has never connected QuickBooks.", code="not_connected"
        )
    return connection


def status_view(connection: Connection | None, now: datetime) -> ConnectionStatusView:
    if connection is None:
        return ConnectionStatusView(
            status="not_connected", message="Connect your QuickBooks company to start syncing."
        )
    view = ConnectionStatusView(
        status=connection.status.value,
        company_name=connection.company_name,
        realm_id=connection.realm_id,
        country=connection.country,
        home_currency=connection.home_currency,
        automated_sales_tax=connection.automated_sales_tax,
        multi_currency=connection.multi_currency,
        custom_txn_numbers=connection.custom_txn_numbers,
        connected_since=connection.connected_at,
        disconnected_at=connection.disconnected_at,
    )
    if connection.status is ConnectionStatus.NEEDS_REAUTH:
        view.reason = connection.last_error
        view.message = (
            "QuickBooks no longer accepts our access. Reconnect to resume syncing; "
            "nothing is lost meanwhile."
        )
    elif connection.status is ConnectionStatus.DISCONNECTED:
        view.message = "Disconnected. Reconnect any time; your mappings are kept."
    else:
        view.token_health = token_health(connection, now)
    return view


def token_health(connection: Connection, now: datetime) -> TokenHealth:
    ends = [
        moment
        for moment in (connection.refresh_expires_at, connection.refresh_hard_expires_at)
        if moment is not None
    ]
    days_left = max(0, (min(ends) - now).days) if ends else None
    return TokenHealth(
        access_expires_at=connection.access_expires_at,
        refresh_expires_at=connection.refresh_expires_at,
        refresh_hard_expires_at=connection.refresh_hard_expires_at,
        days_left=days_left,
        last_refreshed_at=connection.last_refreshed_at,
    )


class Revocation(enum.StrEnum):
    """What a disconnect got from Intuit: a revoke's outcome, or why none was sent."""

    REVOKED = grants.RevokeOutcome.REVOKED.value
    RETRYING = grants.RevokeOutcome.RETRYING.value
    REFUSED = grants.RevokeOutcome.REFUSED.value
    KEPT = grants.RevokeOutcome.KEPT.value
    UNSURE = grants.RevokeOutcome.UNSURE.value
    NOTHING_TO_REVOKE = "nothing_to_revoke"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Disconnected:
    revocation: Revocation
    already: bool


async def disconnect(
    db: Database, queue: JobQueue, intuit: IntuitAccess, org_id: str
) -> Disconnected:
    """Shred the tokens, hold both directions, tell the platform and record the revoke in one
    transaction; then send the revoke to Intuit.

    Always succeeds for a known org, even when the stored tokens can't be decrypted: the row is
    shredded all the same, and the answer says Intuit could not be told.
    """
    ticket = None
    async with unit_of_work(db, queue) as session:
        # Locks in the one order (locks.py), as a confirm of this org takes them.
        await locks.lock_org(session, org_id)
        realm_id = await session.scalar(
            select(Connection.realm_id).where(Connection.org_id == org_id)
        )
        if realm_id is not None:
            await locks.lock_companies(session, realm_id)
        connection = await require_connection(session, org_id, lock=True)
        if connection.status is ConnectionStatus.DISCONNECTED:
            return Disconnected(Revocation.NOTHING_TO_REVOKE, already=True)
        try:
            tokens = token_vault.open_tokens(intuit.keyring, connection)
        except CryptoError:
            tokens = None
        token_vault.shred(connection)
        connection.status = ConnectionStatus.DISCONNECTED
        connection.disconnected_at = utcnow()
        connection.access_expires_at = None
        connection.refresh_lease_id = None
        connection.refresh_lease_until = None
        await hold_pending_work(session, org_id)
        tell_platform(session, connection)
        if tokens is not None:
            # The revoke ends every grant for the company, the consents waiting included.
            await grants.withdraw_waiting(session, connection.realm_id)
            ticket = await grants.decide_revoke(
                session, intuit.keyring, connection.realm_id, tokens
            )
    if tokens is None:
        revocation = Revocation.UNREADABLE
    elif ticket is None:
        revocation = Revocation.KEPT
    else:
        outcome = await grants.send_revoke(db, queue, intuit, ticket, tokens)
        revocation = Revocation(outcome.value)
    log.info(
        "quickbooks_disconnected",
        org_id=org_id,
        realm_id=connection.realm_id,
        revocation=revocation.value,
    )
    return Disconnected(revocation, already=False)
