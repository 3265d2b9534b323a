"""The two outside parties the demo plays, on the shared dev helpers: the platform's backend
sending signed events to `POST /v1/events` (qbsync.devtools.platform_events), and the
accountant working in QuickBooks through the simulator's admin API (qbsync.devtools.accountant).
The demo runs step after step, so each call to the async helpers gets a loop of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from qbsync.demo.display import StepFailedError
from qbsync.devtools import accountant
from qbsync.devtools.accountant import InvoiceSummary, SimulatorRefusedError
from qbsync.devtools.platform_events import event, send_events, signed_headers

TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


def _run(call: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
            return await call(http)

    try:
        return asyncio.run(go())
    except httpx.HTTPError as error:
        raise StepFailedError(f"{type(error).__name__}: {error}") from error
    except SimulatorRefusedError as error:
        raise StepFailedError(str(error)) from error


class PlatformSender:
    def __init__(self, api_url: str, secret: str, org_id: str) -> None:
        self.api_url = api_url
        self.secret = secret
        self.org_id = org_id

    def send(self, event_type: str, data: dict[str, Any]) -> None:
        envelope = event(event_type, self.org_id, data)
        response = _run(lambda http: send_events(http, self.api_url, self.secret, [envelope]))
        if response.status_code != 202:
            raise StepFailedError(
                f"{event_type} {data.get('id')} answered {response.status_code}: "
                f"{response.text[:300]}"
            )

    def send_tampered(self, event_type: str, data: dict[str, Any]) -> int:
        """The body changed after it was signed: qbsync must refuse it and store nothing."""
        body = json.dumps(event(event_type, self.org_id, data)).encode()
        headers = signed_headers(self.secret, body)
        tampered = body.replace(self.org_id.encode(), f"{self.org_id}_x".encode(), 1)
        response = _run(
            lambda http: http.post(f"{self.api_url}/v1/events", content=tampered, headers=headers)
        )
        if response.status_code != 401:
            raise StepFailedError(
                f"an event whose body changed after signing answered {response.status_code}"
            )
        return response.status_code


class Accountant:
    """A person at QuickBooks' screens: here, the simulator's admin API."""

    def __init__(self, simulator_url: str, realm_id: str) -> None:
        self.simulator_url = simulator_url
        self.realm_id = realm_id

    def invoices(self) -> list[InvoiceSummary]:
        return _run(lambda http: accountant.list_invoices(http, self.simulator_url, self.realm_id))

    def record_payment(self, invoice_id: str, amount: Decimal) -> str:
        return _run(
            lambda http: accountant.record_payment(
                http, self.simulator_url, self.realm_id, invoice_id, amount
            )
        )

    def documents(self, entity: str) -> list[dict[str, Any]]:
        """Bills and customers as QuickBooks holds them."""
        return _run(
            lambda http: accountant.list_documents(http, self.simulator_url, self.realm_id, entity)
        )
