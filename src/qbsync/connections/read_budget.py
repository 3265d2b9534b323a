"""The platform is told, once per company per UTC month, when the company's metered reads reach
80 % of its monthly budget (P7: Intuit meters CorePlus calls per app per month and blocks reads
past its cap).

Two ways in, one rule: the call counter enqueues `warn_read_budget` the moment it sees the
crossing, and the reconciliation calls `warn_if_over_budget` on every run, so a lost enqueue is
caught up. Both read the month's counts from Redis first, then, in one short transaction, set the
connection's `read_budget_warned_month` and record `quickbooks.connection.updated` with the
warning, unless that month (or a later one) was already warned. The row lock makes the job and
the reconciliation, or two jobs, agree on who sends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, select

from qbsync.connections.payloads import connection_updated
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus
from qbsync.notify import service as notify
from qbsync.observability import READ_BUDGET_WARN_PERCENT, CallsInMonth, CompanyCallCounter
from qbsync.queue import JobQueue, JobRequest, unit_of_work

if TYPE_CHECKING:
    # Only for the annotation: the context imports IntuitAccess, which imports this module.
    from qbsync.context import WorkerContext

READ_BUDGET_JOB = "warn_read_budget"
WARNING_CODE = "read_budget_80"
log = structlog.get_logger(__name__)


async def enqueue_read_budget_warning(queue: JobQueue, realm_id: str) -> None:
    """The counter's `on_budget_crossed`: a Redis write only, no database connection, because
    it runs right after a call to Intuit. One job per company waits at a time (its id)."""
    await queue.enqueue(
        JobRequest(READ_BUDGET_JOB, realm_id, job_id=f"{READ_BUDGET_JOB}:{realm_id}")
    )


async def warn_read_budget(ctx: WorkerContext, realm_id: str) -> bool:
    """arq job: warn the org connected to `realm_id` if this month's reads are past 80 %."""
    return await _warn(ctx["db"], ctx["queue"], ctx["intuit"].calls, realm_id)


async def warn_if_over_budget(
    db: Database, queue: JobQueue, calls: CompanyCallCounter, org_id: str, realm_id: str
) -> bool:
    """Warn `org_id` if its company `realm_id` has used 80 % of this month's CorePlus budget and
    nobody told it yet this month; True when this call recorded the event.

    For the reconciliation, each run: it catches up a crossing whose job was lost. It opens its
    own short transaction after reading Redis, so call it holding no session (R13). A Redis
    failure is logged and answers False: the next run checks again.
    """
    return await _warn(db, queue, calls, realm_id, Connection.org_id == org_id)


async def _warn(
    db: Database,
    queue: JobQueue,
    calls: CompanyCallCounter,
    realm_id: str,
    *only: ColumnElement[bool],
) -> bool:
    try:
        counts = await calls.in_month(realm_id)
    except (RedisError, OSError, TimeoutError) as error:
        # The type only: a Redis error's text can carry its URL, password included.
        log.warning("read_budget_not_checked", realm_id=realm_id, error=type(error).__name__)
        return False
    if not counts.past_warning_line:
        return False
    async with unit_of_work(db, queue) as session:
        # Locked, so a job and a reconciliation run racing here send one event between them.
        connection = await session.scalar(
            select(Connection)
            .where(
                Connection.realm_id == realm_id,
                Connection.status == ConnectionStatus.CONNECTED,
                *only,
            )
            .with_for_update()
        )
        warned = connection.read_budget_warned_month if connection is not None else None
        # 'YYYY-MM' sorts as months do: a straggler from last month never warns again.
        if connection is None or (warned is not None and warned >= counts.month):
            return False
        connection.read_budget_warned_month = counts.month
        notify.record(
            session,
            connection.org_id,
            "quickbooks.connection.updated",
            connection_updated(connection, warnings=[_warning(counts)]),
            # Behind any earlier change of the connection, as every connection event is.
            entity_key=notify.CONNECTION_KEY,
        )
        org_id = connection.org_id
    log.warning(
        "read_budget_warning_sent",
        org_id=org_id,
        realm_id=realm_id,
        month=counts.month,
        coreplus_calls=counts.coreplus,
        budget=counts.budget,
    )
    return True


def _warning(counts: CallsInMonth) -> dict[str, Any]:
    """The entry of the event's `warnings`, with a sentence a person can act on."""
    return {
        "code": WARNING_CODE,
        "message": (
            f"This QuickBooks company has used {counts.coreplus} of its {counts.budget} metered "
            f"reads for {counts.month} ({READ_BUDGET_WARN_PERCENT} % or more). Syncing goes on, "
            "but Intuit stops answering reads once the app's monthly allowance is spent, until "
            "the next month."
        ),
        "coreplus_calls": counts.coreplus,
        "budget": counts.budget,
        "month": counts.month,
    }
