"""Fixtures for the QuickBooks client: a config pointing at fake hosts, respx standing in for
Intuit, a token provider that records what it was asked, and a limiter that records slots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import respx
from pydantic import SecretStr

from qbsync.qbo import IntuitEndpoints, QboClient, QboConfig, RetryPolicy

REALM = "9341450000000000"
API = "https://qbo.test"
COMPANY = f"{API}/v3/company/{REALM}"
TOKEN_URL = "https://oauth.intuit.test/oauth2/v1/tokens/bearer"
REVOKE_URL = "https://revoke.intuit.test/v2/oauth2/tokens/revoke"
AUTHORIZE_URL = "https://appcenter.intuit.test/connect/oauth2"
ACCESS_TOKEN_1 = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.first-access-token.sig"
ACCESS_TOKEN_2 = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.second-access-token.sig"

FAST_RETRY = RetryPolicy(
    max_attempts=4,
    base_delay_seconds=0.001,
    throttle_delay_seconds=0.002,
    max_delay_seconds=0.01,
    max_total_seconds=2.0,
)


def make_config(retry: RetryPolicy = FAST_RETRY) -> QboConfig:
    return QboConfig(
        client_id="client-id",
        client_secret=SecretStr("client-secret"),
        redirect_uri="https://app.test/v1/quickbooks/callback",
        endpoints=IntuitEndpoints(
            authorize_url=AUTHORIZE_URL,
            token_url=TOKEN_URL,
            revoke_url=REVOKE_URL,
            api_base_url=API,
        ),
        webhook_verifier_token=SecretStr("test-verifier-token"),
        retry=retry,
    )


@dataclass
class FakeTokens:
    """Hands out ACCESS_TOKEN_1 until asked to refresh, then ACCESS_TOKEN_2."""

    current: str = ACCESS_TOKEN_1
    forced: int = 0

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.forced += 1
            self.current = ACCESS_TOKEN_2
        return self.current


@dataclass
class RecordingLimiter:
    slots: list[tuple[str, bool]] = field(default_factory=list)
    waits: list[float | None] = field(default_factory=list)

    @asynccontextmanager
    async def slot(
        self, realm_id: str, *, batch: bool = False, max_wait_seconds: float | None = None
    ) -> AsyncIterator[None]:
        self.slots.append((realm_id, batch))
        self.waits.append(max_wait_seconds)
        yield


@pytest.fixture
def intuit() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def qbo(http: httpx.AsyncClient, tokens: FakeTokens, limiter: RecordingLimiter) -> QboClient:
    return QboClient(http, make_config(), realm_id=REALM, tokens=tokens, limiter=limiter)
