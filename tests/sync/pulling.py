"""Payment status end to end: the simulator (as the accountant's QuickBooks) posts its webhooks
over real HTTP to a relay that hands them to qbsync's app, a real arq worker pulls, and the
tests look at the events qbsync sends the platform."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from qbsync.settings import DEV_INTUIT_VERIFIER_TOKEN, Settings
from qbsync.simulator.admin import PaymentRequest
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.testing import SimulatorHandle, running_simulator, serving
from tests.connections.conftest import REDIRECT_URI, simulator_settings
from tests.sync.pushing import Books

WEBHOOK_PATH = "/v1/quickbooks/webhooks"
PAYMENT_UPDATED = "quickbooks.invoice.payment_updated"


@dataclass
class Relay:
    """Stands at the address the simulator posts webhooks to. It keeps each delivery (bytes and
    headers unchanged) and hands it to qbsync's app when the test says: the app's test database
    is one connection, which a worker running at the same moment must not share."""

    target: httpx.AsyncClient | None = None
    url: str = ""
    inflight: int = 0
    held: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.inflight += 1
        try:
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in ("host", "content-length")
            }
            self.held.append((await request.body(), headers))
            await Response(b"", 200)(scope, receive, send)
        finally:
            self.inflight -= 1

    async def flush(self) -> None:
        """Every kept delivery to qbsync, in the order QuickBooks sent them; each must be 200."""
        assert self.target is not None, "the test did not give the relay its client"
        while self.held:
            body, headers = self.held.pop(0)
            answer = await self.target.post(WEBHOOK_PATH, content=body, headers=headers)
            self.statuses.append(answer.status_code)
            assert answer.status_code == 200, answer.text


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    hub = Relay()
    async with serving(hub) as url:
        hub.url = url
        yield hub


@pytest.fixture
def settings(simulator: SimulatorHandle, key_prefix: str, cdc_max_objects: int) -> Settings:
    """The mappings tests' settings, with qbsync told the simulator's CDC cap."""
    base = simulator_settings(simulator, f"{key_prefix}:{uuid.uuid4().hex[:8]}")
    intuit = base.intuit.model_copy(update={"cdc_max_objects": cdc_max_objects})
    return base.model_copy(update={"intuit": intuit})


@pytest.fixture
async def simulator(
    relay: Relay, webhook_format: str, cdc_max_objects: int
) -> AsyncIterator[SimulatorHandle]:
    """The simulator with its webhooks pointed at qbsync (through the relay)."""
    config = SimulatorConfig(
        redirect_uris=(REDIRECT_URI,),
        webhook_url=relay.url + WEBHOOK_PATH,
        webhook_format="legacy" if webhook_format == "legacy" else "cloudevents",
        webhook_batch_window=0.02,
        cdc_max_objects=cdc_max_objects,
    )
    async with running_simulator(config) as handle:
        yield handle


@dataclass
class Accountant:
    """QuickBooks' side: what the accountant does there, and its webhooks reaching qbsync."""

    books: Books
    relay: Relay

    @property
    def simulator(self) -> SimulatorHandle:
        return self.books.org.simulator

    @property
    def realm_id(self) -> str:
        return self.books.org.realm_id

    async def qbo_invoice_id(self, platform_id: str) -> str:
        record = await self.books.record("invoice", platform_id)
        assert record.qbo_id is not None, "the invoice is in QuickBooks"
        return record.qbo_id

    async def pays(self, platform_id: str, amount: str) -> str:
        invoice_id = await self.qbo_invoice_id(platform_id)
        payment = self.simulator.admin.record_payment(
            self.realm_id, PaymentRequest(invoice_id=invoice_id, amount=Decimal(amount))
        )
        return str(payment["Id"])

    async def settle(self) -> None:
        """Every webhook the simulator had to send has been answered, then the worker ran."""
        await webhooks_delivered(self.simulator, self.relay)
        await self.relay.flush()
        await self.books.push()

    async def updates(self, platform_id: str) -> list[dict[str, Any]]:
        return [
            event
            for event in await self.books.events_out(PAYMENT_UPDATED)
            if event["invoice_id"] == platform_id
        ]

    async def latest(self, platform_id: str) -> dict[str, Any]:
        updates = await self.updates(platform_id)
        assert updates, f"no payment_updated for {platform_id}"
        return updates[-1]


async def webhooks_delivered(simulator: SimulatorHandle, relay: Relay) -> None:
    """Nothing waiting in the simulator and nothing in flight, for a few polls in a row."""
    quiet = 0
    for _ in range(400):
        idle = not simulator.state.webhooks.pending and relay.inflight == 0
        quiet = quiet + 1 if idle else 0
        if quiet >= 4:
            return
        await asyncio.sleep(0.03)
    raise AssertionError("the simulator's webhooks did not settle")


def intuit_signature(body: bytes, token: str = DEV_INTUIT_VERIFIER_TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def cloud_event(
    realm_id: str, entity: str, entity_id: str, operation: str, time: str, event_id: str
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "intuit.test",
        "type": f"qbo.{entity.lower()}.{operation}.v1",
        "datacontenttype": "application/json",
        "time": time,
        "intuitentityid": entity_id,
        "intuitaccountid": realm_id,
        "data": {},
    }


async def post_webhook(
    client: httpx.AsyncClient,
    payload: Any,
    *,
    signature: str | None = None,
    content_type: str = "application/cloudevents+json",
) -> httpx.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"content-type": content_type}
    headers["intuit-signature"] = signature if signature is not None else intuit_signature(body)
    return await client.post(WEBHOOK_PATH, content=body, headers=headers)
