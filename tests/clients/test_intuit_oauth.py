"""intuit-oauth's AuthClient against the simulator: discovery, consent, code, refresh, revoke."""

from __future__ import annotations

import jwt
import pytest
import requests
from intuitlib.enums import Scopes  # type: ignore[import-untyped]
from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]

from qbsync.simulator.testing import SimulatorHandle
from tests.clients.conftest import CLIENT_ID, REDIRECT_URI, US, auth_client, consent


def company_info_status(simulator: SimulatorHandle, access_token: str) -> int:
    response = requests.get(
        f"{simulator.base_url}/v3/company/{US}/companyinfo/{US}",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=10,
    )
    return response.status_code


def test_the_discovery_document_gives_the_client_every_endpoint(
    simulator: SimulatorHandle,
) -> None:
    client = auth_client(simulator)

    assert client.auth_endpoint == simulator.authorize_url
    assert client.token_endpoint == simulator.token_url
    assert client.revoke_endpoint == simulator.revoke_url
    assert client.issuer_uri == f"{simulator.base_url}/op/v1"
    assert client.user_info_url == f"{simulator.base_url}/v1/openid_connect/userinfo"
    keys = jwt.PyJWKSet.from_dict(requests.get(client.jwks_uri, timeout=10).json())
    assert [key.key_type for key in keys.keys] == ["RSA"]


def test_connect_refresh_and_revoke(simulator: SimulatorHandle) -> None:
    client = auth_client(simulator)
    url = client.get_authorization_url([Scopes.ACCOUNTING])

    callback = consent(url)

    assert callback.url.startswith(REDIRECT_URI)
    assert callback.params["state"] == client.state_token
    client.get_bearer_token(callback.params["code"], realm_id=callback.params["realmId"])
    assert client.realm_id == US
    assert client.expires_in == 3600
    assert company_info_status(simulator, client.access_token) == 200

    first_refresh = client.refresh_token
    client.refresh()
    assert client.refresh_token != first_refresh
    assert company_info_status(simulator, client.access_token) == 200

    assert client.revoke() is True
    assert company_info_status(simulator, client.access_token) == 401
    with pytest.raises(AuthClientError) as refused:
        client.refresh()
    assert refused.value.status_code == 400
    assert refused.value.response.json()["error"] == "invalid_grant"


def test_revoking_one_grant_disconnects_the_app_from_the_company(
    simulator: SimulatorHandle,
) -> None:
    first, second = auth_client(simulator), auth_client(simulator)
    for client in (first, second):
        callback = consent(client.get_authorization_url([Scopes.ACCOUNTING]))
        client.get_bearer_token(callback.params["code"], realm_id=US)

    first.revoke(token=first.refresh_token)

    # Intuit: revoking the refresh token disconnects the app from the company.
    assert company_info_status(simulator, second.access_token) == 401
    with pytest.raises(AuthClientError):
        second.refresh()
    companies = requests.get(f"{simulator.base_url}/_sim/companies", timeout=10).json()
    assert {c["realm_id"]: c["connected"] for c in companies}[US] is False


def test_openid_consent_gives_a_verified_id_token_and_the_users_profile(
    simulator: SimulatorHandle,
) -> None:
    client = auth_client(simulator)
    url = client.get_authorization_url([Scopes.ACCOUNTING, Scopes.OPENID, Scopes.EMAIL])
    callback = consent(url)

    client.get_bearer_token(callback.params["code"], realm_id=US)

    # intuitlib keeps the id_token only once it verified it against the JWKS.
    assert client.id_token is not None
    claims = jwt.decode(client.id_token, options={"verify_signature": False})
    assert (claims["aud"], claims["realmid"]) == ([CLIENT_ID], US)
    profile = client.get_user_info().json()
    assert profile["sub"] == claims["sub"]
    assert profile["email"].endswith("@quickbooks.test")


def test_a_token_without_openid_gets_no_user_info(simulator: SimulatorHandle) -> None:
    client = auth_client(simulator)
    callback = consent(client.get_authorization_url([Scopes.ACCOUNTING]))
    client.get_bearer_token(callback.params["code"], realm_id=US)

    assert client.id_token is None
    with pytest.raises(AuthClientError) as refused:
        client.get_user_info()
    assert refused.value.status_code == 403


def test_a_bad_or_reused_code_is_an_auth_client_error(simulator: SimulatorHandle) -> None:
    client = auth_client(simulator)
    with pytest.raises(AuthClientError) as bad:
        client.get_bearer_token("not-a-code", realm_id=US)
    assert bad.value.status_code == 400
    assert bad.value.response.json() == {
        "error": "invalid_grant",
        "error_description": "Token invalid",
    }

    callback = consent(client.get_authorization_url([Scopes.ACCOUNTING]))
    client.get_bearer_token(callback.params["code"], realm_id=US)
    with pytest.raises(AuthClientError):
        client.get_bearer_token(callback.params["code"], realm_id=US)


def test_wrong_client_credentials_are_refused(simulator: SimulatorHandle) -> None:
    client = auth_client(simulator)
    client.client_secret = "wrong"
    callback = consent(client.get_authorization_url([Scopes.ACCOUNTING]))
    with pytest.raises(AuthClientError) as refused:
        client.get_bearer_token(callback.params["code"], realm_id=US)
    assert refused.value.status_code == 401


def test_cancel_and_unknown_scopes_come_back_as_errors_on_the_callback(
    simulator: SimulatorHandle,
) -> None:
    client = auth_client(simulator)
    denied = consent(client.get_authorization_url([Scopes.ACCOUNTING]), approve=False)
    assert denied.params["error"] == "access_denied"
    assert "code" not in denied.params

    url = client.get_authorization_url([Scopes.ACCOUNTING]).replace(
        "scope=com.intuit.quickbooks.accounting", "scope=com.intuit.quickbooks.accounting+bogus"
    )
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    assert "error=invalid_scope" in answer.headers["location"]
