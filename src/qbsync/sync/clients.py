"""A client record: its QuickBooks customer linked or created; a deleted client's customer made
inactive, where QuickBooks allows it (no open balance)."""

from __future__ import annotations

from qbsync.mappings.matching import ClientFacts
from qbsync.mappings.snapshots import ClientSnapshot
from qbsync.models import MappingKind, SyncRecord
from qbsync.qbo import Customer
from qbsync.sync.context import PushContext
from qbsync.sync.customers import customer_for
from qbsync.sync.failures import PushFailedError
from qbsync.sync.plans import Done, Plan, Write


async def plan_client(ctx: PushContext, record: SyncRecord) -> Plan:
    if record.operation == "delete":
        return await _deactivate(ctx, record)
    client = ClientSnapshot.model_validate(record.snapshot)
    facts = ClientFacts(client.id, client.name, client.email, client.company_name)
    return Done(await customer_for(ctx, facts, client))


async def _deactivate(ctx: PushContext, record: SyncRecord) -> Plan:
    qbo_id = ctx.mapped(MappingKind.CLIENT, record.platform_id)
    if qbo_id is None:
        return Done(None)
    current = (await ctx.refs.current(Customer, [qbo_id])).get(qbo_id)
    if current is None or current.active is False:
        return Done(qbo_id, sync_token=current.sync_token if current else None)
    if current.balance:
        raise PushFailedError(
            "customer_has_open_balance",
            f'QuickBooks customer "{current.display_name}" still has an open balance of '
            f"{current.balance}, and QuickBooks keeps a customer with an open balance active: "
            "settle or write off its invoices in QuickBooks, then retry.",
        )
    return Write(
        "update",
        Customer(id=qbo_id, sync_token=current.sync_token, active=False),
        f'Making customer "{current.display_name}" inactive',
        reread=lambda: ctx.client.get(Customer, qbo_id),
    )
