"""Two connected orgs with data of their own, for the isolation and size-bound tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import Consent
from tests.security.stack import sign_event


@dataclass
class Tenant:
    """One org as its frontend and its platform backend call qbsync."""

    org_id: str
    realm_id: str
    client: httpx.AsyncClient
    token: str
    settings: Settings
    # Strings that belong to this org only: none may appear in another org's answers.
    secrets: set[str] = field(default_factory=set)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(
            method, path, headers=self.headers, json=body if body is not None else None
        )

    async def events(self, events: list[dict[str, Any]]) -> httpx.Response:
        raw = json.dumps(events).encode()
        secret = self.settings.platform.webhook_secret.get_secret_value()
        headers = {"content-type": "application/json", **sign_event(secret, raw)}
        return await self.client.post("/v1/events", content=raw, headers=headers)


def client_event(org_id: str, client_id: str, name: str, email: str) -> dict[str, Any]:
    return {
        "id": f"evt_{org_id}_{client_id}",
        "type": "client.upserted",
        "organization_id": org_id,
        "occurred_at": "2026-11-20T10:00:00Z",
        "data": {"id": client_id, "name": name, "email": email},
    }


def invoice_event(org_id: str, invoice_id: str, client: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"evt_{org_id}_{invoice_id}",
        "type": "invoice.upserted",
        "organization_id": org_id,
        "occurred_at": "2026-11-20T10:00:00Z",
        "data": {
            "id": invoice_id,
            "number": f"N-{invoice_id}",
            "status": "sent",
            "currency": "USD",
            "issue_date": "2026-11-20",
            "amounts_are": "no_tax",
            "client": client,
            "lines": [{"description": "Work", "quantity": "1", "unit_price": "10.00"}],
            "subtotal": "10.00",
            "tax_total": "0.00",
            "total": "10.00",
        },
    }


async def tenant(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    settings: Settings,
    consent: Consent,
    simulator: SimulatorHandle,
    *,
    org_id: str,
    realm_id: str,
    name: str,
) -> Tenant:
    """`org_id` connected to `realm_id`, its settings saved, a client mapped, a client and an
    invoice in its sync log, and a customer of its own in its QuickBooks company."""
    await consent.connect(org_id, realm_id)
    org = Tenant(org_id, realm_id, client, make_token(org_id), settings)
    ledger = simulator.state.ledger(realm_id)
    customer = ledger.write("Customer", None, {"DisplayName": f"{name} Customer"})
    client_id, invoice_id = f"cl_{org_id}", f"inv_{org_id}"
    email = f"ap@{org_id}.test"
    saved = await org.call("PUT", "/v1/quickbooks/settings", {"customer_sync_mode": "match_only"})
    assert saved.status_code == 200, saved.text
    mapped = await org.call(
        "PUT", f"/v1/quickbooks/mappings/clients/{client_id}", {"qbo_id": customer["Id"]}
    )
    assert mapped.status_code == 200, mapped.text
    events = [
        client_event(org_id, client_id, f"{name} Ltd", email),
        invoice_event(org_id, invoice_id, {"id": client_id, "name": f"{name} Ltd"}),
    ]
    stored = await org.events(events)
    assert stored.status_code == 202, stored.text
    org.secrets = {
        org_id,
        realm_id,
        client_id,
        invoice_id,
        email,
        f"{name} Ltd",
        f"{name} Customer",
    }
    return org
