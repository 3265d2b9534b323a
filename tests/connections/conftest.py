"""Connection tests run end to end: qbsync over HTTP, Intuit played by the simulator over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select, update

from qbsync.db import Database
from qbsync.models import Connection
from qbsync.models.base import utcnow
from qbsync.settings import Settings
from qbsync.simulator.admin import AuthorizeRequest
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import CommittedApp, committed_app, org_prefix

US_REALM = "9341450000000001"
UK_REALM = "9341450000000002"
OTHER_US_REALM = "9341450000000003"
SETTINGS_URL = "https://app.test/settings/integrations"
REDIRECT_URI = "http://qbsync.test/v1/quickbooks/callback"


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorHandle]:
    async with running_simulator(SimulatorConfig(redirect_uris=(REDIRECT_URI,))) as handle:
        yield handle


def simulator_settings(simulator: SimulatorHandle, key_prefix: str) -> Settings:
    return Settings(
        env="test",
        redis={"queue_name": f"{key_prefix}:{uuid.uuid4().hex[:8]}", "key_prefix": key_prefix},
        platform={"events_url": "http://platform.test/events", "settings_url": SETTINGS_URL},
        intuit={
            "environment": "simulator",
            "redirect_uri": REDIRECT_URI,
            "authorize_url": simulator.authorize_url,
            "token_url": simulator.token_url,
            "revoke_url": simulator.revoke_url,
            "api_base_url": simulator.base_url,
        },
    )


@pytest.fixture
def settings(simulator: SimulatorHandle, key_prefix: str) -> Settings:
    return simulator_settings(simulator, key_prefix)


@pytest.fixture
def prefix() -> str:
    """The org ids of a test that commits for real start with this; its rows are removed."""
    return org_prefix()


@pytest.fixture
async def live(
    settings: Settings, database_url: str, redis: ArqRedis, prefix: str
) -> AsyncIterator[CommittedApp]:
    """qbsync on a real pool of five connections, for tests that need real concurrency."""
    async with committed_app(settings, database_url, redis, prefix) as running:
        yield running


async def load_connection(db: Database, org_id: str = "org_1") -> Connection:
    """The org's connection row as stored now (never a stale identity-map copy)."""
    async with db.sessions() as session:
        row = await session.scalar(
            select(Connection)
            .where(Connection.org_id == org_id)
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


async def expire_access_token(db: Database) -> None:
    """qbsync's stored access token is due for a refresh (QuickBooks is not told)."""
    async with db.sessions() as session:
        await session.execute(update(Connection).values(access_expires_at=utcnow()))
        await session.commit()


@dataclass
class Consent:
    """Drives the browser's part of OAuth: ask qbsync, consent at Intuit, follow the redirect."""

    client: httpx.AsyncClient
    simulator: SimulatorHandle
    make_token: TokenFactory

    async def start(self, org_id: str = "org_1") -> str:
        response = await self.client.post(
            "/v1/quickbooks/connect", headers=bearer(self.make_token(org_id))
        )
        assert response.status_code == 200, response.text
        query = parse_qs(urlsplit(str(response.json()["authorization_url"])).query)
        return query["state"][0]

    def consent(self, state: str, realm_id: str = US_REALM, *, approve: bool = True) -> str:
        """The URL Intuit sends the browser back to."""
        return self.simulator.admin.authorize(
            AuthorizeRequest(
                realm_id=realm_id, redirect_uri=REDIRECT_URI, state=state, approve=approve
            )
        )

    async def finish(self, callback_url: str) -> dict[str, list[str]]:
        parts = urlsplit(callback_url)
        response = await self.client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(SETTINGS_URL)
        return parse_qs(urlsplit(location).query)

    async def confirm(
        self, handle: str, org_id: str = "org_1", user_id: str = "user_1"
    ) -> httpx.Response:
        """The platform's frontend completing the link with its user's JWT."""
        return await self.client.post(
            "/v1/quickbooks/connect/confirm",
            json={"handle": handle},
            headers=bearer(self.make_token(org_id, sub=user_id)),
        )

    async def handle(self, org_id: str = "org_1", realm_id: str = US_REALM) -> str:
        """Consent up to the settings page: the handle the frontend would confirm."""
        outcome = await self.finish(self.consent(await self.start(org_id), realm_id))
        assert outcome["quickbooks"] == ["confirm"], outcome
        return outcome["handle"][0]

    async def connect(self, org_id: str = "org_1", realm_id: str = US_REALM) -> None:
        confirmed = await self.confirm(await self.handle(org_id, realm_id), org_id)
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["status"] == "connected"


@pytest.fixture
def consent(
    client: httpx.AsyncClient, simulator: SimulatorHandle, make_token: TokenFactory
) -> Consent:
    return Consent(client, simulator, make_token)
