"""The push job (one company's slice at a time), the pull job (QuickBooks' changes in), the
reconciliation, and the crons that re-drive from Postgres whatever Redis forgot (R5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from arq.worker import Retry

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.read_budget import warn_if_over_budget
from qbsync.connections.tokens import ConnectionUnusableError
from qbsync.db import Database
from qbsync.mappings.company import Company, find_company
from qbsync.models import ConnectionStatus, SyncRecord
from qbsync.qbo import InvalidGrantError, QboError, QboThrottledError
from qbsync.queue import JobQueue, unit_of_work
from qbsync.reference_cache import ReferenceCache
from qbsync.settings import Settings
from qbsync.sync import claims, reconcile, webhook_claims
from qbsync.sync.catalogue import rename_created_items
from qbsync.sync.context import build_context
from qbsync.sync.failures import DEFAULT_WAIT_SECONDS
from qbsync.sync.pull import apply_changes, build_pull_context
from qbsync.sync.pull_schedule import pull_key, reconcile_key, schedule_pull, schedule_reconcile
from qbsync.sync.push import Outcome, plan_all, send_all
from qbsync.sync.schedule import push_ahead, push_key, pushing, schedule_push

log = structlog.get_logger(__name__)
# Waits QuickBooks asks for (429, 5xx) defer the job: arq runs it again after that long.
DEFERRING = frozenset({"quickbooks_busy", "quickbooks_unavailable"})
# Stored QuickBooks changes one pull job applies: a few queries' worth of ids.
PULL_SLICE = 200


async def push_company(ctx: dict[str, Any], org_id: str) -> str:
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    await queue.started(push_key(org_id))
    company = await find_company(db, org_id)
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        await claims.hold(db, queue, org_id)
        return "held"
    settings: Settings = ctx["settings"]
    async with pushing(queue, org_id, settings.push.jobs_per_company) as running:
        if running is None:
            return "enough_running"
        return await _push(ctx, company, running)


async def _push(ctx: dict[str, Any], company: Company, running: int) -> str:
    db: Database = ctx["db"]
    settings: Settings = ctx["settings"]
    org_id = company.org_id
    lease = settings.push.lease_seconds
    # Taken before the claim, so the job ends before its lease does, whatever arq's own job
    # timeout is: past the lease, the re-drive gives these records to another job, and two jobs
    # sending the same records would each write them (R4). Cut short, the job is like one
    # killed: each record's noted write is looked up before anything is sent again.
    deadline = asyncio.get_running_loop().time() + lease - min(30.0, lease / 10)
    records = await claims.claim(db, org_id, settings.push.slice_size, timedelta(seconds=lease))
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            return await _push_claimed(ctx, company, running, records)
    except TimeoutError:
        if not timeout.expired():
            raise
        log.warning("push_lease_ran_out", org_id=org_id, records=len(records))
        return "lease_ran_out"


async def _push_claimed(
    ctx: dict[str, Any], company: Company, running: int, records: list[SyncRecord]
) -> str:
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    settings: Settings = ctx["settings"]
    org_id = company.org_id
    slice_size = settings.push.slice_size
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
    """Every org with due records gets a push job, and every org with stored QuickBooks
    changes no pull has taken gets a pull, whatever the queue lost (R5)."""
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    async with unit_of_work(db, queue) as session:
        org_ids = await claims.due_orgs(session)
        for org_id in org_ids:
            schedule_push(session, org_id)
        pulls = await webhook_claims.waiting_orgs(session)
        for org_id in pulls:
            schedule_pull(session, org_id)
    return len(org_ids) + len(pulls)


async def pull_company(ctx: dict[str, Any], org_id: str) -> str:
    """Apply the org's stored QuickBooks changes, a slice at a time."""
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    settings: Settings = ctx["settings"]
    await queue.started(pull_key(org_id))
    company = await find_company(db, org_id)
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        # The changes stay stored; the reconciliation after a reconnect reads them anyway.
        return "not_connected"
    lease = timedelta(seconds=settings.reconcile.lease_seconds)
    taken = await webhook_claims.claim(db, org_id, company.realm_id, PULL_SLICE, lease)
    if not taken:
        return "idle"
    pull = build_pull_context(
        db, queue, ctx["intuit"], company, limiter_wait_seconds=settings.push.limiter_wait_seconds
    )
    try:
        applied = await apply_changes(pull, [event.change for event in taken])
    except (ConnectionUnusableError, InvalidGrantError):
        await webhook_claims.release(db, [event.id for event in taken])
        return "held"
    except QboError as error:
        await webhook_claims.release(db, [event.id for event in taken])
        if error.retryable:
            raise Retry(defer=_wait(error)) from error
        raise
    await webhook_claims.done(
        db, queue, org_id, [event.id for event in taken], more=len(taken) == PULL_SLICE
    )
    log.info("pull_slice", org_id=org_id, changes=len(taken), **applied.as_dict())
    return "pulled"


async def reconcile_company(ctx: dict[str, Any], org_id: str) -> str:
    """One reconciliation of the org's company; a second one asked for meanwhile is skipped."""
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    settings: Settings = ctx["settings"]
    await queue.started(reconcile_key(org_id))
    company = await find_company(db, org_id)
    if company is None or company.status is not ConnectionStatus.CONNECTED:
        return "not_connected"
    claimed = await reconcile.claim_run(db, company, settings.reconcile)
    if claimed is None:
        return "already_running"
    pull = build_pull_context(
        db, queue, ctx["intuit"], company, limiter_wait_seconds=settings.push.limiter_wait_seconds
    )
    try:
        finished = await reconcile.run(pull, claimed, settings.reconcile)
    except BaseException as error:
        await reconcile.finish(db, company, claimed, None, pull.calls.as_dict(), _why(error))
        if isinstance(error, QboError) and error.retryable:
            raise Retry(defer=_wait(error)) from error
        if isinstance(error, ConnectionUnusableError | InvalidGrantError):
            return "held"
        raise
    await reconcile.finish(db, company, claimed, finished, pull.calls.as_dict())
    cache: ReferenceCache = ctx["reference_cache"]
    for name in sorted(finished.changed_lists):
        await cache.drop(company.realm_id, name)
    await redrive_company(db, queue, company)
    # Catches up a budget warning whose job Redis lost when the line was crossed.
    intuit: IntuitAccess = ctx["intuit"]
    await warn_if_over_budget(db, queue, intuit.calls, org_id, company.realm_id)
    log.info(
        "reconciled",
        org_id=org_id,
        mode=finished.mode,
        coreplus=pull.calls.coreplus,
        **finished.applied.as_dict(),
    )
    return finished.mode


async def reconcile_due_companies(ctx: dict[str, Any]) -> int:
    """Cron: each connected company whose reconciliation interval has passed gets a run."""
    db: Database = ctx["db"]
    queue: JobQueue = ctx["queue"]
    due = await reconcile.due_companies(db)
    async with unit_of_work(db, queue) as session:
        for org_id in due:
            schedule_reconcile(session, org_id)
    return len(due)


async def redrive_company(db: Database, queue: JobQueue, company: Company) -> None:
    """Work stored in Postgres whose job Redis may have lost: due records, unpulled changes."""
    async with unit_of_work(db, queue) as session:
        if await claims.has_due(session, company.org_id):
            schedule_push(session, company.org_id)
        if await webhook_claims.has_waiting(session, company.org_id, company.realm_id):
            schedule_pull(session, company.org_id)


def _wait(error: QboError) -> float:
    if isinstance(error, QboThrottledError) and error.wait_seconds:
        return error.wait_seconds
    return DEFAULT_WAIT_SECONDS


def _why(error: BaseException) -> str:
    """What the summary says of a failed run: QuickBooks' own words when it refused."""
    if isinstance(error, QboError):
        retry = " The next run tries again." if error.retryable else ""
        return f"QuickBooks failed the reconciliation: {error}.{retry}"[:500]
    if isinstance(error, ConnectionUnusableError | InvalidGrantError):
        return "QuickBooks no longer accepts our access: reconnect it."
    return f"The reconciliation stopped on an internal error ({type(error).__name__})."
