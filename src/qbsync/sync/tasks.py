"""The push job (one company's slice at a time) and the cron that re-drives due records from
Postgres whatever Redis forgot (R5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from arq.worker import Retry

from qbsync.connections.tokens import ConnectionUnusableError
from qbsync.db import Database
from qbsync.mappings.company import Company, find_company
from qbsync.models import ConnectionStatus
from qbsync.qbo import InvalidGrantError, QboError
from qbsync.queue import JobQueue, unit_of_work
from qbsync.settings import Settings
from qbsync.sync import claims
from qbsync.sync.catalogue import rename_created_items
from qbsync.sync.context import build_context
from qbsync.sync.push import Outcome, plan_all, send_all
from qbsync.sync.schedule import push_ahead, push_key, pushing, schedule_push

log = structlog.get_logger(__name__)
# Waits QuickBooks asks for (429, 5xx) defer the job: arq runs it again after that long.
DEFERRING = frozenset({"quickbooks_busy", "quickbooks_unavailable"})


async def push_company(ctx: dict[str, Any], org_id: str) -> str:
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    await queue.started(push_key(org_id))
    company = await find_company(db, org_id)
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        await claims.hold(db, queue, org_id)
        return "held"
    async with pushing(queue, org_id) as running:
        return await _push(ctx, company, running)


async def _push(ctx: dict[str, Any], company: Company, running: int) -> str:
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    settings: Settings = ctx["settings"]
    org_id = company.org_id
    slice_size = settings.push.slice_size
    records = await claims.claim(
        db, org_id, slice_size, timedelta(seconds=settings.push.lease_seconds)
    )
    if len(records) == slice_size and 0 < running < settings.push.jobs_per_company:
        await push_ahead(queue, org_id)
    push = await build_context(
        db,
        queue,
        ctx["intuit"],
        ctx["reference_cache"],
        company,
        limiter_wait_seconds=settings.push.limiter_wait_seconds,
    )
    try:
        try:
            await rename_created_items(push)
        except QboError as error:
            # Renames wait for the next push; the records' push goes on.
            log.warning("item_renames_deferred", org_id=org_id, error=type(error).__name__)
        if not records:
            return "idle"
        outcomes, writes = await plan_all(push, records)
        await claims.writes_started(db, writes)
        outcomes += await send_all(push, writes)
    except (ConnectionUnusableError, InvalidGrantError):
        if not records:
            return "held"
        # QuickBooks wants a reconnect (or the org disconnected meanwhile): the work waits.
        await claims.hold(db, queue, org_id, [record.id for record in records])
        return "held"
    finally:
        for name in push.changed_lists:
            await push.cache.drop(company.realm_id, name)
    await claims.settle(db, queue, org_id, company.realm_id, outcomes)
    _log(org_id, outcomes)
    wait = max(
        (o.wait_seconds or 0.0 for o in outcomes if o.ending == "deferred" and o.code in DEFERRING),
        default=0.0,
    )
    if wait:
        # Not a sleep in the worker (R8): the job comes back when QuickBooks asked.
        raise Retry(defer=wait)
    return "pushed"


def _log(org_id: str, outcomes: list[Outcome]) -> None:
    endings: dict[str, int] = {}
    for outcome in outcomes:
        endings[outcome.ending] = endings.get(outcome.ending, 0) + 1
    log.info("push_slice", org_id=org_id, **endings)


async def redrive_sync_records(ctx: dict[str, Any]) -> int:
    """Every org with due records gets a push job, whatever the queue lost (R5)."""
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    async with unit_of_work(db, queue) as session:
        org_ids = await claims.due_orgs(session)
        for org_id in org_ids:
            schedule_push(session, org_id)
    return len(org_ids)
