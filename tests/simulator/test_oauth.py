"""OAuth over real HTTP: consent (HTML and admin), code exchange, refresh rotation, revoke, 401s."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.admin import AuthorizeRequest
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.simulator.conftest import CLIENT, GB, US

REDIRECT = "http://127.0.0.1:8000/v1/quickbooks/callback"
SCOPE = "com.intuit.quickbooks.accounting"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    async with running_simulator(SimulatorConfig(redirect_uris=(REDIRECT,))) as handle:
        yield handle


@pytest.fixture
async def http(sim: SimulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        yield client


def callback_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT)
    return {key: values[0] for key, values in parse_qs(urlparse(location).query).items()}


async def exchange(http: httpx.AsyncClient, code: str, **headers: str) -> httpx.Response:
    return await http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=CLIENT,
        headers={"Accept": "application/json", **headers},
    )


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=CLIENT,
    )


async def connect(
    sim: SimulatorHandle, http: httpx.AsyncClient, realm_id: str = US
) -> dict[str, str]:
    location = sim.admin.authorize(AuthorizeRequest(realm_id=realm_id, redirect_uri=REDIRECT))
    response = await exchange(http, callback_params(location)["code"])
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def company_info(
    http: httpx.AsyncClient, access_token: str, realm_id: str = US
) -> httpx.Response:
    return await http.get(
        f"/v3/company/{realm_id}/companyinfo/{realm_id}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


async def test_the_consent_page_lets_the_user_pick_a_company_and_approve(
    http: httpx.AsyncClient,
) -> None:
    params = {
        "client_id": CLIENT[0],
        "response_type": "code",
        "scope": f"{SCOPE} openid",
        "redirect_uri": REDIRECT,
        "state": "csrf-123",
    }
    page = await http.get("/connect/oauth2", params=params)
    assert page.status_code == 200
    assert "Trafalgar Consulting Ltd" in page.text
    assert "Craig&#x27;s Design and Landscaping" in page.text
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    form = {
        unescape(name): unescape(value)
        for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    }
    form |= {"realm_id": GB, "decision": "approve"}

    response = await http.post(action.group(1), data=form)

    assert response.status_code == 302
    params = callback_params(response.headers["location"])
    assert params["state"] == "csrf-123"
    assert params["realmId"] == GB
    assert params["code"]


async def test_denying_consent_redirects_with_access_denied(http: httpx.AsyncClient) -> None:
    form = {
        "client_id": CLIENT[0],
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "s-1",
        "realm_id": US,
        "decision": "deny",
    }
    response = await http.post("/connect/oauth2/decision", data=form)

    assert response.status_code == 302
    assert callback_params(response.headers["location"]) == {
        "error": "access_denied",
        "state": "s-1",
    }


async def test_consent_without_the_accounting_scope_is_refused(http: httpx.AsyncClient) -> None:
    params = {"client_id": CLIENT[0], "scope": "openid", "redirect_uri": REDIRECT, "state": "x"}

    response = await http.get("/connect/oauth2", params=params)

    assert response.status_code == 302
    assert callback_params(response.headers["location"])["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [("someone-else", REDIRECT), (CLIENT[0], "https://evil.test/callback")],
)
async def test_consent_for_an_unknown_app_or_redirect_shows_an_error_page(
    http: httpx.AsyncClient, client_id: str, redirect_uri: str
) -> None:
    params = {"client_id": client_id, "scope": SCOPE, "redirect_uri": redirect_uri, "state": "x"}

    response = await http.get("/connect/oauth2", params=params)

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_admin_consent_returns_the_redirect_location(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/_sim/authorize", json={"realm_id": US, "redirect_uri": REDIRECT, "state": "abc"}
    )

    assert response.status_code == 200
    params = callback_params(response.json()["location"])
    assert params["realmId"] == US
    assert params["state"] == "abc"

    denied = await http.post(
        "/_sim/authorize",
        json={"realm_id": US, "redirect_uri": REDIRECT, "state": "abc", "approve": False},
    )
    assert callback_params(denied.json()["location"])["error"] == "access_denied"


async def test_code_exchange_returns_intuits_token_body(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    location = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))

    response = await exchange(http, callback_params(location)["code"])

    assert response.status_code == 200
    assert response.headers["intuit_tid"]
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 8_726_400
    assert body["refresh_token"].startswith("AB11")
    assert "x_refresh_token_hard_expires_in" not in body
    assert (await company_info(http, body["access_token"])).status_code == 200


async def test_a_code_works_once_and_only_with_its_redirect_uri(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    location = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))
    code = callback_params(location)["code"]
    wrong_redirect = await http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://other/cb"},
        auth=CLIENT,
    )
    assert wrong_redirect.status_code == 400
    assert wrong_redirect.json()["error"] == "invalid_grant"

    assert (await exchange(http, code)).status_code == 200
    reused = await exchange(http, code)

    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Token invalid"}


async def test_a_code_expires_after_ten_minutes(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    late = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))
    sim.admin.advance_clock(599)
    in_time = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))
    sim.admin.advance_clock(1)

    expired = await exchange(http, callback_params(late)["code"])

    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"
    assert (await exchange(http, callback_params(in_time)["code"])).status_code == 200


async def test_the_token_endpoint_requires_the_apps_basic_credentials(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    location = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))
    data = {
        "grant_type": "authorization_code",
        "code": callback_params(location)["code"],
        "redirect_uri": REDIRECT,
    }

    no_auth = await http.post("/oauth2/v1/tokens/bearer", data=data)
    wrong = await http.post("/oauth2/v1/tokens/bearer", data=data, auth=(CLIENT[0], "nope"))

    assert no_auth.status_code == wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    as_post = await http.post(
        "/oauth2/v1/tokens/bearer",
        data={**data, "client_id": CLIENT[0], "client_secret": CLIENT[1]},
    )
    assert as_post.status_code == 200


async def test_the_hard_expiry_header_adds_the_absolute_lifetime(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    location = sim.admin.authorize(AuthorizeRequest(realm_id=US, redirect_uri=REDIRECT))

    response = await exchange(
        http,
        callback_params(location)["code"],
        **{"x-include-refresh-token-hard-expires-in": "true"},
    )

    hard = response.json()["x_refresh_token_hard_expires_in"]
    assert 157_679_990 < hard <= 157_680_000


async def test_refresh_rotates_and_the_old_token_works_for_the_grace_period(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    first = await connect(sim, http)

    second = (await refresh(http, first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    sim.admin.advance_clock(86_400 - 60)
    still_valid = await refresh(http, first["refresh_token"])
    assert still_valid.status_code == 200
    sim.admin.advance_clock(120)

    expired = await refresh(http, first["refresh_token"])
    latest = await refresh(http, still_valid.json()["refresh_token"])

    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"
    assert latest.status_code == 200
    assert sim.admin.refresh_calls == 4


async def test_access_tokens_expire_after_an_hour_with_intuits_401(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sim, http)
    sim.admin.advance_clock(3600)

    response = await company_info(http, tokens["access_token"])

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="Intuit", error="invalid_token"'
    body = response.json()
    assert body["fault"]["type"] == "AUTHENTICATION"
    error = body["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert error["detail"].startswith("Token expired")
    assert isinstance(body["time"], int)

    renewed = (await refresh(http, tokens["refresh_token"])).json()
    assert (await company_info(http, renewed["access_token"])).status_code == 200


async def test_tokens_expire_on_demand(sim: SimulatorHandle, http: httpx.AsyncClient) -> None:
    tokens = await connect(sim, http)

    expired = await http.post("/_sim/tokens/expire", json={"kind": "access", "realm_id": US})
    assert expired.json() == {"expired": 1}
    assert (await company_info(http, tokens["access_token"])).status_code == 401

    await http.post("/_sim/tokens/expire", json={"kind": "refresh"})
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoke_disconnects_the_app(sim: SimulatorHandle, http: httpx.AsyncClient) -> None:
    tokens = await connect(sim, http)
    assert sim.state.tokens.is_connected(US)

    response = await http.post(
        "/v2/oauth2/tokens/revoke", json={"token": tokens["refresh_token"]}, auth=CLIENT
    )

    assert response.status_code == 200
    assert not sim.state.tokens.is_connected(US)
    assert (await company_info(http, tokens["access_token"])).status_code == 401
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert sim.admin.revoke_calls == 1
    unauthenticated = await http.post("/v2/oauth2/tokens/revoke", json={"token": "x"})
    assert unauthenticated.status_code == 401


async def test_a_user_disconnecting_in_quickbooks_kills_the_tokens(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sim, http)

    await http.post(f"/_sim/companies/{US}/disconnect")

    assert (await company_info(http, tokens["access_token"])).status_code == 401
    assert (await refresh(http, tokens["refresh_token"])).status_code == 400


async def test_a_token_only_opens_its_own_company(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    tokens = await connect(sim, http, US)

    response = await company_info(http, tokens["access_token"], GB)

    assert response.status_code == 403
    assert response.json()["Fault"]["Error"][0]["code"] == "3100"


async def test_requests_without_a_token_get_401(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v3/company/{US}/companyinfo/{US}")

    assert response.status_code == 401
    assert response.json()["fault"]["error"][0]["detail"] == "Token invalid"


async def test_discovery_document_lists_the_endpoints(
    sim: SimulatorHandle, http: httpx.AsyncClient
) -> None:
    body = (await http.get("/.well-known/openid_sandbox_configuration")).json()

    assert body["token_endpoint"] == sim.token_url
    assert body["revocation_endpoint"] == sim.revoke_url
    assert body["authorization_endpoint"] == sim.authorize_url
    assert body["jwks_uri"] == f"{sim.base_url}/op/v1/jwks"
    assert body["userinfo_endpoint"] == f"{sim.base_url}/v1/openid_connect/userinfo"
    assert body["issuer"] == f"{sim.base_url}/op/v1"
    for spelling in ("openid_configuration/", "openid-sandbox-configuration"):
        assert (await http.get(f"/.well-known/{spelling}")).json() == body


async def test_the_consent_page_names_the_app_and_the_access_it_asks_for() -> None:
    config = SimulatorConfig(app_name="Acme <Books>", redirect_uris=(REDIRECT,))
    async with running_simulator(config) as sim, httpx.AsyncClient(base_url=sim.base_url) as http:
        page = await http.get(
            "/connect/oauth2",
            params={
                "client_id": CLIENT[0],
                "response_type": "code",
                "scope": f"{SCOPE} email",
                "redirect_uri": REDIRECT,
                "state": "s",
            },
        )

    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Connect Acme &lt;Books&gt; to QuickBooks</title>" in page.text
    assert "<strong>Acme &lt;Books&gt;</strong> wants to connect" in page.text
    assert "Read and change your accounting data" in page.text
    assert "See your email address" in page.text
    assert page.text.count('type="radio" name="realm_id"') == 3
    assert re.search(r'<button[^>]*value="approve">Connect</button>', page.text)
    assert re.search(r'<button[^>]*value="deny">Cancel</button>', page.text)
