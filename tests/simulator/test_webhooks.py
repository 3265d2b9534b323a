"""Webhooks to a real receiver: both formats, signatures, batching, admin changes, retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.config import WebhookFormat
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.testing import SimulatorHandle, running_simulator, serving
from qbsync.simulator.webhooks import RETRY_DELAYS, RETRY_EVERY, signature
from tests.simulator.conftest import US, US2, company_api, sales_line

VERIFIER = "test-verifier-token"


@dataclass(frozen=True)
class Delivery:
    received_at: float
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """qbsync's side in miniature: answers 500 for the first `failures` deliveries."""

    failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> Response:
        self.deliveries.append(
            Delivery(time.monotonic(), dict(request.headers), await request.body())
        )
        self._arrived.set()
        return Response(status_code=500 if len(self.deliveries) <= self.failures else 200)

    async def wait_for(self, count: int) -> list[Delivery]:
        async with asyncio.timeout(5):
            while len(self.deliveries) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.deliveries


async def attempts_recorded(sim: SimulatorHandle, count: int) -> None:
    for _ in range(500):
        if len(sim.admin.webhook_attempts) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} delivery attempts")


def intuit_signature(body: bytes) -> str:
    """The doc's algorithm: base64(HMAC-SHA256(key=verifier token, message=raw body))."""
    return base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()).decode()


@asynccontextmanager
async def simulator_with_receiver(
    receiver: Receiver, webhook_format: WebhookFormat = "cloudevents", **options: Any
) -> AsyncIterator[SimulatorHandle]:
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    async with serving(app) as receiver_url:
        config = SimulatorConfig(
            webhook_url=f"{receiver_url}/hook",
            webhook_format=webhook_format,
            verifier_token=VERIFIER,
            webhook_batch_window=options.pop("webhook_batch_window", 0.05),
            **options,
        )
        async with running_simulator(config) as sim:
            yield sim


def test_signatures_match_the_published_vectors() -> None:
    assert (
        signature("verify_me", b'{"stuff":"5"}') == "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="
    )
    cloud_event = (
        b'[{"specversion":"1.0","id":"3f0c1a9e-0000-4000-8000-000000000001","source":"intuit.test",'
        b'"type":"qbo.invoice.updated.v1","datacontenttype":"application/json",'
        b'"time":"2026-01-15T18:04:05.000Z","intuitentityid":"130",'
        b'"intuitaccountid":"9341450000000000","data":{}}]'
    )
    assert signature(VERIFIER, cloud_event) == "TJPlspJg1Fay84BEh43c7xDhSTnOyhoAgyTsaTe9Ezw="


async def test_an_api_write_arrives_as_a_signed_cloud_event() -> None:
    receiver = Receiver()
    async with (
        simulator_with_receiver(receiver) as sim,
        company_api(httpx.AsyncHTTPTransport(), sim.state, US, sim.base_url) as us,
    ):
        invoice = await us.create(
            "Invoice", {"CustomerRef": {"value": "1"}, "Line": [sales_line("10")]}
        )
        [delivery] = await receiver.wait_for(1)

    assert delivery.headers["intuit-signature"] == intuit_signature(delivery.body)
    assert delivery.headers["content-type"] == "application/cloudevents+json"
    [event] = delivery.payload
    assert event["specversion"] == "1.0"
    assert event["type"] == "qbo.invoice.created.v1"
    assert event["intuitentityid"] == invoice["Id"]
    assert event["intuitaccountid"] == US
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == {}
    assert event["source"].startswith("intuit.")
    assert event["time"].endswith("Z")
    assert delivery.body.startswith(b'[{"specversion":"1.0"')


async def test_a_payment_recorded_in_quickbooks_arrives_batched_in_the_legacy_format() -> None:
    receiver = Receiver()
    async with simulator_with_receiver(receiver, "legacy") as sim:
        sim.state.tokens.connect(US)
        ledger = sim.state.ledger(US)
        invoice = ledger.create(
            "Invoice", WriteRequest({"CustomerRef": {"value": "1"}, "Line": [sales_line("100")]})
        )
        await receiver.wait_for(1)
        async with httpx.AsyncClient(base_url=sim.base_url) as http:
            response = await http.post(
                f"/_sim/companies/{US}/payments", json={"invoice_id": invoice["Id"], "amount": "40"}
            )
        [_, delivery] = await receiver.wait_for(2)

    assert response.status_code == 200
    payment = response.json()["Payment"]
    assert delivery.headers["intuit-signature"] == intuit_signature(delivery.body)
    assert delivery.headers["content-type"] == "application/json; charset=utf-8"
    [notification] = delivery.payload["eventNotifications"]
    assert notification["realmId"] == US
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Payment", payment["Id"], "Create"),
        ("Invoice", invoice["Id"], "Update"),
    ]
    assert entities[0]["lastUpdated"].endswith("Z")


async def test_edits_voids_and_deletions_in_quickbooks_are_notified() -> None:
    receiver = Receiver()
    async with simulator_with_receiver(receiver) as sim:
        sim.state.tokens.connect(US)
        ledger = sim.state.ledger(US)
        invoice = ledger.create(
            "Invoice", WriteRequest({"CustomerRef": {"value": "1"}, "Line": [sales_line("100")]})
        )
        await receiver.wait_for(1)
        async with httpx.AsyncClient(base_url=sim.base_url) as http:
            paid = await http.post(
                f"/_sim/companies/{US}/payments", json={"invoice_id": invoice["Id"], "amount": "30"}
            )
            await receiver.wait_for(2)
            await http.delete(f"/_sim/companies/{US}/payments/{paid.json()['Payment']['Id']}")
            await receiver.wait_for(3)
            edited = await http.patch(
                f"/_sim/companies/{US}/invoices/{invoice['Id']}", json={"DueDate": "2027-01-31"}
            )
            await receiver.wait_for(4)
            voided = await http.post(f"/_sim/companies/{US}/invoices/{invoice['Id']}/void")
            deliveries = await receiver.wait_for(5)

    assert deliveries[1].payload[0]["type"] == "qbo.payment.created.v1"
    assert edited.json()["Invoice"]["DueDate"] == "2027-01-31"
    assert voided.json()["Invoice"]["TotalAmt"] == 0
    types = [[event["type"] for event in delivery.payload] for delivery in deliveries[2:]]
    assert types == [
        ["qbo.payment.deleted.v1", "qbo.invoice.updated.v1"],
        ["qbo.invoice.updated.v1"],
        ["qbo.invoice.voided.v1"],
    ]


async def test_companies_not_connected_to_the_app_send_nothing() -> None:
    receiver = Receiver()
    async with simulator_with_receiver(receiver) as sim:
        sim.state.tokens.connect(US)
        quiet = sim.state.ledger(US2).create("Customer", WriteRequest({"DisplayName": "Quiet Ltd"}))
        loud = sim.state.ledger(US).create("Customer", WriteRequest({"DisplayName": "Loud Ltd"}))
        # Events go out in order, so once the connected company's has arrived the other one
        # would have arrived too.
        deliveries = await receiver.wait_for(1)

    events = [event for delivery in deliveries for event in delivery.payload]
    assert [(e["intuitaccountid"], e["intuitentityid"]) for e in events] == [(US, loud["Id"])]
    assert quiet["Id"] == loud["Id"]  # same Id in both companies: only the realm tells them apart


async def test_failed_deliveries_follow_intuits_schedule_and_hold_later_events() -> None:
    receiver = Receiver(failures=10)
    async with simulator_with_receiver(receiver, webhook_batch_window=0) as sim:
        sim.state.tokens.connect(US)
        ledger = sim.state.ledger(US)
        ledger.create("Customer", WriteRequest({"DisplayName": "Retry Ltd"}))
        await receiver.wait_for(2)  # the first retry is immediate
        ledger.create("Customer", WriteRequest({"DisplayName": "Later Ltd"}))
        for count, delay in enumerate((10, 20, 30, 300, 1200, 7200, 14400, 21600, 21600), 3):
            await attempts_recorded(sim, count - 1)  # the next retry is now scheduled
            sim.admin.advance_clock(delay - 1)
            await asyncio.sleep(0.05)
            assert len(receiver.deliveries) == count - 1, f"attempt {count} came early"
            sim.admin.advance_clock(1)
            await receiver.wait_for(count)
        deliveries = await receiver.wait_for(12)
        await attempts_recorded(sim, 12)  # recorded once the receiver has answered
        attempts = sim.admin.webhook_attempts

    assert len({delivery.body for delivery in deliveries[:11]}) == 1
    assert "Later Ltd" not in deliveries[0].body.decode()
    assert [a.number for a in attempts] == [*range(1, 12), 1]
    assert [a.delivered for a in attempts] == [False] * 10 + [True, True]
    gaps = [later.at - earlier.at for earlier, later in pairwise(attempts[:11])]
    expected = [*RETRY_DELAYS, RETRY_EVERY]
    assert all(0 <= gap - want < 1 for gap, want in zip(gaps, expected, strict=True)), gaps


async def test_the_retry_schedule_is_time_scaled() -> None:
    receiver = Receiver(failures=3)
    async with simulator_with_receiver(receiver, time_scale=100, webhook_batch_window=0) as sim:
        sim.state.tokens.connect(US)
        sim.state.ledger(US).create("Vendor", WriteRequest({"DisplayName": "Scaled Ltd"}))
        deliveries = await receiver.wait_for(4)

    # Retries after 0, 10 and 20 Intuit seconds: 0.3 real seconds at 100x.
    elapsed = deliveries[3].received_at - deliveries[0].received_at
    assert 0.28 < elapsed < 2.0
