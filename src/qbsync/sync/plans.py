"""What a record's push amounts to once its dependencies are in QuickBooks: one write, or
nothing to write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from qbsync.models import SyncRecord
from qbsync.qbo import QboEntity, QboError
from qbsync.sync.context import PushContext
from qbsync.sync.failures import PushFailedError

Operation = Literal["create", "update", "void", "delete"]
Warning = dict[str, Any]


@dataclass
class Write:
    operation: Operation
    # The payload for create and update; for void and delete only its type, Id and SyncToken.
    entity: QboEntity
    # Names the document in messages: 'Invoice "INV-1"'.
    what: str
    # Findings once QuickBooks answered with the document (e.g. its total differs).
    check: Callable[[QboEntity], list[Warning]] | None = None
    # The document as QuickBooks holds it now, for a second try after a stale SyncToken (5010).
    reread: Callable[[], Awaitable[QboEntity]] | None = None
    # A create refused as a duplicate number that is not this record's own document: the
    # failure naming the holder.
    duplicate: Callable[[QboError], Awaitable[PushFailedError]] | None = None


@dataclass
class Done:
    """Nothing to send: QuickBooks already holds this version (or never held a deleted one)."""

    qbo_id: str | None
    doc_number: str | None = None
    sync_token: str | None = None
    warnings: list[Warning] = field(default_factory=list)


Plan = Write | Done


def in_quickbooks(ctx: PushContext, record: SyncRecord) -> bool:
    """The record's document exists in the company connected now (an id from another company
    means nothing here)."""
    return record.qbo_id is not None and record.realm_id == ctx.company.realm_id


def removal(
    ctx: PushContext,
    record: SyncRecord,
    entity_type: type[QboEntity],
    operation: Literal["void", "delete"],
    what: str,
) -> Plan:
    """Void or delete the record's document; nothing to do when QuickBooks never had it."""
    if not in_quickbooks(ctx, record):
        return Done(None)
    qbo_id = record.qbo_id or ""
    return Write(
        operation,
        entity_type(id=qbo_id, sync_token=record.qbo_sync_token or "0"),
        what,
        reread=lambda: ctx.client.get(entity_type, qbo_id),
    )
