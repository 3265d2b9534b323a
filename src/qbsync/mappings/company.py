"""The org's QuickBooks company as the settings page needs it, and a client to read it with.

Pool discipline (R13): the connection row is read in one short session, closed before anything
is sent to Intuit; the client's token provider opens its own short sessions when it must.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections.checks import INTERACTIVE_WAIT_SECONDS
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tokens import ConnectionTokens
from qbsync.db import Database
from qbsync.errors import ConflictError
from qbsync.models import Connection, ConnectionStatus
from qbsync.qbo import QboClient
from qbsync.queue import JobQueue


class NotConnectedError(ConflictError):
    code = "not_connected"


class CompanyChangedError(ConflictError):
    code = "company_changed"


@dataclass(frozen=True)
class Company:
    """What qbsync stored about the company at connect time (CompanyInfo and Preferences)."""

    connection_id: uuid.UUID
    org_id: str
    realm_id: str
    status: ConnectionStatus
    company_name: str | None
    country: str | None
    home_currency: str | None
    multi_currency: bool
    automated_sales_tax: bool
    custom_txn_numbers: bool

    @property
    def is_us(self) -> bool:
        return (self.country or "").upper() == "US"

    @property
    def tax_by_flag(self) -> bool:
        """A US company: a line is only taxable (TAX) or not (NON), and qbsync sends the
        platform's tax total. Companies made since 2017 use automated sales tax; for the few on
        QuickBooks' older US sales tax qbsync does the same rather than pick a tax code itself."""
        return self.is_us


async def find_company(db: Database, org_id: str) -> Company | None:
    """The org's company, connected or not; None when it never connected."""
    async with db.sessions() as session:
        row = await session.scalar(select(Connection).where(Connection.org_id == org_id))
        if row is None:
            return None
        return Company(
            connection_id=row.id,
            org_id=row.org_id,
            realm_id=row.realm_id,
            status=row.status,
            company_name=row.company_name,
            country=row.country,
            home_currency=row.home_currency,
            multi_currency=row.multi_currency,
            automated_sales_tax=row.automated_sales_tax,
            custom_txn_numbers=row.custom_txn_numbers,
        )


async def connected_company(db: Database, org_id: str, *, purpose: str) -> Company:
    """The org's company, refusing with 409 `not_connected` unless it is connected now.

    `purpose` finishes the sentence "Connect QuickBooks to …" in the refusal.
    """
    company = await find_company(db, org_id)
    if company is not None and company.status is ConnectionStatus.NEEDS_REAUTH:
        raise ConflictError(
            f"QuickBooks no longer accepts our access: reconnect it to {purpose}.",
            code="needs_reauth",
        )
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        state = "is not connected" if company is None else "was disconnected"
        raise NotConnectedError(f"QuickBooks {state}: connect it to {purpose}.")
    return company


async def same_company(session: AsyncSession, company: Company) -> None:
    """Refuse a write checked against `company` once the org has switched to another.

    A share lock on the connection row, held to the end of the writing transaction: a switch
    takes that row's update lock before it archives mappings and clears account ids, so the two
    are serialised.
    """
    realm_id = await session.scalar(
        select(Connection.realm_id)
        .where(Connection.org_id == company.org_id)
        .with_for_update(read=True)
    )
    if realm_id != company.realm_id:
        raise CompanyChangedError(
            "The QuickBooks company changed while this was being checked; nothing was saved."
        )


def reader(db: Database, queue: JobQueue, intuit: IntuitAccess, company: Company) -> QboClient:
    """A client for a person waiting on a page: short retries, short waits on shared limits."""
    tokens = ConnectionTokens(
        db, intuit, company.connection_id, queue, wait_limit_seconds=INTERACTIVE_WAIT_SECONDS
    )
    return intuit.client(company.realm_id, tokens, interactive=True)
