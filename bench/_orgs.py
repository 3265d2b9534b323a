"""An org ready to push invoices (P3, P4, P7): connected to a simulated UK company by qbsync's
real OAuth flow, its VAT rate and consulting service mapped, invoices pushed automatically; and
a backlog of invoices sent as the platform sends them (signed deliveries of up to 100 events),
and Postgres watched until every record of an org has settled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import Child, QbsyncApi, event, id_named, invoice_data, simulator_documents
from qbsync.models import RecordKind, RecordStatus, SyncRecord

UNFINISHED = (RecordStatus.PENDING, RecordStatus.IN_PROGRESS)
DELIVERY_SIZE = 100


def invoice_number(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}"


@dataclass(frozen=True)
class CompanyIds:
    """What the mappings name in a simulated UK company: the same in every company the
    simulator seeds (its lists are created in one order)."""

    consulting_item: str
    consulting_income: str


async def company_ids(simulator_url: str, realm_id: str) -> CompanyIds:
    items = await simulator_documents(simulator_url, realm_id, "Item")
    accounts = await simulator_documents(simulator_url, realm_id, "Account")
    return CompanyIds(id_named(items, "Consulting"), id_named(accounts, "Consulting Income"))


async def set_up_org(
    api: QbsyncApi, org_id: str, realm_id: str, simulator_url: str, ids: CompanyIds
) -> None:
    """Connect, map, configure (auto-push on), and send the VAT rate the invoices use."""
    await api.connect(org_id, realm_id, simulator_url)
    await api.call("PUT", "mappings/tax-rates/tr_vat20", org_id, {"qbo_id": "3", "rate": "20.00"})
    await api.call(
        "PUT",
        "mappings/services/svc_consulting",
        org_id,
        {"qbo_id": ids.consulting_item},
    )
    current = await api.call("GET", "settings", org_id)
    body = {key: value for key, value in current.items() if key not in ("saved", "updated_at")}
    body |= {
        "invoice_auto_push": True,
        "default_income_account_id": ids.consulting_income,
    }
    await api.call("PUT", "settings", org_id, body)
    start = datetime.now(UTC) - timedelta(hours=2)
    vat = {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"}
    await api.send(event(org_id, "tax_rate.upserted", vat, start))


async def send_invoices(api: QbsyncApi, org_id: str, prefix: str, indexes: Sequence[int]) -> None:
    """`invoice.upserted` for each index (id `inv_{prefix}_{index}`, number `{prefix}-{index}`),
    up to 100 events a delivery."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for first in range(0, len(indexes), DELIVERY_SIZE):
        batch = [
            event(
                org_id,
                "invoice.upserted",
                invoice_data(f"inv_{prefix}_{index}", invoice_number(prefix, index)),
                start + timedelta(milliseconds=index + 1),
            )
            for index in indexes[first : first + DELIVERY_SIZE]
        ]
        await api.send(batch)


async def unfinished_by_org(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(SyncRecord.org_id, func.count())
            .where(SyncRecord.kind == RecordKind.INVOICE, SyncRecord.status.in_(UNFINISHED))
            .group_by(SyncRecord.org_id)
        )
        return {str(org): int(count) for org, count in rows}


async def statuses(engine: AsyncEngine, org_id: str | None = None) -> dict[str, int]:
    query = select(SyncRecord.status, func.count()).where(SyncRecord.kind == RecordKind.INVOICE)
    if org_id is not None:
        query = query.where(SyncRecord.org_id == org_id)
    async with engine.connect() as connection:
        rows = await connection.execute(query.group_by(SyncRecord.status))
        return {RecordStatus(status).value: int(count) for status, count in rows}


async def wait_until_settled(
    engine: AsyncEngine, workers: Sequence[Child], limit_seconds: float, org_id: str | None = None
) -> bool:
    """True once no invoice (of `org_id`, or of any org) is pending or in progress; False when
    `limit_seconds` passed first."""
    deadline = time.monotonic() + limit_seconds
    while True:
        left = await unfinished_by_org(engine)
        if not (left.get(org_id, 0) if org_id is not None else sum(left.values())):
            return True
        if time.monotonic() > deadline:
            return False
        for worker in workers:
            worker.check_alive()
        await asyncio.sleep(0.25)
