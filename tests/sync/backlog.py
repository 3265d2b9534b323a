"""An org on the UK company with a backlog of invoices delivered in one signed request, on a
committed app (real concurrency): for the push tests that run several jobs at once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import UK_REALM, Consent
from tests.mappings.previews import ten_pounds


async def invoice_backlog(
    live: CommittedApp,
    simulator: SimulatorHandle,
    make_token: TokenFactory,
    settings: Settings,
    org_id: str,
    count: int,
    *,
    one_client: bool = False,
) -> None:
    """Connect `org_id` to the UK company, map what its invoices need, and deliver `count`
    invoices, each for a new client (so each needs a customer created first) unless
    `one_client`."""
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
    events: list[dict[str, Any]] = [
        {
            "id": f"evt_{n}",
            "type": "invoice.upserted",
            "organization_id": org_id,
            "occurred_at": "2026-11-20T10:00:00+00:00",
            "data": ten_pounds(f"inv_{n}", _client(0 if one_client else n)),
        }
        for n in range(count)
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


def _client(n: int) -> dict[str, Any]:
    return {"id": f"cl_{n}", "name": f"Pool Client {n}"}


def job_context(live: CommittedApp, settings: Settings) -> dict[str, Any]:
    """What a worker's job functions get, built on the committed app."""
    return {
        "db": live.db,
        "queue": live.queue,
        "settings": settings,
        "intuit": live.intuit,
        "reference_cache": live.app.state.reference_cache,
    }
