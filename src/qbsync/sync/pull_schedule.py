"""Queueing an org's pull: the job that reads what QuickBooks changed and applies it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.queue import enqueue_after_commit

PULL_JOB = "pull_company"
RECONCILE_JOB = "reconcile_company"
# Transactions whose payment status qbsync follows, and the name lists its mappings point at.
TRANSACTIONS = frozenset({"Invoice", "Payment"})
NAME_LISTS = frozenset({"Customer", "Vendor", "Item", "Account"})
FOLLOWED_ENTITIES = TRANSACTIONS | NAME_LISTS


def pull_key(org_id: str) -> str:
    return f"pull:{org_id}"


def schedule_pull(
    session: AsyncSession, org_id: str, *, defer_seconds: float | None = None
) -> None:
    """Ask for a pull of the org's stored QuickBooks changes once this transaction commits."""
    enqueue_after_commit(
        session, PULL_JOB, org_id, defer_seconds=defer_seconds, coalesce_key=pull_key(org_id)
    )


def reconcile_key(org_id: str) -> str:
    return f"reconcile:{org_id}"


def schedule_reconcile(session: AsyncSession, org_id: str) -> None:
    enqueue_after_commit(session, RECONCILE_JOB, org_id, coalesce_key=reconcile_key(org_id))
