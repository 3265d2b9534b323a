"""R13 for the pull and the reconciliation: run together over a pool smaller than the jobs, no
job holds a pooled connection while Intuit answers, nor checks out a second one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from arq.connections import ArqRedis

from qbsync.settings import DEV_INTUIT_VERIFIER_TOKEN, Settings
from qbsync.simulator.admin import PaymentRequest
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from qbsync.sync.tasks import pull_company, push_company, reconcile_company
from tests.conftest import TokenFactory
from tests.connections.committed import CommittedApp, committed_app
from tests.connections.conftest import UK_REALM, Consent
from tests.sync.backlog import invoice_backlog, job_context

POOL = 2


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    async with committed_app(settings, database_url, redis, prefix, pool_size=POOL) as running:
        yield running


async def test_pull_and_reconcile_hold_no_connection_while_intuit_answers(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
) -> None:
    org_id = f"{prefix}r13pull"
    await invoice_backlog(live, simulator, make_token, settings, org_id, 4, one_client=True)
    ctx = job_context(live, settings)
    assert await push_company(ctx, org_id) == "pushed"
    invoices = simulator.admin.documents(UK_REALM, "Invoice")
    assert len(invoices) == 4
    cloud = []
    for n, invoice in enumerate(invoices):
        payment = simulator.admin.record_payment(
            UK_REALM, PaymentRequest(invoice_id=invoice["Id"], amount=Decimal("5.00"))
        )
        cloud.append(
            {
                "specversion": "1.0",
                "id": f"{prefix}-ev-{n}",
                "source": "intuit.test",
                "type": "qbo.payment.created.v1",
                "time": "2026-11-21T10:00:00Z",
                "intuitentityid": str(payment["Id"]),
                "intuitaccountid": UK_REALM,
                "data": {},
            }
        )
    delivery = json.dumps(cloud).encode()
    signature = base64.b64encode(
        hmac.new(DEV_INTUIT_VERIFIER_TOKEN.encode(), delivery, hashlib.sha256).digest()
    ).decode()
    answer = await live.client.post(
        "/v1/quickbooks/webhooks",
        content=delivery,
        headers={"content-type": "application/json", "intuit-signature": signature},
    )
    assert answer.status_code == 200, answer.text
    # The company's first reconciliation alone (see the next test for two at once).
    assert await reconcile_company(ctx, org_id) == "cdc"
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.05, times=10_000))
    live.guard.violations.clear()
    seen = live.guard.requests_seen
    endings = await asyncio.gather(
        pull_company(ctx, org_id),
        reconcile_company(ctx, org_id),
        pull_company(ctx, org_id),
        reconcile_company(ctx, org_id),
    )
    assert "pulled" in endings, endings
    assert live.guard.requests_seen > seen
    assert live.guard.violations == []


async def test_two_first_reconciliations_at_once_one_runs_the_other_skips(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    prefix: str,
) -> None:
    """The company's very first run has no watermark row to lock: two at once (the cron and
    the button) must end as one run and one `already_running`, not a unique violation."""
    from qbsync.mappings.company import find_company
    from qbsync.sync import reconcile

    org_id = f"{prefix}first"
    await Consent(live.client, simulator, make_token).connect(org_id, UK_REALM)
    company = await find_company(live.db, org_id)
    assert company is not None
    results = await asyncio.gather(
        *(reconcile.claim_run(live.db, company, settings.reconcile) for _ in range(2)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], [type(e).__name__ for e in errors]
    assert sum(r is None for r in results) == 1, results
