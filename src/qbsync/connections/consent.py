"""From Intuit's consent to a linked company: the callback holds the grant, the confirm links it.

The callback runs in whatever browser Intuit redirects, so it links nothing: it spends the state,
exchanges the code, reads the company and stores the grant as pending under a single-use handle.
The platform's frontend then confirms the handle with its JWT, and only the org and user that
started the consent can link it (connect CSRF, RFC 6749 §10.12, quality-bar S9).

No step holds a database connection while Intuit answers (R13): each phase is its own short
transaction, and Intuit is called between them.

Intuit: "Revoking the refresh token disconnects the app from the company." So a grant we drop is
revoked only when no connection of ours holds that company; otherwise revoking it would cut the
connection that does (another org's, or this org's current one).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from pydantic import SecretStr
from sqlalchemy import exists, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections import token_vault
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
    OAuthState,
    PendingGrant,
    RecordStatus,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.qbo import (
    CompanyInfo,
    Preferences,
    QboAuthorizationError,
    QboError,
    TokenError,
    TokenSet,
)
from qbsync.qbo.realm import is_realm_id
from qbsync.queue import JobQueue, unit_of_work

HANDLE_TTL = timedelta(minutes=10)
log = structlog.get_logger(__name__)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class CallbackError(Exception):
    """Why a consent did not end in a pending grant; `reason` goes to the settings page's URL."""

    def __init__(self, reason: str, detail: str) -> None:
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
    # Some connection of ours holds this company: a grant we drop must not be revoked.
    realm_held: bool


async def receive_callback(
    db: Database, queue: JobQueue, intuit: IntuitAccess, params: CallbackParams
) -> str:
    """The handle the frontend confirms; raises CallbackError with a documented reason."""
    started = await _spend_state(db, queue, params)
    code, realm_id = str(params.code), str(params.realm_id)
    try:
        tokens = await intuit.oauth.exchange_code(code)
    except TokenError as error:
        raise CallbackError("token_exchange_failed", type(error).__name__) from error
    try:
        company, preferences = await _read_company(intuit, realm_id, tokens)
    except QboError as error:
        # Nothing will be stored, so the grant Intuit just made must not outlive this request.
        if not started.realm_held:
            await revoke_quietly(intuit, tokens.refresh_token.get_secret_value())
        if isinstance(error, QboAuthorizationError):
            raise CallbackError("not_company_admin", type(error).__name__) from error
        raise CallbackError("quickbooks_unavailable", type(error).__name__) from error
    handle = secrets.token_urlsafe(32)
    async with unit_of_work(db, queue) as session:
        grant = PendingGrant(
            id=uuid.uuid4(),
            handle_hash=hash_secret(handle),
            org_id=started.org_id,
            user_id=started.user_id,
            realm_id=realm_id,
            access_expires_at=tokens.access_expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            refresh_hard_expires_at=tokens.refresh_hard_expires_at,
            company=_company_fields(company, preferences),
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


async def _spend_state(db: Database, queue: JobQueue, params: CallbackParams) -> _Started:
    """Single use (S5): the state is spent and committed whatever the outcome."""
    failure: CallbackError | None = None
    async with unit_of_work(db, queue) as session:
        try:
            state = await _consume_state(session, params.state)
            _check_params(params)
            realm_id = str(params.realm_id)
            if await _connected_elsewhere(session, realm_id, state.org_id):
                raise CallbackError(
                    "company_already_connected",
                    "this QuickBooks company is connected to another organisation",
                )
            started = _Started(state.org_id, state.user_id, await _realm_held(session, realm_id))
        except CallbackError as error:
            failure = error
    if failure is not None:
        raise failure
    return started


async def _consume_state(session: AsyncSession, state: str | None) -> OAuthState:
    if not state or len(state) > 256:
        raise CallbackError("invalid_state", "the callback carried no valid state")
    row = await session.scalar(
        select(OAuthState).where(OAuthState.state_hash == hash_secret(state)).with_for_update()
    )
    if row is None:
        raise CallbackError("invalid_state", "unknown state")
    if row.used_at is not None:
        raise CallbackError("invalid_state", "state already used")
    row.used_at = utcnow()
    if row.expires_at <= utcnow():
        raise CallbackError("expired_state", "the consent took longer than 10 minutes")
    return row


def _check_params(params: CallbackParams) -> None:
    if params.error:
        reason = "access_denied" if params.error == "access_denied" else "authorization_failed"
        raise CallbackError(reason, f"Intuit answered error={params.error[:64]}")
    if not params.code or len(params.code) > 2048 or not is_realm_id(params.realm_id):
        raise CallbackError("invalid_request", "the callback lacked a code or realmId")


async def _connected_elsewhere(session: AsyncSession, realm_id: str, org_id: str) -> bool:
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


async def _realm_held(session: AsyncSession, realm_id: str) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Connection.realm_id == realm_id,
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


def _company_fields(company: CompanyInfo, preferences: Preferences) -> dict[str, Any]:
    tax = preferences.tax_prefs
    currency = preferences.currency_prefs
    forms = preferences.sales_forms_prefs
    home = currency.home_currency.value if currency and currency.home_currency else None
    return {
        "company_name": company.company_name or company.legal_name,
        "country": (company.country or "")[:8] or None,
        "automated_sales_tax": bool(tax and tax.partner_tax_enabled),
        "multi_currency": bool(currency and currency.multi_currency_enabled),
        "home_currency": home[:3] if home else None,
        "custom_txn_numbers": bool(forms and forms.custom_txn_numbers),
    }


class ConsentNotFoundError(NotFoundError):
    code = "consent_not_found"


class ConsentExpiredError(ConflictError):
    code = "consent_expired"


class ConsentNotYoursError(ForbiddenError):
    code = "consent_not_yours"


class CompanyTakenError(ConflictError):
    code = "company_already_connected"


COMPANY_TAKEN = (
    "This QuickBooks company is already connected to another organisation. Disconnect it "
    "there first; nothing was linked here."
)


@dataclass
class _Outcome:
    """What the confirm transaction decided; Intuit is told only after it committed."""

    failure: AppError | None = None
    revoke: str | None = None
    connection: Connection | None = None


async def confirm(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    *,
    org_id: str,
    user_id: str,
    handle: str,
) -> Connection:
    """Link the pending grant to the org, if this org's user started it."""
    try:
        async with unit_of_work(db, queue) as session:
            outcome = await _decide(session, intuit, org_id, user_id, handle)
    except IntegrityError:
        # The partial unique index caught what the company lock did not: spend the handle.
        async with unit_of_work(db, queue) as session:
            await _spend_grant(session, handle)
        outcome = _Outcome(failure=CompanyTakenError(COMPANY_TAKEN))
    if outcome.revoke is not None:
        await revoke_quietly(intuit, outcome.revoke)
    if outcome.failure is not None:
        log.info("quickbooks_confirm_refused", org_id=org_id, code=outcome.failure.code)
        raise outcome.failure
    assert outcome.connection is not None
    return outcome.connection


async def _decide(
    session: AsyncSession, intuit: IntuitAccess, org_id: str, user_id: str, handle: str
) -> _Outcome:
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
    tokens = _open_grant(intuit, grant)
    token_vault.shred(grant)
    if grant.expires_at <= utcnow() or tokens is None:
        return _Outcome(
            failure=ConsentExpiredError(
                "This QuickBooks consent was not confirmed within 10 minutes. Connect again.",
                field="handle",
            ),
            revoke=await _revocable(session, grant, tokens),
        )
    if grant.org_id != org_id or grant.user_id != user_id:
        log.warning("quickbooks_consent_not_yours", org_id=org_id, started_by_org=grant.org_id)
        return _Outcome(
            failure=ConsentNotYoursError(
                "This QuickBooks consent was started by another user. Nothing was linked and "
                "the access it granted was withdrawn. Connect from your own account.",
                field="handle",
            ),
            revoke=await _revocable(session, grant, tokens),
        )
    # One confirm per company at a time, across every process: the check below then holds.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"qbsync:realm:{grant.realm_id}"},
    )
    if await _connected_elsewhere(session, grant.realm_id, org_id):
        # Not revoked: that would disconnect the app from the company, the other org included.
        return _Outcome(failure=CompanyTakenError(COMPANY_TAKEN, field="handle"))
    connection, old_grant = await _link(session, intuit, grant, tokens)
    return _Outcome(connection=connection, revoke=old_grant)


def _open_grant(intuit: IntuitAccess, grant: PendingGrant) -> token_vault.TokenPair | None:
    try:
        return token_vault.open_tokens(intuit.keyring, grant)
    except CryptoError:
        log.error("pending_grant_unreadable", grant_id=str(grant.id))
        return None


async def _revocable(
    session: AsyncSession, grant: PendingGrant, tokens: token_vault.TokenPair | None
) -> str | None:
    if tokens is None or await _realm_held(session, grant.realm_id):
        return None
    return tokens.refresh_token


async def _spend_grant(session: AsyncSession, handle: str) -> None:
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
) -> tuple[Connection, str | None]:
    """Store the grant on the org's connection; answers the old company's grant to revoke."""
    connection = await session.scalar(
        select(Connection).where(Connection.org_id == grant.org_id).with_for_update()
    )
    old_grant: str | None = None
    if connection is None:
        connection = Connection(id=uuid.uuid4(), org_id=grant.org_id, realm_id=grant.realm_id)
        session.add(connection)
    elif connection.realm_id != grant.realm_id:
        old_grant = _old_refresh_token(intuit, connection)
        await _leave_company(session, connection.org_id, connection.realm_id)
        connection.realm_id = grant.realm_id
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
    return connection, old_grant


def _old_refresh_token(intuit: IntuitAccess, connection: Connection) -> str | None:
    if connection.status is not ConnectionStatus.CONNECTED:
        return None
    try:
        tokens = token_vault.open_tokens(intuit.keyring, connection)
    except CryptoError:
        return None
    return tokens.refresh_token if tokens is not None else None


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
            SyncRecord.status.in_(
                [
                    RecordStatus.HELD,
                    RecordStatus.PENDING,
                    RecordStatus.IN_PROGRESS,
                    RecordStatus.FAILED,
                ]
            ),
        )
        .values(realm_id=None, qbo_id=None, qbo_sync_token=None)
    )
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status == RecordStatus.IN_PROGRESS)
        .values(status=RecordStatus.PENDING)
    )


async def _resume_held_work(session: AsyncSession, org_id: str) -> None:
    await session.execute(
        update(SyncRecord)
        .where(SyncRecord.org_id == org_id, SyncRecord.status == RecordStatus.HELD)
        .values(status=RecordStatus.PENDING, next_attempt_at=utcnow())
    )


async def revoke_quietly(intuit: IntuitAccess, refresh_token: str) -> bool:
    """Best effort: a grant Intuit keeps after this dies on its own within ~100 days."""
    try:
        await intuit.oauth.revoke(refresh_token)
    except TokenError as error:
        log.warning("revoke_failed", error=type(error).__name__)
        return False
    return True


async def expire_pending_grants(db: Database, queue: JobQueue, intuit: IntuitAccess) -> int:
    """Grants nobody confirmed in time: revoked (where no connection needs them), then deleted."""
    now = utcnow()
    to_revoke: list[str] = []
    async with unit_of_work(db, queue) as session:
        expired = list(
            await session.scalars(
                select(PendingGrant)
                .where(PendingGrant.expires_at <= now)
                .with_for_update(skip_locked=True)
                .limit(500)
            )
        )
        for grant in expired:
            if grant.used_at is None:
                revocable = await _revocable(session, grant, _open_grant(intuit, grant))
                if revocable is not None:
                    to_revoke.append(revocable)
            await session.delete(grant)
    for refresh_token in to_revoke:
        await revoke_quietly(intuit, refresh_token)
    if expired:
        log.info("pending_grants_expired", count=len(expired), revoked=len(to_revoke))
    return len(expired)
