"""Routes of the sync log: what reached QuickBooks, what did not and why, retry and ignore."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from qbsync.deps import DatabaseDep, IntuitDep, SessionDep
from qbsync.errors import problem_responses
from qbsync.mappings.schemas import Page
from qbsync.mappings.snapshots import PLATFORM_ID_PATTERN
from qbsync.models import RecordKind, RecordStatus
from qbsync.security import OrgDep
from qbsync.sync import log_service
from qbsync.sync.log_schemas import ReconcileRequested, RecordDetail, RecordItem, SyncSummary
from qbsync.sync.schedule import schedule_push

router = APIRouter(
    prefix="/v1/quickbooks/sync",
    tags=["sync log"],
    responses=problem_responses(401, 403, 413, 422, 500, 503),
)
Limit = Annotated[int, Query(ge=1, le=200, description="At most this many items (default 50).")]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="The `next_cursor` of the previous page."),
]
StatusFilter = Annotated[RecordStatus | None, Query(description="Only records in this status.")]
KindFilter = Annotated[RecordKind | None, Query(description="Only records of this kind.")]
KindPath = Annotated[RecordKind, Path(description="The kind of platform entity.")]
PlatformIdPath = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=PLATFORM_ID_PATTERN, description="The platform id."),
]
RECORD_ERRORS = problem_responses(404)
CHANGE_ERRORS = problem_responses(404, 409)


@router.get(
    "/records",
    response_model=Page[RecordItem],
    summary="The org's sync records, most recently changed first",
)
async def list_records(
    org: OrgDep,
    db: DatabaseDep,
    status: StatusFilter = None,
    kind: KindFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RecordItem]:
    return await log_service.list_records(
        db, org.org_id, status=status, kind=kind, limit=limit, cursor=cursor
    )


@router.get(
    "/records/{kind}/{platform_id}",
    response_model=RecordDetail,
    summary="One record: where it stands, its last error and what it holds",
    responses=RECORD_ERRORS,
)
async def get_record(
    org: OrgDep, kind: KindPath, platform_id: PlatformIdPath, db: DatabaseDep
) -> RecordDetail:
    return await log_service.get_record(db, org.org_id, kind, platform_id)


@router.post(
    "/records/{kind}/{platform_id}/retry",
    status_code=202,
    response_model=RecordDetail,
    summary="Push the record again now",
    description="A `failed`, `not_pushed` (pushed now even though the settings would not) or "
    "`ignored` record becomes `pending` and the org's push job is queued; a `pending` one is "
    "queued again. 409 `record_in_progress` while it is being pushed, `nothing_to_retry` when "
    "QuickBooks holds its current version, `not_connected` (or `needs_reauth`) when QuickBooks "
    "can't be reached: reconnect, and held records are pushed then.",
    responses=CHANGE_ERRORS,
)
async def retry_record(
    org: OrgDep, kind: KindPath, platform_id: PlatformIdPath, session: SessionDep
) -> RecordDetail:
    record = await log_service.retry(session, org.org_id, kind, platform_id)
    # Queued once the change commits, so the job finds the record pending.
    schedule_push(session, org.org_id)
    await session.flush()  # the answer shows the stored record, its new updated_at included
    return log_service.detail(record)


@router.post(
    "/records/{kind}/{platform_id}/ignore",
    response_model=RecordDetail,
    summary="Set the record aside: the push skips it until it is retried",
    description="409 `record_in_progress` while it is being pushed.",
    responses=CHANGE_ERRORS,
)
async def ignore_record(
    org: OrgDep, kind: KindPath, platform_id: PlatformIdPath, session: SessionDep
) -> RecordDetail:
    record = await log_service.ignore(session, org.org_id, kind, platform_id)
    await session.flush()
    return log_service.detail(record)


@router.get(
    "/summary",
    response_model=SyncSummary,
    summary="Records by kind and status, the last push, and today's QuickBooks calls",
)
async def summary(org: OrgDep, db: DatabaseDep, intuit: IntuitDep) -> SyncSummary:
    return await log_service.summary(db, org.org_id, intuit.calls)


@router.post(
    "/reconcile",
    status_code=202,
    response_model=ReconcileRequested,
    summary="Reconcile with QuickBooks now",
    description="Queues the company's reconciliation: one Change Data Capture call since the "
    "last one (a full re-read of the open invoices when that was more than 30 days ago) "
    "applies whatever webhooks missed, and work whose jobs were lost is queued again. Asked "
    "for twice at once, it runs once. 409 `not_connected` or `needs_reauth` when QuickBooks "
    "can't be reached. The summary shows the outcome.",
    responses=problem_responses(409),
)
async def reconcile(org: OrgDep, session: SessionDep) -> ReconcileRequested:
    return await log_service.request_reconciliation(session, org.org_id)
