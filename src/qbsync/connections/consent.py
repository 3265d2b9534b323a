"""The OAuth callback: spend the state, exchange the code, read the company, hold the grant.

The callback runs in whatever browser Intuit redirects, so it links nothing: it stores the grant
as pending under a single-use handle, and the platform's frontend confirms that handle with its
JWT (`confirm`), so only the org and user that started the consent can link it (connect CSRF,
RFC 6749 §10.12, quality-bar S9).

No step holds a database connection while Intuit answers (R13): each phase is its own short
transaction, and Intuit is called between them. Whether the company is already connected to
another org is checked only after the code exchange proved the consent real, so a forged
callback learns nothing about other orgs.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import grants, locks, token_vault
from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, OAuthState, PendingGrant
from qbsync.models.base import utcnow
from qbsync.qbo import (
    CompanyInfo,
    Preferences,
    QboAuthenticationError,
    QboAuthorizationError,
    QboError,
    RateLimiterUnavailableError,
    TokenError,
    TokenSet,
)
from qbsync.qbo.realm import is_realm_id
from qbsync.queue import JobQueue, unit_of_work

HANDLE_TTL = timedelta(minutes=10)
# Connection.company_name's width; Intuit documents no limit of its own.
COMPANY_NAME_MAX = 500
log = structlog.get_logger(__name__)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class CallbackReason(enum.StrEnum):
    """Why a consent did not end in a pending grant: `?quickbooks=error&reason=…` (the README
    and the dev page explain each)."""

    ACCESS_DENIED = "access_denied"
    AUTHORIZATION_FAILED = "authorization_failed"
    INVALID_STATE = "invalid_state"
    EXPIRED_STATE = "expired_state"
    INVALID_REQUEST = "invalid_request"
    COMPANY_ALREADY_CONNECTED = "company_already_connected"
    NOT_COMPANY_ADMIN = "not_company_admin"
    TOKEN_EXCHANGE_FAILED = "token_exchange_failed"  # noqa: S105 - a reason, not a secret
    QUICKBOOKS_UNAVAILABLE = "quickbooks_unavailable"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    UNEXPECTED_ERROR = "unexpected_error"


class CallbackError(Exception):
    """Why a consent did not end in a pending grant; `reason` goes to the settings page's URL."""

    def __init__(self, reason: CallbackReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class CallbackParams:
    state: str | None
    code: str | None
    realm_id: str | None
    error: str | None


@dataclass(frozen=True)
class _Started:
    org_id: str
    user_id: str
    # The database's clock when the state was spent, just before the code exchange.
    at: datetime


async def receive_callback(
    db: Database, queue: JobQueue, intuit: IntuitAccess, params: CallbackParams
) -> str:
    """The handle the frontend confirms; raises CallbackError with a documented reason."""
    started = await _spend_state(db, queue, params)
    code, realm_id = str(params.code), str(params.realm_id)
    exchange_started_at = started.at
    try:
        tokens = await intuit.oauth.exchange_code(code)
    except TokenError as error:
        raise CallbackError(CallbackReason.TOKEN_EXCHANGE_FAILED, type(error).__name__) from error
    pair = token_vault.TokenPair(
        tokens.access_token.get_secret_value(), tokens.refresh_token.get_secret_value()
    )
    try:
        company, preferences = await _read_company(intuit, realm_id, tokens)
    except QboError as error:
        reason = _reason(error)
        if isinstance(error, QboAuthenticationError) and await _revoked_meanwhile(
            db, queue, realm_id, exchange_started_at
        ):
            # Our own revoke of the company (a disconnect a moment ago) ended this new grant.
            reason = CallbackReason.CONSENT_WITHDRAWN
        await grants.revoke(db, queue, intuit, realm_id, pair)
        raise CallbackError(reason, type(error).__name__) from error
    try:
        return await _hold(
            db, queue, intuit, started, realm_id, tokens, exchange_started_at, company, preferences
        )
    except BaseException:
        # Nothing was stored: the grant Intuit just made must not outlive this request (unless
        # something holds the company, as when it is connected to another org).
        await grants.revoke(db, queue, intuit, realm_id, pair)
        raise


async def _revoked_meanwhile(db: Database, queue: JobQueue, realm_id: str, since: datetime) -> bool:
    async with unit_of_work(db, queue) as session:
        await locks.lock_companies(session, realm_id)
        return await grants.revoked_since(session, realm_id, since)


def _reason(error: QboError) -> CallbackReason:
    if isinstance(error, RateLimiterUnavailableError):
        return CallbackReason.TEMPORARILY_UNAVAILABLE
    if isinstance(error, QboAuthorizationError):
        return CallbackReason.NOT_COMPANY_ADMIN
    return CallbackReason.QUICKBOOKS_UNAVAILABLE


async def _spend_state(db: Database, queue: JobQueue, params: CallbackParams) -> _Started:
    """Single use (S5): the state is spent and committed whatever the outcome."""
    failure: CallbackError | None = None
    async with unit_of_work(db, queue) as session:
        try:
            state = await _consume_state(session, params.state)
            _check_params(params)
            started = _Started(state.org_id, state.user_id, await grants.database_now(session))
        except CallbackError as error:
            failure = error
    if failure is not None:
        raise failure
    return started


async def _consume_state(session: AsyncSession, state: str | None) -> OAuthState:
    if not state or len(state) > 256:
        raise CallbackError(CallbackReason.INVALID_STATE, "the callback carried no valid state")
    row = await session.scalar(
        select(OAuthState).where(OAuthState.state_hash == hash_secret(state)).with_for_update()
    )
    if row is None:
        raise CallbackError(CallbackReason.INVALID_STATE, "unknown state")
    if row.used_at is not None:
        raise CallbackError(CallbackReason.INVALID_STATE, "state already used")
    row.used_at = utcnow()
    if row.expires_at <= utcnow():
        raise CallbackError(CallbackReason.EXPIRED_STATE, "the consent took longer than 10 minutes")
    return row


def _check_params(params: CallbackParams) -> None:
    if params.error:
        denied = params.error == "access_denied"
        reason = CallbackReason.ACCESS_DENIED if denied else CallbackReason.AUTHORIZATION_FAILED
        raise CallbackError(reason, f"Intuit answered error={params.error[:64]}")
    if not params.code or len(params.code) > 2048 or not is_realm_id(params.realm_id):
        raise CallbackError(CallbackReason.INVALID_REQUEST, "the callback lacked a code or realmId")


async def connected_elsewhere(session: AsyncSession, realm_id: str, org_id: str) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Connection.realm_id == realm_id,
                    Connection.org_id != org_id,
                    Connection.status == ConnectionStatus.CONNECTED,
                )
            )
        )
    )


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


async def _hold(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    started: _Started,
    realm_id: str,
    tokens: TokenSet,
    exchange_started_at: datetime,
    company: CompanyInfo,
    preferences: Preferences,
) -> str:
    handle = secrets.token_urlsafe(32)
    async with unit_of_work(db, queue) as session:
        await locks.lock_companies(session, realm_id)
        if await connected_elsewhere(session, realm_id, started.org_id):
            raise CallbackError(
                CallbackReason.COMPANY_ALREADY_CONNECTED,
                "this QuickBooks company is connected to another organisation",
            )
        if await grants.revoked_since(session, realm_id, exchange_started_at):
            raise CallbackError(
                CallbackReason.CONSENT_WITHDRAWN,
                "a revoke for this company was sent while the code was exchanged",
            )
        grant = PendingGrant(
            id=uuid.uuid4(),
            handle_hash=hash_secret(handle),
            org_id=started.org_id,
            user_id=started.user_id,
            realm_id=realm_id,
            access_expires_at=tokens.access_expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            refresh_hard_expires_at=tokens.refresh_hard_expires_at,
            company=company_fields(company, preferences),
            exchange_started_at=exchange_started_at,
            expires_at=utcnow() + HANDLE_TTL,
        )
        token_vault.seal(
            intuit.keyring,
            grant,
            token_vault.TokenPair(
                tokens.access_token.get_secret_value(), tokens.refresh_token.get_secret_value()
            ),
        )
        session.add(grant)
    log.info("quickbooks_consent_pending", org_id=started.org_id, realm_id=realm_id)
    return handle


def company_fields(company: CompanyInfo, preferences: Preferences) -> dict[str, Any]:
    tax = preferences.tax_prefs
    currency = preferences.currency_prefs
    forms = preferences.sales_forms_prefs
    home = currency.home_currency.value if currency and currency.home_currency else None
    return {
        "company_name": _text(company.company_name or company.legal_name, COMPANY_NAME_MAX),
        "country": _text(company.country, 8),
        "automated_sales_tax": bool(tax and tax.partner_tax_enabled),
        "multi_currency": bool(currency and currency.multi_currency_enabled),
        "home_currency": _text(home, 3),
        "custom_txn_numbers": bool(forms and forms.custom_txn_numbers),
    }


def _text(value: str | None, limit: int) -> str | None:
    """What QuickBooks sent, cut to the column; NUL can't be stored in Postgres text."""
    cleaned = (value or "").replace("\x00", "")[:limit]
    return cleaned or None
