"""R13 for the push: more concurrent push jobs than pooled connections, each calling Intuit many
times (reads, customer and item creates, batches), and no job ever holds a pooled connection
while Intuit answers, or checks out a second one."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from qbsync.models import RecordStatus, SyncRecord
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync.tasks import push_company
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import UK_REALM, Consent
from tests.mappings.previews import ten_pounds

POOL = 2
JOBS = 4 * POOL


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    async with committed_app(settings, database_url, redis, prefix, pool_size=POOL) as running:
        yield running


async def test_concurrent_push_jobs_hold_no_connection_while_intuit_answers(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
) -> None:
    org_id = f"{prefix}r13push"
    await Consent(live.client, simulator, make_token).connect(org_id, UK_REALM)
    headers = bearer(make_token(org_id))
    company = simulator.state.company(UK_REALM)
    items = {row.get("Name"): row["Id"] for row in company.objects["Item"].values()}
    accounts = {row["Name"]: row["Id"] for row in company.objects["Account"].values()}
    for path, body in (
        ("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"}),
        ("mappings/services/svc_consulting", {"qbo_id": items["Consulting"]}),
    ):
        assert (
            await live.client.put(f"/v1/quickbooks/{path}", json=body, headers=headers)
        ).is_success
    saved = await live.client.put(
        "/v1/quickbooks/settings",
        json={
            "invoice_auto_push": True,
            "default_income_account_id": accounts["Consulting Income"],
        },
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    events = [
        {
            "id": f"evt_{n}",
            "type": "invoice.upserted",
            "organization_id": org_id,
            "occurred_at": "2026-11-20T10:00:00+00:00",
            # A new client each: every invoice needs a customer created first.
            "data": ten_pounds(f"inv_{n}", {"id": f"cl_{n}", "name": f"Pool Client {n}"}),
        }
        for n in range(JOBS * 2)
    ]
    raw = json.dumps(events)
    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = datetime.now(UTC)
    secret = settings.platform.webhook_secret.get_secret_value()
    posted = await live.client.post(
        "/v1/events",
        content=raw,
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, stamp, raw),
        },
    )
    assert posted.status_code == 202, posted.text
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.05, times=10_000))
    settings.push.slice_size = 2
    ctx: dict[str, Any] = {
        "db": live.db,
        "queue": live.queue,
        "settings": settings,
        "intuit": live.intuit,
        "reference_cache": live.app.state.reference_cache,
    }
    live.guard.violations.clear()

    endings = await asyncio.gather(*(push_company(ctx, org_id) for _ in range(JOBS)))

    assert endings.count("pushed") >= 2, endings
    assert live.guard.requests_seen >= JOBS
    assert live.guard.violations == []
    async with live.db.sessions() as session:
        statuses = list(
            await session.scalars(select(SyncRecord.status).where(SyncRecord.org_id == org_id))
        )
    assert statuses.count(RecordStatus.SYNCED) == JOBS * 2, statuses
    numbers = [row.get("DocNumber") for row in simulator.admin.documents(UK_REALM, "Invoice")]
    assert len([n for n in numbers if n and n.startswith("INV-inv_")]) == JOBS * 2
