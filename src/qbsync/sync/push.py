"""Push a slice of one company's records: plan each (dependencies first: its customer, items,
vendor), then send the documents — alone, or together through the batch endpoint — and say how
each ended. Nothing here touches the records' rows; `claims` stores the outcomes.

Exactly once (R3, R4): every write carries a requestid fixed by the record, its version, the
operation and the attempt, and a write whose answer never came is remembered on the record
(`write_started_at`). Its next attempt first searches for the document (`recovery`: the marker
qbsync writes on it) and adopts it rather than create another.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from qbsync.connections.tokens import ConnectionUnusableError
from qbsync.models import RecordKind, SyncRecord
from qbsync.qbo import (
    BatchOperation,
    InvalidClientError,
    InvalidGrantError,
    QboClosedPeriodError,
    QboDuplicateDocNumberError,
    QboEntity,
    QboError,
    QboNotFoundError,
    QboStaleObjectError,
    QboThrottledError,
    RateLimitBusyError,
    RateLimiterUnavailableError,
    TokenEndpointUnavailableError,
)
from qbsync.qbo.client import MAX_BATCH_ITEMS
from qbsync.sync.clients import plan_client
from qbsync.sync.context import PushContext
from qbsync.sync.expenses import plan_expense
from qbsync.sync.failures import (
    DEFAULT_WAIT_SECONDS,
    NotPushedError,
    PushDeferredError,
    PushFailedError,
    failure_for,
)
from qbsync.sync.invoices import plan_invoice
from qbsync.sync.payments import plan_payment
from qbsync.sync.plans import Done, Plan, Warning, Write
from qbsync.sync.recovery import adopt, find_lost, needs_search

Planner = Callable[[PushContext, SyncRecord], Awaitable[Plan]]
PLANNERS: dict[RecordKind, Planner] = {
    RecordKind.CLIENT: plan_client,
    RecordKind.INVOICE: plan_invoice,
    RecordKind.EXPENSE: plan_expense,
    RecordKind.PAYMENT: plan_payment,
}
# A slice that found the company's shared limits full tries again this soon at the earliest.
LIMITER_FULL_WAIT_SECONDS = 5.0
# Two or more documents of a slice go through the batch endpoint (void has no batch form).
BATCHABLE = frozenset({"create", "update", "delete"})
Ending = Literal["synced", "failed", "not_pushed", "deferred", "held"]


@dataclass
class Outcome:
    record_id: uuid.UUID
    version: int
    ending: Ending
    qbo_id: str | None = None
    qbo_entity: str | None = None
    sync_token: str | None = None
    doc_number: str | None = None
    warnings: list[Warning] = field(default_factory=list)
    code: str | None = None
    message: str | None = None
    error: dict[str, object] | None = None
    wait_seconds: float | None = None
    # The write may have reached QuickBooks: keep it on the record for the next attempt.
    uncertain: bool = False
    # The document is gone from QuickBooks (deleted): the record forgets its id.
    deleted: bool = False
    # When QuickBooks stamped the written document (its MetaData.LastUpdatedTime).
    written_at: datetime | None = None


def request_id_for(record: SyncRecord, operation: str) -> str:
    """Fixed by record, version, operation and attempt: a resend within an attempt is the same
    request to Intuit; an attempt after a definite refusal is a new one, so QuickBooks does not
    answer a fixed record with the refusal it remembers. A write noted but never answered is
    sent again under its own id, but only for the same version and operation: QuickBooks would
    answer another version's request with the old version's answer."""
    noted = record.write_requestid if record.write_started_at is not None else None
    if noted and noted in (
        _request_id(record, operation, attempt) for attempt in range(1, record.attempts + 1)
    ):
        return noted
    return _request_id(record, operation, record.attempts)


def _request_id(record: SyncRecord, operation: str, attempt: int) -> str:
    text = f"{record.id}:{record.version}:{operation}:{attempt}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


async def plan_all(
    ctx: PushContext, records: Sequence[SyncRecord]
) -> tuple[list[Outcome], list[tuple[SyncRecord, Write]]]:
    """Each record planned: an outcome already, or a write to send."""
    outcomes: list[Outcome] = []
    writes: list[tuple[SyncRecord, Write]] = []
    # Before anything else: a create may have landed unanswered, whatever comes next (a newer
    # version, a void, a delete, or a failure to plan it).
    try:
        found = await find_lost(ctx, records)
        searched = True
    except QboError:
        found, searched = {}, False
    for record in records:
        if record.id in found:
            adopt(ctx, record, found[record.id])
        elif needs_search(ctx, record) and not searched:
            # QuickBooks could not say: the note stays, and the record waits for the next try.
            outcomes.append(
                Outcome(
                    record.id,
                    record.version,
                    "deferred",
                    code="quickbooks_unavailable",
                    message="QuickBooks could not be asked whether an earlier send of this "
                    "record landed; the sync asks again shortly.",
                    wait_seconds=DEFAULT_WAIT_SECONDS,
                    uncertain=True,
                )
            )
            continue
        try:
            plan = await PLANNERS[record.kind](ctx, record)
            if isinstance(plan, Done):
                outcomes.append(_done(record, plan))
            else:
                writes.append((record, plan))
            continue
        except (PushFailedError, NotPushedError, PushDeferredError, QboError) as error:
            # The search settled the question of a noted create; a noted update is simply sent
            # again.
            outcome = _held(record) if _unusable(error) else _ended(record, error, uncertain=False)
        except ConnectionUnusableError:
            outcome = _held(record)
        except ValidationError as invalid:
            reason = str(invalid.errors()[0]["msg"])
            outcome = Outcome(
                record.id,
                record.version,
                "failed",
                code="invalid_snapshot",
                message=f"A snapshot this {record.kind.value} needs does not fit: {reason}",
                error={"code": "invalid_snapshot", "message": reason},
            )
        outcomes.append(_known(record, outcome))
    return outcomes, writes


def _known(record: SyncRecord, outcome: Outcome) -> Outcome:
    """An outcome that did not write still carries the document the record is known by (one
    found by the search), so that it is stored."""
    if outcome.qbo_id is None and record.qbo_id is not None:
        outcome.qbo_id = record.qbo_id
        outcome.sync_token = record.qbo_sync_token
        outcome.qbo_entity = record.qbo_entity
        outcome.doc_number = record.qbo_doc_number
    return outcome


def _unsent(error: QboError) -> bool:
    """Refused before anything reached Intuit: the shared limiter full or unreachable, or no
    token to send with. Such a write certainly did not land."""
    return isinstance(
        error, (RateLimitBusyError, RateLimiterUnavailableError, TokenEndpointUnavailableError)
    )


def _unusable(error: Exception) -> bool:
    """QuickBooks wants the user to reconnect: the work waits (`held`) rather than fail."""
    return isinstance(error, (InvalidGrantError, InvalidClientError))


def _held(record: SyncRecord) -> Outcome:
    return Outcome(record.id, record.version, "held", uncertain=True)


async def send_all(ctx: PushContext, writes: Sequence[tuple[SyncRecord, Write]]) -> list[Outcome]:
    """Each write sent: alone when it is the only one (or a void), else in batches of 30."""
    single = [pair for pair in writes if pair[1].operation not in BATCHABLE]
    batched = [pair for pair in writes if pair[1].operation in BATCHABLE]
    if len(batched) == 1:
        single, batched = single + batched, []
    outcomes = [await _single(ctx, record, write) for record, write in single]
    for start in range(0, len(batched), MAX_BATCH_ITEMS):
        outcomes += await _batch(ctx, batched[start : start + MAX_BATCH_ITEMS])
    return outcomes


async def _single(ctx: PushContext, record: SyncRecord, write: Write) -> Outcome:
    requestid = request_id_for(record, write.operation)
    try:
        return _written(record, write, await _call(ctx, write, requestid))
    except ConnectionUnusableError:
        return _held(record)
    except QboError as error:
        if _unusable(error):
            return _held(record)
        return await _refused(ctx, record, write, error, requestid)


async def _batch(ctx: PushContext, writes: Sequence[tuple[SyncRecord, Write]]) -> list[Outcome]:
    ids = [request_id_for(record, write.operation) for record, write in writes]
    batch_id = hashlib.sha256(":".join(ids).encode()).hexdigest()[:36]
    items = [
        BatchOperation(bid=f"b{index}", operation=_batch_operation(write), entity=write.entity)
        for index, (_, write) in enumerate(writes)
    ]
    try:
        results = await ctx.client.batch(items, requestid=batch_id)
    except ConnectionUnusableError:
        return [_held(record) for record, _ in writes]
    except QboError as error:
        if _unusable(error):
            return [_held(record) for record, _ in writes]
        return [_ended(record, error, uncertain=not _unsent(error)) for record, _ in writes]
    outcomes = []
    for (record, write), requestid, result in zip(writes, ids, results, strict=True):
        if result.error is None and result.entity is not None:
            outcomes.append(_written(record, write, result.entity))
        else:
            fault = result.error or QboError("QuickBooks returned nothing for this document")
            outcomes.append(await _refused(ctx, record, write, fault, requestid))
    return outcomes


def _batch_operation(write: Write) -> Literal["create", "update", "delete"]:
    assert write.operation in BATCHABLE
    return write.operation  # type: ignore[return-value]


async def _call(ctx: PushContext, write: Write, requestid: str) -> QboEntity:
    entity = write.entity
    client = ctx.client
    if write.operation == "create":
        return await client.create(entity, requestid=requestid)
    if write.operation == "update":
        return await client.update(entity, requestid=requestid)
    assert entity.id is not None
    token = entity.sync_token or "0"
    if write.operation == "void":
        return await client.void(type(entity), entity.id, token, requestid=requestid)
    return await client.delete(type(entity), entity.id, token, requestid=requestid)


async def _refused(
    ctx: PushContext, record: SyncRecord, write: Write, error: QboError, requestid: str
) -> Outcome:
    """A write QuickBooks answered with a fault: recover where that is safe, else the ending."""
    try:
        stale = isinstance(error, QboStaleObjectError)
        void = write.operation == "void"
        if write.reread is not None and (stale or (void and not error.retryable)):
            current = await write.reread()
            if void and _voided(current):
                # Voided already (by an accountant, or by a void of ours whose answer was
                # lost): QuickBooks refuses to change a voided document; nothing is left to do.
                return _written(record, write, current)
            if stale:
                # Someone changed it in QuickBooks meanwhile: send ours again on top, once.
                write.entity.sync_token = current.sync_token
                return _written(record, write, await _call(ctx, write, requestid[:40] + "r"))
        if isinstance(error, QboNotFoundError) and write.operation == "delete":
            return Outcome(record.id, record.version, "synced", deleted=True)
        if isinstance(error, QboDuplicateDocNumberError) and write.duplicate is not None:
            # Never this record's own invoice: a create whose answer was lost is found before
            # anything is sent again (`recovery`).
            raise await write.duplicate(error)
        if isinstance(error, QboClosedPeriodError):
            raise await _closed(ctx, write, error)
        if error.retryable:
            return _ended(record, error, uncertain=not _unsent(error))
        raise failure_for(error, write.what)
    except ConnectionUnusableError:
        return _held(record)
    except (PushFailedError, QboError) as ending:
        if _unusable(ending):
            return _held(record)
        unsure = isinstance(ending, QboError) and ending.retryable and not _unsent(ending)
        return _ended(record, ending, uncertain=unsure)


def _voided(entity: QboEntity) -> bool:
    """QuickBooks zeroes a voided document and prefixes its note with "Voided"."""
    note = getattr(entity, "private_note", None) or ""
    return getattr(entity, "total_amt", None) == 0 and note.startswith("Voided")


async def _closed(ctx: PushContext, write: Write, error: QboClosedPeriodError) -> PushFailedError:
    """6210: the failure names the closing date as QuickBooks holds it (one read), whatever
    QuickBooks' own message says. The document's date is never changed to get past it."""
    try:
        prefs = await ctx.client.preferences()
    except QboError:
        return failure_for(error, write.what)
    closed = prefs.accounting_info_prefs.book_close_date if prefs.accounting_info_prefs else None
    if closed is None:
        return failure_for(error, write.what)
    dated = getattr(write.entity, "txn_date", None)
    on = f" (dated {dated})" if dated else ""
    return PushFailedError(
        "closed_period",
        f"{write.what}{on}: the books are closed in QuickBooks through {closed}. Move the "
        "closing date in QuickBooks (Settings > Account and settings > Advanced), or give the "
        "document a later date on the platform, then retry.",
        fault=error,
    )


def _written(record: SyncRecord, write: Write, entity: QboEntity) -> Outcome:
    deleted = write.operation == "delete"
    return Outcome(
        record.id,
        record.version,
        "synced",
        qbo_id=entity.id or record.qbo_id,
        qbo_entity=type(write.entity).entity_name,
        sync_token=entity.sync_token,
        doc_number=getattr(entity, "doc_number", None),
        warnings=write.check(entity) if write.check and not deleted else [],
        deleted=deleted,
        written_at=entity.meta_data.last_updated_time if entity.meta_data else None,
    )


def _done(record: SyncRecord, done: Done) -> Outcome:
    return Outcome(
        record.id,
        record.version,
        "synced",
        qbo_id=done.qbo_id,
        qbo_entity="Customer" if record.kind is RecordKind.CLIENT else record.qbo_entity,
        sync_token=done.sync_token or record.qbo_sync_token,
        doc_number=done.doc_number or record.qbo_doc_number,
        warnings=done.warnings,
        deleted=done.qbo_id is None and record.operation in ("delete", "void"),
    )


def _ended(
    record: SyncRecord,
    error: PushFailedError | NotPushedError | PushDeferredError | QboError,
    *,
    uncertain: bool,
) -> Outcome:
    if isinstance(error, NotPushedError):
        return Outcome(
            record.id, record.version, "not_pushed", code=error.code, message=error.message
        )
    if isinstance(error, PushDeferredError):
        return Outcome(
            record.id,
            record.version,
            "deferred",
            code=error.code,
            message=error.message,
            wait_seconds=error.wait_seconds,
            uncertain=uncertain,
        )
    if isinstance(error, QboError) and error.retryable:
        wait = error.wait_seconds if isinstance(error, QboThrottledError) else DEFAULT_WAIT_SECONDS
        if isinstance(error, RateLimitBusyError):
            # Our own share of the company's limits is full: back when the limiter says its
            # window frees a slot (sooner would only be refused again, and hold a worker's
            # slot meanwhile), or in a few seconds when the calls in flight are what is full.
            wait = max(LIMITER_FULL_WAIT_SECONDS, error.frees_in_seconds or 0.0)
        if error.retry_after is not None:
            wait = error.retry_after
        busy = isinstance(error, (QboThrottledError, RateLimitBusyError))
        return Outcome(
            record.id,
            record.version,
            "deferred",
            code="quickbooks_busy" if busy else "quickbooks_unavailable",
            message=error.user_message,
            error=PushFailedError("quickbooks_busy", error.user_message, fault=error).as_error(),
            wait_seconds=wait,
            uncertain=uncertain,
        )
    failure = error if isinstance(error, PushFailedError) else failure_for(error, "The push")
    return Outcome(
        record.id,
        record.version,
        "failed",
        code=failure.code,
        message=failure.message,
        error=failure.as_error(),
    )
