"""An in-process simulator per test, reached through httpx (ASGI or real loopback HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator import SimulatorConfig, create_simulator_app
from qbsync.simulator.admin import Admin
from qbsync.simulator.jsonio import dumps
from qbsync.simulator.state import SimulatorState

US = "9341450000000001"
GB = "9341450000000002"
US2 = "9341450000000003"
CLIENT = ("simulator-client-id", "simulator-client-secret")
BASE_URL = "http://qbo.test"


def decode(response: httpx.Response) -> Any:
    """A response body with money as Decimal, as the simulator wrote it."""
    return json.loads(response.text, parse_float=Decimal)


def first_error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = decode(response)["Fault"]["Error"][0]
    return error


@dataclass
class Api:
    """One company's Accounting API, authenticated."""

    client: httpx.AsyncClient
    realm_id: str
    state: SimulatorState

    @property
    def admin(self) -> Admin:
        return Admin(self.state)

    def url(self, resource: str) -> str:
        return f"/v3/company/{self.realm_id}/{resource}"

    async def post(self, entity: str, body: Any, **params: str) -> httpx.Response:
        return await self.client.post(
            self.url(entity.lower()),
            content=dumps(body),
            params=params,
            headers={"Content-Type": "application/json"},
        )

    async def create(self, entity: str, body: Any, **params: str) -> dict[str, Any]:
        response = await self.post(entity, body, **params)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = decode(response)[entity]
        return created

    async def read(self, entity: str, object_id: str) -> dict[str, Any]:
        response = await self.client.get(self.url(f"{entity.lower()}/{object_id}"))
        assert response.status_code == 200, response.text
        found: dict[str, Any] = decode(response)[entity]
        return found

    async def query(self, statement: str) -> dict[str, Any]:
        response = await self.client.get(self.url("query"), params={"query": statement})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = decode(response)["QueryResponse"]
        return result


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every task a test starts (servers, lifespans, webhook senders) is gone when it ends."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leaked, f"tasks left pending: {leaked}"


@pytest.fixture
def config() -> SimulatorConfig:
    return SimulatorConfig()


@pytest.fixture
def state(config: SimulatorConfig) -> SimulatorState:
    return SimulatorState(config)


@pytest.fixture
def transport(config: SimulatorConfig, state: SimulatorState) -> httpx.ASGITransport:
    """Straight into the ASGI app: no lifespan, so no webhook delivery."""
    return httpx.ASGITransport(app=create_simulator_app(config, state=state))


@pytest.fixture
async def client(transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@asynccontextmanager
async def company_api(
    transport: httpx.AsyncBaseTransport, state: SimulatorState, realm_id: str, base_url: str
) -> AsyncIterator[Api]:
    tokens = state.tokens.connect(realm_id)
    headers = {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers) as authed:
        yield Api(authed, realm_id, state)


@pytest.fixture
async def us(transport: httpx.ASGITransport, state: SimulatorState) -> AsyncIterator[Api]:
    async with company_api(transport, state, US, BASE_URL) as api:
        yield api


@pytest.fixture
async def gb(transport: httpx.ASGITransport, state: SimulatorState) -> AsyncIterator[Api]:
    async with company_api(transport, state, GB, BASE_URL) as api:
        yield api


def sales_line(
    amount: str,
    item: str = "1",
    *,
    qty: str | None = None,
    price: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    detail: dict[str, Any] = {"ItemRef": {"value": item}}
    if qty is not None:
        detail["Qty"] = Decimal(qty)
    if price is not None:
        detail["UnitPrice"] = Decimal(price)
    if code is not None:
        detail["TaxCodeRef"] = {"value": code}
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": Decimal(amount),
        "SalesItemLineDetail": detail,
    }


def expense_line(amount: str, account: str = "3", code: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"AccountRef": {"value": account}}
    if code is not None:
        detail["TaxCodeRef"] = {"value": code}
    return {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": Decimal(amount),
        "AccountBasedExpenseLineDetail": detail,
    }
