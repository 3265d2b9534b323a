"""Test connection: read-only checks, one result each, in words a person can act on.

Cheap on purpose, because Intuit meters reads per app: after the credentials check, one batch
call carries every read (CompanyInfo, and a COUNT per entity, or the tax codes themselves when
tax rates are mapped), so a healthy run costs one Accounting API call, plus one token call when
the access token was due. The call waits only briefly on the company's shared limits; a company
busy with its sync gets "busy, try again", not a long wait.

Pool discipline (R13): what the checks need from the database is read in one short session that
is closed before anything is sent to Intuit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.schemas import CheckResult, ConnectionTestReport
from qbsync.connections.tokens import (
    ConnectionTokens,
    ConnectionUnusableError,
    RefreshInProgressError,
)
from qbsync.db import Database
from qbsync.errors import NotFoundError
from qbsync.models import Connection, ConnectionStatus, EntityMapping, MappingKind
from qbsync.qbo import (
    Account,
    BatchItemResult,
    BatchQuery,
    Bill,
    CompanyInfo,
    Customer,
    InvalidGrantError,
    Invoice,
    Item,
    Payment,
    Purchase,
    QboClient,
    QboEntity,
    QboError,
    QboServerError,
    RateLimitBusyError,
    RateLimiterUnavailableError,
    TaxCode,
    TokenError,
    Vendor,
)
from qbsync.qbo.query import EVERY_STATUS, MAX_RESULTS, count_statement
from qbsync.qbo.query import select as select_statement
from qbsync.queue import JobQueue

HARD_EXPIRY_WARNING = timedelta(days=30)
# How long a person waits for another caller's token refresh before being told to retry.
INTERACTIVE_WAIT_SECONDS = 5.0
READS: list[tuple[str, type[QboEntity]]] = [
    ("customers", Customer),
    ("products and services", Item),
    ("accounts", Account),
    ("tax codes", TaxCode),
    ("invoices", Invoice),
    ("payments", Payment),
    ("vendors", Vendor),
    ("bills", Bill),
    ("expenses", Purchase),
]
COMPANY_FILE = "company_file"
_COMPANY_BID = "company"


@dataclass(frozen=True)
class _Stored:
    """What the checks need from the database, read before any call to Intuit."""

    connection_id: uuid.UUID
    realm_id: str
    status: ConnectionStatus
    # Outside the US, platform tax rates must be mapped to tax codes; a US company's lines are
    # only taxable or not.
    maps_tax_codes: bool
    refresh_hard_expires_at: datetime | None
    # platform tax rate → (QuickBooks tax code id, its name when mapped)
    tax_mappings: dict[str, tuple[str, str | None]]


async def run_checks(
    db: Database, queue: JobQueue, intuit: IntuitAccess, org_id: str, now: datetime
) -> ConnectionTestReport:
    stored = await _load(db, org_id)
    checks: list[CheckResult] = []
    client = await _credentials(db, queue, intuit, stored, checks)
    if client is None:
        checks.extend(_skipped(name) for name in (COMPANY_FILE, *_read_names()))
    tax_codes: list[TaxCode] | None = None
    if client is not None:
        results, tax_codes = await _company_file_and_reads(client, bool(stored.tax_mappings))
        checks.extend(results)
    checks.extend(_warnings(stored, now, tax_codes))
    return ConnectionTestReport(
        ok=all(check.outcome != "fail" for check in checks), checked_at=now, checks=checks
    )


async def _load(db: Database, org_id: str) -> _Stored:
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(
                    Connection.id,
                    Connection.realm_id,
                    Connection.status,
                    Connection.country,
                    Connection.refresh_hard_expires_at,
                ).where(Connection.org_id == org_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(
                "This organisation has never connected QuickBooks.", code="not_connected"
            )
        mapped: dict[str, tuple[str, str | None]] = {}
        maps_tax_codes = (row.country or "").upper() != "US"
        if row.status is ConnectionStatus.CONNECTED and maps_tax_codes:
            found = await session.execute(
                select(EntityMapping.platform_id, EntityMapping.qbo_id, EntityMapping.qbo_name)
                .where(
                    EntityMapping.org_id == org_id,
                    EntityMapping.realm_id == row.realm_id,
                    EntityMapping.kind == MappingKind.TAX_RATE,
                    EntityMapping.archived_at.is_(None),
                )
                .order_by(EntityMapping.platform_id)
            )
            mapped = {platform_id: (qbo_id, name) for platform_id, qbo_id, name in found.all()}
    return _Stored(
        connection_id=row.id,
        realm_id=row.realm_id,
        status=row.status,
        maps_tax_codes=maps_tax_codes,
        refresh_hard_expires_at=row.refresh_hard_expires_at,
        tax_mappings=mapped,
    )


async def _credentials(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    stored: _Stored,
    checks: list[CheckResult],
) -> QboClient | None:
    name = "credentials"
    if stored.status is not ConnectionStatus.CONNECTED:
        checks.append(
            CheckResult(
                name=name,
                outcome="fail",
                message="QuickBooks is not connected. Reconnect it to run the checks.",
            )
        )
        return None
    tokens = ConnectionTokens(
        db, intuit, stored.connection_id, queue, wait_limit_seconds=INTERACTIVE_WAIT_SECONDS
    )
    try:
        await tokens.access_token()
    except InvalidGrantError:
        message = (
            "QuickBooks no longer accepts our access (the sign-in expired or was revoked). "
            "Reconnect."
        )
        checks.append(CheckResult(name=name, outcome="fail", message=message))
        return None
    except ConnectionUnusableError as error:
        checks.append(CheckResult(name=name, outcome="fail", message=error.detail))
        return None
    except RefreshInProgressError as error:
        checks.append(CheckResult(name=name, outcome="fail", message=str(error)))
        return None
    except TokenError:
        message = (
            "Intuit's sign-in service did not answer. Nothing is wrong on your side; "
            "try again in a few minutes."
        )
        checks.append(CheckResult(name=name, outcome="fail", message=message))
        return None
    checks.append(CheckResult(name=name, outcome="pass", message="Signed in to QuickBooks."))
    return intuit.client(stored.realm_id, tokens, interactive=True)


async def _company_file_and_reads(
    client: QboClient, read_tax_codes: bool
) -> tuple[list[CheckResult], list[TaxCode] | None]:
    """One batch call; each item's fault fails its own check.

    With tax rates mapped, the tax-code read fetches the codes themselves (inactive included)
    instead of counting them, in the same call, so the mappings can be checked for free.
    """
    queries = [BatchQuery(_COMPANY_BID, "SELECT * FROM CompanyInfo")] + [
        BatchQuery(f"read{n}", _read_statement(entity, read_tax_codes))
        for n, (_, entity) in enumerate(READS)
    ]
    try:
        company, *reads = await client.batch(queries)
    except QboError as error:
        # The whole call failed (Intuit down, or the company's limits stayed full): no item has
        # an answer of its own, so the reads are reported as not checked.
        failed = CheckResult(name=COMPANY_FILE, outcome="fail", message=_why(error))
        return [failed, *(_skipped(name) for name in _read_names())], None
    codes = None
    if read_tax_codes:
        result = reads[[entity for _, entity in READS].index(TaxCode)]
        if result.error is None and len(result.rows) < MAX_RESULTS:
            codes = [row for row in result.rows if isinstance(row, TaxCode)]
    return [_company_file(company), *_reads(reads)], codes


def _read_statement(entity: type[QboEntity], full: bool) -> str:
    if full and entity is TaxCode:
        return select_statement(entity.entity_name, EVERY_STATUS)
    return count_statement(entity.entity_name)


def _company_file(result: BatchItemResult) -> CheckResult:
    if result.error is not None:
        return CheckResult(name=COMPANY_FILE, outcome="fail", message=_why(result.error))
    info = next((row for row in result.rows if isinstance(row, CompanyInfo)), None)
    if info is None:
        odd = QboServerError("QuickBooks answered the CompanyInfo query without the company")
        return CheckResult(name=COMPANY_FILE, outcome="fail", message=_why(odd))
    return CheckResult(
        name=COMPANY_FILE,
        outcome="pass",
        message=f"Reached the company file of {info.company_name or 'your company'}.",
    )


def _reads(results: Sequence[BatchItemResult]) -> list[CheckResult]:
    checks = []
    for (name, _), check, result in zip(READS, _read_names(), results, strict=True):
        if result.error is not None:
            message = f"Can't read {name}: {_why(result.error)}"
            checks.append(CheckResult(name=check, outcome="fail", message=message))
        else:
            checks.append(CheckResult(name=check, outcome="pass", message=f"Can read {name}."))
    return checks


def _warnings(
    stored: _Stored, now: datetime, tax_codes: Sequence[TaxCode] | None
) -> list[CheckResult]:
    warnings: list[CheckResult] = []
    hard = stored.refresh_hard_expires_at
    if hard is not None and hard - now <= HARD_EXPIRY_WARNING:
        days = max(0, (hard - now).days)
        warnings.append(
            CheckResult(
                name="reconnect_soon",
                outcome="warn",
                message=f"Intuit ends this connection in {days} day(s). Reconnect before then "
                "to keep syncing without a gap.",
            )
        )
    needs_tax_codes = stored.status is ConnectionStatus.CONNECTED and stored.maps_tax_codes
    if needs_tax_codes and not stored.tax_mappings:
        warnings.append(
            CheckResult(
                name="tax_rates_mapped",
                outcome="warn",
                message="No tax rates are mapped to QuickBooks tax codes yet. Map them in "
                "the settings so invoices with tax (VAT/GST) sync correctly.",
            )
        )
    if needs_tax_codes and tax_codes is not None:
        broken = _broken_tax_mappings(stored.tax_mappings, tax_codes)
        if broken:
            warnings.append(
                CheckResult(
                    name="tax_rates_mapped",
                    outcome="warn",
                    message=f"{len(broken)} tax rate(s) are mapped to QuickBooks tax codes that "
                    "are gone or inactive: "
                    + "; ".join(broken[:5])
                    + ". Map them again so their invoices sync.",
                )
            )
    return warnings


def _broken_tax_mappings(
    mappings: dict[str, tuple[str, str | None]], codes: Sequence[TaxCode]
) -> list[str]:
    active = {code.id for code in codes if code.active is not False}
    return [
        f"{platform_id} → {name or qbo_id}"
        for platform_id, (qbo_id, name) in mappings.items()
        if qbo_id not in active
    ]


def _read_names() -> list[str]:
    return [f"read_{name.replace(' ', '_')}" for name, _ in READS]


def _skipped(name: str) -> CheckResult:
    return CheckResult(
        name=name, outcome="skipped", message="Not checked: an earlier check failed."
    )


def _why(error: QboError) -> str:
    if isinstance(error, RateLimitBusyError):
        return error.user_message
    if isinstance(error, RateLimiterUnavailableError):
        return "qbsync could not reach its own queue service (Redis). Try again in a minute."
    if error.retryable:
        return "QuickBooks did not answer properly. Try again in a few minutes."
    return error.user_message
