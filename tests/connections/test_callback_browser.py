"""The callback answers a browser: always a redirect to the settings page, never JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from arq.connections import ArqRedis

from qbsync.connections import consent as consent_service
from qbsync.db import Database
from qbsync.main import create_app
from qbsync.settings import DatabaseSettings, Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import SETTINGS_URL, US_REALM, Consent


def _reason(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(SETTINGS_URL)
    return parse_qs(urlsplit(location).query)["reason"][0]


async def test_oversized_parameters_land_on_the_settings_page(
    consent: Consent, client: httpx.AsyncClient
) -> None:
    state = await consent.start()
    huge = "x" * 5000
    assert _reason(await client.get(f"/v1/quickbooks/callback?state={huge}")) == "invalid_state"
    answer = await client.get(
        f"/v1/quickbooks/callback?state={state}&code={huge}&realmId={US_REALM}"
    )
    assert _reason(answer) == "invalid_request"
    replay = await client.get(f"/v1/quickbooks/callback?state={state}&code=c&realmId={US_REALM}")
    assert _reason(replay) == "invalid_state", "the state was spent by the refused callback"
    other = await consent.start()
    bad_realm = await client.get(f"/v1/quickbooks/callback?state={other}&code=c&realmId={huge}")
    assert _reason(bad_realm) == "invalid_request"
    third = await consent.start()
    path = await client.get(f"/v1/quickbooks/callback?state={third}&code=c&realmId=1%2F..%2F2")
    assert _reason(path) == "invalid_request", "one rule for a company id"


async def test_a_non_admin_is_told_to_ask_an_admin(
    consent: Consent, simulator: SimulatorHandle, capfd: pytest.CaptureFixture[str]
) -> None:
    """QuickBooks refuses to show the company to a user who is not its admin (code 120/403)."""
    simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="companyinfo"))
    landed = await consent.finish(consent.consent(await consent.start()))
    assert landed == {"quickbooks": ["error"], "reason": ["not_company_admin"]}
    assert simulator.admin.revoke_calls == 1, "the grant we won't keep is withdrawn"
    logged = capfd.readouterr()
    assert '"reason": "not_company_admin"' in logged.out + logged.err


async def test_an_unexpected_failure_is_a_redirect_not_a_500(
    consent: Consent,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def broken(*_: object) -> str:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(consent_service, "receive_callback", broken)
    answer = await client.get(f"/v1/quickbooks/callback?state=s&code=c&realmId={US_REALM}")
    assert _reason(answer) == "unexpected_error"
    logged = capfd.readouterr()
    assert "a bug nobody foresaw" in logged.out + logged.err, "support sees the traceback"


@pytest.fixture(
    params=[
        "postgresql+asyncpg://qbsync@127.0.0.1:1/qbsync",
        "postgresql+asyncpg://qbsync@db-host.invalid:5432/qbsync",
    ],
    ids=["refused", "unresolvable"],
)
async def no_database(
    settings: Settings, redis: ArqRedis, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    database = DatabaseSettings(pool_timeout_seconds=1)
    db = Database.connect(request.param, database)
    app = create_app(settings, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            yield client
    await db.dispose()


async def test_the_database_being_down_is_a_redirect_saying_so(
    no_database: httpx.AsyncClient,
) -> None:
    answer = await no_database.get(f"/v1/quickbooks/callback?state=s&code=c&realmId={US_REALM}")
    assert _reason(answer) == "temporarily_unavailable"
    assert "json" not in answer.headers.get("content-type", "")


async def test_an_api_route_with_the_database_down_is_a_503_problem(
    no_database: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    headers = bearer(make_token())
    for answer in (
        await no_database.delete("/v1/quickbooks/connection", headers=headers),
        await no_database.post("/v1/quickbooks/test-connection", headers=headers),
        await no_database.post(
            "/v1/quickbooks/connect/confirm", json={"handle": "h"}, headers=headers
        ),
        await no_database.get("/v1/quickbooks/connection", headers=headers),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "database_unavailable"
        assert answer.headers["retry-after"] == "5"
