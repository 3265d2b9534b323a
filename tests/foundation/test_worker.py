"""The worker schedules every cron the lifecycle relies on, each one run at a time."""

from __future__ import annotations

from qbsync.worker import cron_jobs


def test_every_cron_is_scheduled_once_across_workers() -> None:
    crons = {job.name: job for job in cron_jobs()}
    assert set(crons) == {
        "redrive_outbound_events",
        "redrive_sync_records",
        "reconcile_due_companies",
        "expire_pending_grants",
        "retry_revocations",
        "refresh_expiring_tokens",
    }
    assert all(job.unique and job.keep_result_s == 0 for job in crons.values())
    assert crons["redrive_outbound_events"].run_at_startup
    assert crons["redrive_sync_records"].run_at_startup
    assert crons["refresh_expiring_tokens"].minute == {17}
