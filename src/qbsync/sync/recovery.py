"""The document a write may have made when its answer never came (a worker killed mid-push, a
lost response): found by the marker qbsync writes on every document it creates, among the
documents QuickBooks created in the minutes after the write was noted, whatever the record's
snapshot says now (a newer version may have changed its date, number or customer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from qbsync.models import ExpenseMode, RecordKind, SyncRecord
from qbsync.qbo import Bill, Invoice, Payment, Purchase, QboEntity, quote
from qbsync.sync.context import PushContext
from qbsync.sync.invoices import document_marker
from qbsync.sync.plans import in_quickbooks

# Our clock and QuickBooks' may disagree by a little; a wider window only costs rows read.
CLOCK_MARGIN = timedelta(minutes=2)
# A write sent after its note reaches QuickBooks within Intuit's 120 s request limit.
SEND_WINDOW = timedelta(minutes=3)


def needs_search(ctx: PushContext, record: SyncRecord) -> bool:
    """A create may have landed unanswered: noted, and no document known in this company."""
    return (
        record.write_started_at is not None
        and record.kind is not RecordKind.CLIENT  # customers are found by their own marker
        and not in_quickbooks(ctx, record)
    )


async def find_lost(ctx: PushContext, records: Sequence[SyncRecord]) -> dict[uuid.UUID, QboEntity]:
    """The documents unanswered creates of these records made, by record: one query per kind
    of document for the whole slice, over the minutes their writes could have landed in."""
    wanted = {document_marker(record): record for record in records if needs_search(ctx, record)}
    if not wanted:
        return {}
    notes = [record.write_started_at for record in wanted.values() if record.write_started_at]
    since = (min(notes) - CLOCK_MARGIN).isoformat(timespec="seconds")
    until = (max(notes) + SEND_WINDOW + CLOCK_MARGIN).isoformat(timespec="seconds")
    where = f"MetaData.CreateTime >= {quote(since)} AND MetaData.CreateTime <= {quote(until)}"
    found: dict[uuid.UUID, QboEntity] = {}
    types = {entity for record in wanted.values() for entity in _types(ctx, record)}
    for entity_type in sorted(types, key=lambda entity: entity.entity_name):
        for row in await ctx.client.query_all(entity_type, where):
            note = getattr(row, "private_note", None) or ""
            for marker, record in wanted.items():
                if marker in note and _fits(record, row):
                    found[record.id] = row
    return found


def _fits(record: SyncRecord, row: QboEntity) -> bool:
    return type(row) in _KIND_TYPES[record.kind]


def adopt(ctx: PushContext, record: SyncRecord, found: QboEntity) -> None:
    """The record now knows its document: the planner updates, voids or deletes it."""
    record.qbo_id = found.id
    record.qbo_sync_token = found.sync_token
    record.realm_id = ctx.company.realm_id
    record.qbo_entity = type(found).entity_name
    record.qbo_doc_number = getattr(found, "doc_number", None)


_KIND_TYPES: dict[RecordKind, tuple[type[QboEntity], ...]] = {
    RecordKind.INVOICE: (Invoice,),
    RecordKind.PAYMENT: (Payment,),
    RecordKind.EXPENSE: (Bill, Purchase),
}


def _types(ctx: PushContext, record: SyncRecord) -> tuple[type[QboEntity], ...]:
    if record.kind is RecordKind.INVOICE:
        return (Invoice,)
    if record.kind is RecordKind.PAYMENT:
        return (Payment,)
    # An expense was sent as the settings said then; the likelier type is read first.
    if ctx.settings.expense_mode == ExpenseMode.EXPENSE:
        return (Purchase, Bill)
    return (Bill, Purchase)
