"""When an org's records are pushed: one push job per org waits in the queue at a time.

A push job takes a slice of the org's due records, pushes them and, when more are due, asks for
another job, which joins the back of the queue. Companies therefore take turns (round robin):
a backlog of 10,000 records in one company is pushed a slice at a time between other
companies' jobs, never ahead of them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.queue import enqueue_after_commit

PUSH_JOB = "push_company"


def push_key(org_id: str) -> str:
    return f"push:{org_id}"


def schedule_push(
    session: AsyncSession, org_id: str, *, defer_seconds: float | None = None
) -> None:
    """Ask for a push of the org's due records once this transaction commits."""
    enqueue_after_commit(
        session, PUSH_JOB, org_id, defer_seconds=defer_seconds, coalesce_key=push_key(org_id)
    )
