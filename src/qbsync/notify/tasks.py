from __future__ import annotations

import uuid

from qbsync.context import WorkerContext
from qbsync.models.base import utcnow
from qbsync.notify import service
from qbsync.queue import JobRequest


async def deliver_outbound_event(ctx: WorkerContext, event_id: str) -> str:
    settings = ctx["settings"].platform
    secret = (settings.events_secret or settings.webhook_secret).get_secret_value()
    outcome = await service.deliver(
        ctx["db"],
        ctx["queue"],
        ctx["http"],
        uuid.UUID(event_id),
        url=settings.events_url,
        secret=secret,
        time_scale=settings.delivery_time_scale,
    )
    return outcome.value


async def redrive_outbound_events(ctx: WorkerContext) -> int:
    """Cron: whatever Redis lost, Postgres still knows which events are due (R5, R11)."""
    if ctx["settings"].platform.events_url is None:
        return 0
    async with ctx["db"].sessions() as session:
        due = await service.due_event_ids(session)
    run_at = utcnow()
    for event_id in due:
        job_id = service.redrive_job_id(event_id, run_at)
        await ctx["queue"].enqueue(JobRequest(service.DELIVER_JOB, str(event_id), job_id=job_id))
    return len(due)
