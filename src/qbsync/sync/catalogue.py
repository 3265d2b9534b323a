"""The platform's services renamed: only the items qbsync created itself follow the new name.
An item an accountant made or chose (a `manual` or `matched` mapping) is never renamed."""

from __future__ import annotations

import structlog
from sqlalchemy import update

from qbsync.mappings.names import ITEM_NAME_LENGTH, quickbooks_name
from qbsync.models import EntityMapping, MappingKind, MappingSource
from qbsync.qbo import Item, QboError
from qbsync.sync.context import PushContext
from qbsync.sync.customers import request_id

log = structlog.get_logger(__name__)


async def rename_created_items(ctx: PushContext) -> int:
    """Items qbsync created whose service the platform renamed since: renamed in QuickBooks.
    Costs nothing (no call) when no name changed."""
    renamed = 0
    for service_id, mapping in list(ctx.mappings[MappingKind.SERVICE].items()):
        listed = ctx.services.get(service_id)
        if mapping.source is not MappingSource.CREATED or not listed:
            continue
        if not isinstance(listed.get("name"), str):
            continue
        wanted = quickbooks_name(listed["name"], ITEM_NAME_LENGTH)
        if mapping.qbo_name == wanted:
            continue
        current = (await ctx.refs.current(Item, [mapping.qbo_id])).get(mapping.qbo_id)
        if current is None:
            continue
        if current.name != wanted:
            try:
                await ctx.client.update(
                    Item(id=mapping.qbo_id, sync_token=current.sync_token, name=wanted),
                    requestid=request_id(ctx.company.realm_id, "item-name", service_id, wanted),
                )
            except QboError as error:
                # A name another item holds, or QuickBooks busy: the item keeps its name, and
                # the next push tries again.
                log.warning(
                    "created_item_not_renamed",
                    service_id=service_id,
                    code=error.code,
                    error=type(error).__name__,
                )
                continue
            ctx.changed_lists.add("Item")
            renamed += 1
        async with ctx.db.sessions() as session:
            await session.execute(
                update(EntityMapping).where(EntityMapping.id == mapping.id).values(qbo_name=wanted)
            )
            await session.commit()
        mapping.qbo_name = wanted
    return renamed
