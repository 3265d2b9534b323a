"""Test connection: read-only checks, one result each, in words a person can act on."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.schemas import CheckResult, ConnectionTestReport
from qbsync.connections.tokens import ConnectionTokens, ConnectionUnusableError
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, EntityMapping, MappingKind
from qbsync.qbo import (
    Account,
    Bill,
    Customer,
    InvalidGrantError,
    Invoice,
    Item,
    Payment,
    Purchase,
    QboClient,
    QboEntity,
    QboError,
    TaxCode,
    TokenError,
    Vendor,
)
from qbsync.queue import JobQueue

HARD_EXPIRY_WARNING = timedelta(days=30)
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


async def run_checks(
    session: AsyncSession,
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    connection: Connection,
    now: datetime,
) -> ConnectionTestReport:
    checks: list[CheckResult] = []
    client = await _credentials(db, queue, intuit, connection, checks)
    if client is None:
        checks.append(_skipped("company_file"))
        checks.extend(_skipped(f"read_{name.replace(' ', '_')}") for name, _ in READS)
    elif await _company_file(client, checks):
        for name, entity in READS:
            checks.append(await _read(client, name, entity))
    else:
        checks.extend(_skipped(f"read_{name.replace(' ', '_')}") for name, _ in READS)
    checks.extend(await _warnings(session, connection, now))
    return ConnectionTestReport(
        ok=all(check.outcome != "fail" for check in checks), checked_at=now, checks=checks
    )


async def _credentials(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    connection: Connection,
    checks: list[CheckResult],
) -> QboClient | None:
    name = "credentials"
    if connection.status is not ConnectionStatus.CONNECTED:
        checks.append(
            CheckResult(
                name=name,
                outcome="fail",
                message="QuickBooks is not connected. Reconnect it to run the checks.",
            )
        )
        return None
    tokens = ConnectionTokens(db, intuit, connection.id, queue)
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
    except TokenError:
        message = (
            "Intuit's sign-in service did not answer. Nothing is wrong on your side; "
            "try again in a few minutes."
        )
        checks.append(CheckResult(name=name, outcome="fail", message=message))
        return None
    checks.append(CheckResult(name=name, outcome="pass", message="Signed in to QuickBooks."))
    return intuit.client(connection.realm_id, tokens, interactive=True)


async def _company_file(client: QboClient, checks: list[CheckResult]) -> bool:
    try:
        company = await client.company_info()
    except QboError as error:
        checks.append(CheckResult(name="company_file", outcome="fail", message=_why(error)))
        return False
    checks.append(
        CheckResult(
            name="company_file",
            outcome="pass",
            message=f"Reached the company file of {company.company_name or 'your company'}.",
        )
    )
    return True


async def _read(client: QboClient, name: str, entity: type[QboEntity]) -> CheckResult:
    check = f"read_{name.replace(' ', '_')}"
    try:
        await client.count(entity)
    except QboError as error:
        return CheckResult(name=check, outcome="fail", message=f"Can't read {name}: {_why(error)}")
    return CheckResult(name=check, outcome="pass", message=f"Can read {name}.")


async def _warnings(
    session: AsyncSession, connection: Connection, now: datetime
) -> list[CheckResult]:
    warnings: list[CheckResult] = []
    hard = connection.refresh_hard_expires_at
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
    if connection.status is ConnectionStatus.CONNECTED and not connection.automated_sales_tax:
        mapped = await session.scalar(
            select(func.count())
            .select_from(EntityMapping)
            .where(
                EntityMapping.org_id == connection.org_id,
                EntityMapping.realm_id == connection.realm_id,
                EntityMapping.kind == MappingKind.TAX_RATE,
                EntityMapping.archived_at.is_(None),
            )
        )
        if not mapped:
            warnings.append(
                CheckResult(
                    name="tax_rates_mapped",
                    outcome="warn",
                    message="No tax rates are mapped to QuickBooks tax codes yet. Map them in "
                    "the settings so invoices with tax (VAT/GST) sync correctly.",
                )
            )
    return warnings


def _skipped(name: str) -> CheckResult:
    return CheckResult(
        name=name, outcome="skipped", message="Not checked: an earlier check failed."
    )


def _why(error: QboError) -> str:
    if error.retryable:
        return "QuickBooks did not answer properly. Try again in a few minutes."
    return error.user_message
