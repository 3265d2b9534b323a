"""What one push job knows about its company: settings, mappings, the platform's catalogue, the
company's reference lists (cached), and a QuickBooks client for background work.

Built once per job slice, read in short sessions: no connection is held across a call to Intuit
(R13).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tokens import ConnectionTokens
from qbsync.db import Database
from qbsync.mappings import service as mapping_service
from qbsync.mappings.company import Company
from qbsync.mappings.references import References
from qbsync.mappings.schemas import SyncSettingsView
from qbsync.mappings.settings_service import read_settings
from qbsync.models import (
    CatalogueEntry,
    CatalogueKind,
    EntityMapping,
    MappingKind,
    MappingSource,
)
from qbsync.models.base import utcnow
from qbsync.qbo import QboClient, RetryPolicy
from qbsync.queue import JobQueue
from qbsync.reference_cache import ReferenceCache

# A background push rides out a short blip itself and hands anything longer (a 429 asking for
# a minute, a 5xx storm) back to the queue as a deferred job: no worker sleeps through a storm.
PUSH_RETRY = RetryPolicy(
    max_attempts=3, base_delay_seconds=0.5, max_delay_seconds=2.0, max_total_seconds=8.0
)
MAPPED_KINDS = (
    MappingKind.CLIENT,
    MappingKind.SERVICE,
    MappingKind.TAX_RATE,
    MappingKind.EXPENSE_CATEGORY,
    MappingKind.SUPPLIER,
)


@dataclass
class PushContext:
    db: Database
    queue: JobQueue
    cache: ReferenceCache
    company: Company
    settings: SyncSettingsView
    client: QboClient
    refs: References
    mappings: dict[MappingKind, dict[str, EntityMapping]]
    services: dict[str, dict[str, Any]]
    tax_rates: dict[str, Decimal]
    # Reference lists this job changed: dropped from the shared cache when the job ends.
    changed_lists: set[str] = field(default_factory=set)

    def mapped(self, kind: MappingKind, platform_id: str) -> str | None:
        row = self.mappings[kind].get(platform_id)
        return row.qbo_id if row is not None else None

    async def remember(
        self,
        kind: MappingKind,
        platform_id: str,
        qbo_id: str,
        qbo_name: str | None,
        source: MappingSource,
    ) -> None:
        """A mapping this push made (a customer, item or vendor it created or matched), stored
        at once: a later failure of the same push must not forget what exists in QuickBooks."""
        async with self.db.sessions() as session:
            await session.execute(
                insert(EntityMapping)
                .values(
                    id=uuid.uuid4(),
                    org_id=self.company.org_id,
                    realm_id=self.company.realm_id,
                    kind=kind,
                    platform_id=platform_id,
                    qbo_id=qbo_id,
                    qbo_name=qbo_name,
                    source=source,
                    details={},
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            await session.commit()
            row = await session.scalar(
                select(EntityMapping).where(
                    EntityMapping.org_id == self.company.org_id,
                    EntityMapping.realm_id == self.company.realm_id,
                    EntityMapping.kind == kind,
                    EntityMapping.platform_id == platform_id,
                )
            )
        if row is not None:
            self.mappings[kind][platform_id] = row


async def build_context(
    db: Database,
    queue: JobQueue,
    intuit: IntuitAccess,
    cache: ReferenceCache,
    company: Company,
    *,
    limiter_wait_seconds: float,
) -> PushContext:
    """`limiter_wait_seconds`: how long a call waits for a slot under the company's shared
    limits before the slice defers (`QBSYNC_PUSH__LIMITER_WAIT_SECONDS`)."""
    settings = await read_settings(db, company.org_id)
    mappings = await mapping_service.active_mappings(db, company, MAPPED_KINDS)
    services, rates = await _catalogue(db, company.org_id)
    tokens = ConnectionTokens(db, intuit, company.connection_id, queue)
    client = intuit.background_client(
        company.realm_id,
        tokens,
        retry=PUSH_RETRY,
        limiter_wait_seconds=limiter_wait_seconds,
    )
    return PushContext(
        db=db,
        queue=queue,
        cache=cache,
        company=company,
        settings=settings,
        client=client,
        refs=References(cache, company.realm_id, client),
        mappings=mappings,
        services=services,
        tax_rates=rates,
    )


async def _catalogue(
    db: Database, org_id: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Decimal]]:
    """The platform's services and tax rates as its last events described them."""
    async with db.sessions() as session:
        rows: Sequence[CatalogueEntry] = (
            await session.scalars(
                select(CatalogueEntry).where(
                    CatalogueEntry.org_id == org_id, CatalogueEntry.deleted.is_(False)
                )
            )
        ).all()
    services = {row.platform_id: row.snapshot for row in rows if row.kind is CatalogueKind.SERVICE}
    rates: dict[str, Decimal] = {}
    for row in rows:
        if row.kind is CatalogueKind.TAX_RATE:
            try:
                rates[row.platform_id] = Decimal(str(row.snapshot.get("rate")))
            except InvalidOperation:
                continue
    return services, rates
