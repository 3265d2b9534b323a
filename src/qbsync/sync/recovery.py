"""The document a write may have made when its answer never came (a worker killed mid-push, a
lost response): found by the marker qbsync writes on every document it creates, among the
documents QuickBooks created since the write was noted, whatever the record's snapshot says now
(a newer version may have changed its date, number or customer)."""

from __future__ import annotations

from datetime import timedelta

from qbsync.models import ExpenseMode, RecordKind, SyncRecord
from qbsync.qbo import Bill, Invoice, Payment, Purchase, QboEntity, quote
from qbsync.sync.context import PushContext
from qbsync.sync.invoices import document_marker

# Our clock and QuickBooks' may disagree by a little; a wider window only costs rows read.
CLOCK_MARGIN = timedelta(minutes=15)


async def find_lost(ctx: PushContext, record: SyncRecord) -> QboEntity | None:
    """The document an unanswered create of this record made, or None when there is none.
    A client's customer is found by its own marker when it is created (`customers`)."""
    if record.write_started_at is None or record.kind is RecordKind.CLIENT:
        return None
    since = (record.write_started_at - CLOCK_MARGIN).isoformat(timespec="seconds")
    where = f"MetaData.CreateTime >= {quote(since)}"
    marker = document_marker(record)
    for entity_type in _types(ctx, record):
        for row in await ctx.client.query_all(entity_type, where):
            note = getattr(row, "private_note", None)
            if note and marker in note:
                return row
    return None


def adopt(ctx: PushContext, record: SyncRecord, found: QboEntity) -> None:
    """The record now knows its document: the planner updates, voids or deletes it."""
    record.qbo_id = found.id
    record.qbo_sync_token = found.sync_token
    record.realm_id = ctx.company.realm_id
    record.qbo_entity = type(found).entity_name
    record.qbo_doc_number = getattr(found, "doc_number", None)


def _types(ctx: PushContext, record: SyncRecord) -> tuple[type[QboEntity], ...]:
    if record.kind is RecordKind.INVOICE:
        return (Invoice,)
    if record.kind is RecordKind.PAYMENT:
        return (Payment,)
    # An expense was sent as the settings said then; the likelier type is read first.
    if ctx.settings.expense_mode == ExpenseMode.EXPENSE:
        return (Purchase, Bill)
    return (Bill, Purchase)
