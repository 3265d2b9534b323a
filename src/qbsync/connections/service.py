"""Connect, callback, status and disconnect: the connection's life from the user's side."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.schemas import ConnectionStatusView, ConnectStarted, TokenHealth
from qbsync.connections.tokens import store_tokens
from qbsync.errors import NotFoundError
from qbsync.models import (
    Connection,
    ConnectionStatus,
    EntityMapping,
    OAuthState,
    RecordStatus,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.notify import service as notify
from qbsync.qbo import CompanyInfo, Preferences, QboError, TokenError, TokenSet

STATE_TTL = timedelta(minutes=10)
# Spent and expired states are kept a day for support questions, then deleted.
STATE_KEPT = timedelta(days=1)
_REALM_ID = re.compile(r"^\d{1,32}$")
log = structlog.get_logger(__name__)


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


async def start_connect(
    session: AsyncSession, intuit: IntuitAccess, org_id: str, user_id: str
) -> ConnectStarted:
    state = secrets.token_urlsafe(32)
    expires_at = utcnow() + STATE_TTL
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < utcnow() - STATE_KEPT))
    session.add(
        OAuthState(
            state_hash=_hash_state(state), org_id=org_id, user_id=user_id, expires_at=expires_at
        )
    )
    return ConnectStarted(
        authorization_url=intuit.oauth.authorization_url(state), expires_at=expires_at
    )


class CallbackError(Exception):
    """Why a consent did not end in a connection; `reason` goes to the settings page's URL."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class CallbackParams:
    state: str | None
    code: str | None
    realm_id: str | None
    error: str | None


async def consume_state(session: AsyncSession, state: str | None) -> OAuthState:
    """Single use: the row is locked and marked used whatever happens next (S5)."""
    if not state or len(state) > 256:
        raise CallbackError("invalid_state", "the callback carried no valid state")
    row = await session.scalar(
        select(OAuthState).where(OAuthState.state_hash == _hash_state(state)).with_for_update()
    )
    if row is None:
        raise CallbackError("invalid_state", "unknown state")
    if row.used_at is not None:
        raise CallbackError("invalid_state", "state already used")
    row.used_at = utcnow()
    if row.expires_at <= utcnow():
        raise CallbackError("expired_state", "the consent took longer than 10 minutes")
    return row


async def complete_connect(
    session: AsyncSession, intuit: IntuitAccess, params: CallbackParams
) -> Connection:
    """Everything the callback does after the state checked out; raises CallbackError."""
    oauth_state = await consume_state(session, params.state)
    # The state is spent whatever happens below, even if a later step rolls back.
    await session.flush()
    if params.error:
        reason = "access_denied" if params.error == "access_denied" else "authorization_failed"
        raise CallbackError(reason, f"Intuit answered error={params.error[:64]}")
    if not params.code or not params.realm_id or not _REALM_ID.match(params.realm_id):
        raise CallbackError("invalid_request", "the callback lacked a code or realmId")
    org_id = oauth_state.org_id
    other = await session.scalar(
        select(Connection).where(
            Connection.realm_id == params.realm_id,
            Connection.org_id != org_id,
            Connection.status == ConnectionStatus.CONNECTED,
        )
    )
    if other is not None:
        raise CallbackError(
            "company_already_connected",
            "this QuickBooks company is connected to another organisation",
        )
    try:
        tokens = await intuit.oauth.exchange_code(params.code)
    except TokenError as error:
        raise CallbackError("token_exchange_failed", type(error).__name__) from error
    try:
        company, preferences = await _read_company(intuit, params.realm_id, tokens)
    except QboError as error:
        # Nothing will be stored, so the grant Intuit just made must not outlive this request.
        with contextlib.suppress(TokenError):
            await intuit.oauth.revoke(tokens.refresh_token.get_secret_value())
        raise CallbackError("quickbooks_unavailable", type(error).__name__) from error

    connection = await session.scalar(
        select(Connection).where(Connection.org_id == org_id).with_for_update()
    )
    if connection is None:
        connection = Connection(id=uuid.uuid4(), org_id=org_id, realm_id=params.realm_id)
        session.add(connection)
    elif connection.realm_id != params.realm_id:
        await _leave_company(session, org_id, connection.realm_id)
        connection.realm_id = params.realm_id
    connection.status = ConnectionStatus.CONNECTED
    connection.connected_by = oauth_state.user_id
    connection.connected_at = utcnow()
    connection.disconnected_at = None
    connection.hard_expiry_warned_at = None
    _apply_company(connection, company, preferences)
    store_tokens(intuit, connection, tokens)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        # Another org connected the same company a moment ago (the check above raced).
        with contextlib.suppress(TokenError):
            await intuit.oauth.revoke(tokens.refresh_token.get_secret_value())
        raise CallbackError(
            "company_already_connected",
            "this QuickBooks company is connected to another organisation",
        ) from error
    await _resume_held_work(session, org_id, params.realm_id)
    notify.record(
        session,
        org_id,
        "quickbooks.connection.updated",
        {
            "status": "connected",
            "realm_id": connection.realm_id,
            "company_name": connection.company_name,
        },
    )
    log.info("quickbooks_connected", org_id=org_id, realm_id=connection.realm_id)
    return connection


class _StaticToken:
    """The freshly exchanged token, used before it is stored (nothing to refresh yet)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def access_token(self, *, force_refresh: bool = False) -> str:
        return self._token


async def _read_company(
    intuit: IntuitAccess, realm_id: str, tokens: TokenSet
) -> tuple[CompanyInfo, Preferences]:
    token = _StaticToken(tokens.access_token.get_secret_value())
    client = intuit.client(realm_id, token, interactive=True)
    return await client.company_info(), await client.preferences()


def _apply_company(connection: Connection, company: CompanyInfo, preferences: Preferences) -> None:
    connection.company_name = company.company_name or company.legal_name
    connection.country = (company.country or "")[:8] or None
    tax = preferences.tax_prefs
    currency = preferences.currency_prefs
    forms = preferences.sales_forms_prefs
    connection.automated_sales_tax = bool(tax and tax.partner_tax_enabled)
    connection.multi_currency = bool(currency and currency.multi_currency_enabled)
    home = currency.home_currency.value if currency and currency.home_currency else None
    connection.home_currency = home[:3] if home else None
    connection.custom_txn_numbers = bool(forms and forms.custom_txn_numbers)


async def _leave_company(session: AsyncSession, org_id: str, realm_id: str) -> None:
    """One company's ids mean nothing in another: archive its mappings, detach unsent work (R12)."""
    now = utcnow()
    await session.execute(
        update(EntityMapping)
        .where(
            EntityMapping.org_id == org_id,
            EntityMapping.realm_id == realm_id,
            EntityMapping.archived_at.is_(None),
        )
        .values(archived_at=now)
    )
    await session.execute(
        update(SyncRecord)
        .where(
            SyncRecord.org_id == org_id,
            SyncRecord.status.in_([RecordStatus.HELD, RecordStatus.PENDING, RecordStatus.FAILED]),
        )
        .values(realm_id=None, qbo_id=None, qbo_sync_token=None)
    )


async def _resume_held_work(session: AsyncSession, org_id: str, realm_id: str) -> None:
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status == RecordStatus.HELD)
        .values(status=RecordStatus.PENDING, next_attempt_at=utcnow())
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
    REVOKED = "revoked"
    FAILED = "failed"
    NOTHING_TO_REVOKE = "nothing_to_revoke"


async def disconnect(
    session: AsyncSession, intuit: IntuitAccess, connection: Connection
) -> Revocation:
    """Revoke at Intuit (best effort), shred the tokens, hold both directions."""
    tokens = token_vault.open_tokens(intuit.keyring, connection)
    revocation = Revocation.NOTHING_TO_REVOKE
    if tokens is not None:
        try:
            await intuit.oauth.revoke(tokens.refresh_token)
            revocation = Revocation.REVOKED
        except TokenError as error:
            revocation = Revocation.FAILED
            log.warning("revoke_failed_disconnecting_locally", error=type(error).__name__)
    token_vault.shred(connection)
    connection.status = ConnectionStatus.DISCONNECTED
    connection.disconnected_at = utcnow()
    connection.access_expires_at = None
    await hold_pending_work(session, connection.org_id)
    notify.record(
        session,
        connection.org_id,
        "quickbooks.connection.updated",
        {
            "status": "disconnected",
            "realm_id": connection.realm_id,
            "company_name": connection.company_name,
            "revoked_at_intuit": revocation is Revocation.REVOKED,
        },
    )
    return revocation
