"""Configuration tests run end to end: qbsync over HTTP, QuickBooks played by the simulator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import (
    UK_REALM,
    US_REALM,
    Consent,
    consent,
    live,
    prefix,
    simulator,
    simulator_settings,
)

__all__ = ["consent", "live", "prefix", "simulator"]


@pytest.fixture
def settings(simulator: SimulatorHandle, key_prefix: str) -> Settings:
    """Each test its own Redis keys: a list one test cached is never another test's."""
    return simulator_settings(simulator, f"{key_prefix}:{uuid.uuid4().hex[:8]}")


@dataclass
class Org:
    """One org of the platform, as its frontend calls qbsync."""

    client: httpx.AsyncClient
    token: str
    simulator: SimulatorHandle
    realm_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/v1/quickbooks/{path}", params=params, headers=self.headers)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.client.put(f"/v1/quickbooks/{path}", json=body, headers=self.headers)

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/quickbooks/{path}", json=body, headers=self.headers)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(f"/v1/quickbooks/{path}", headers=self.headers)

    def calls(self) -> int:
        """Accounting API calls this company has received so far."""
        return self.simulator.state.stats.requests_by_realm[self.realm_id]

    def writes(self) -> list[str]:
        """Every write this company has received (the simulator's request log)."""
        return [
            endpoint
            for endpoint, count in self.simulator.state.stats.requests_by_endpoint.items()
            if endpoint.startswith(f"{self.realm_id} POST")
            and count
            and " POST query" not in endpoint
        ]

    def in_quickbooks(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """An accountant creates (or, with Id and SyncToken, changes) a record in QuickBooks."""
        ledger = self.simulator.state.ledger(self.realm_id)
        if "Id" in body:
            current = ledger.read(entity, str(body["Id"]))
            body = {"SyncToken": current["SyncToken"], "sparse": True, **body}
        return ledger.write(entity, None, body)

    def qbo_id(self, entity: str, name: str) -> str:
        """The id of a seeded record, by its name, as QuickBooks holds it."""
        key = "DisplayName" if entity in ("Customer", "Vendor") else "Name"
        company = self.simulator.state.company(self.realm_id)
        for row in company.objects[entity].values():
            if row.get(key) == name:
                return str(row["Id"])
        raise AssertionError(f"no {entity} named {name!r}")


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


@pytest.fixture
def org(client: httpx.AsyncClient, make_token: TokenFactory, simulator: SimulatorHandle) -> Org:
    """org_1, not connected yet."""
    return Org(client, make_token("org_1"), simulator, US_REALM)


@pytest.fixture
async def us(org: Org, consent: Consent) -> Org:
    """org_1 connected to the US company (automated sales tax)."""
    await consent.connect("org_1", US_REALM)
    return org


@pytest.fixture
async def uk(org: Org, consent: Consent) -> Org:
    """org_1 connected to the UK company (VAT codes)."""
    await consent.connect("org_1", UK_REALM)
    org.realm_id = UK_REALM
    return org
