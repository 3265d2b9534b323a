"""Intuit OAuth over the shared httpx client: what the token endpoint receives and how each of
its answers is typed (R7: only invalid_grant is final; 5xx and timeouts are retryable)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from qbsync.connections.intuit import qbo_config
from qbsync.qbo import (
    ACCOUNTING_SCOPE,
    IntuitOAuth,
    InvalidClientError,
    InvalidGrantError,
    TokenEndpointUnavailableError,
    TokenRequestError,
)
from qbsync.settings import IntuitSettings, Settings
from tests.qbo.conftest import AUTHORIZE_URL, REVOKE_URL, TOKEN_URL, make_config

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
OLD_REFRESH = "AB11730000000000oldRefreshTokenValue0123456789abcdef"
NEW_REFRESH = "AB11730086400000newRefreshTokenValue0123456789abcdef"
BASIC = "Basic " + base64.b64encode(b"client-id:client-secret").decode()


@pytest.fixture
def oauth(http: httpx.AsyncClient) -> IntuitOAuth:
    return IntuitOAuth(http, make_config(), clock=lambda: NOW)


def token_response(refresh: str = NEW_REFRESH, *, hard: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "token_type": "bearer",
        "access_token": "eyJ.new-access.token",
        "expires_in": 3600,
        "refresh_token": refresh,
        "x_refresh_token_expires_in": 8726400,
    }
    if hard:
        body["x_refresh_token_hard_expires_in"] = 156032154
    return body


def test_authorization_url_asks_for_accounting_with_state(oauth: IntuitOAuth) -> None:
    url = oauth.authorization_url("state-123")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTHORIZE_URL
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": ["client-id"],
        "redirect_uri": ["https://app.test/v1/quickbooks/callback"],
        "scope": [ACCOUNTING_SCOPE],
        "state": ["state-123"],
    }


def test_endpoints_come_from_settings() -> None:
    settings = Settings(
        env="test", intuit=IntuitSettings(environment="simulator"), simulator={"port": 9999}
    )
    config = qbo_config(settings)
    assert config.endpoints.token_url == "http://127.0.0.1:9999/oauth2/v1/tokens/bearer"
    assert config.endpoints.api_base_url == "http://127.0.0.1:9999"
    assert config.minor_version == 75


async def test_code_exchange(intuit: respx.MockRouter, oauth: IntuitOAuth) -> None:
    route = intuit.post(TOKEN_URL).respond(
        200, json=token_response(hard=False), headers={"intuit_tid": "tid-x"}
    )
    tokens = await oauth.exchange_code("auth-code-1")
    request = route.calls.last.request
    assert request.headers["authorization"] == BASIC
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["authorization_code"],
        "code": ["auth-code-1"],
        "redirect_uri": ["https://app.test/v1/quickbooks/callback"],
    }
    assert tokens.access_token.get_secret_value() == "eyJ.new-access.token"
    assert tokens.access_expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_hard_expires_at is None
    assert tokens.intuit_tid == "tid-x"


async def test_refresh_returns_the_rotated_pair_and_all_expiries(
    intuit: respx.MockRouter, oauth: IntuitOAuth
) -> None:
    route = intuit.post(TOKEN_URL).respond(200, json=token_response())
    tokens = await oauth.refresh(OLD_REFRESH)
    request = route.calls.last.request
    assert request.headers["x-include-refresh-token-hard-expires-in"] == "true"
    assert request.headers["authorization"] == BASIC
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [OLD_REFRESH],
    }
    assert tokens.refresh_token.get_secret_value() == NEW_REFRESH
    assert tokens.access_expires_at == NOW + timedelta(seconds=3600)
    assert tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)
    assert tokens.refresh_hard_expires_at == NOW + timedelta(seconds=156032154)
    assert NEW_REFRESH not in repr(tokens)
    assert "new-access" not in repr(tokens)


async def test_invalid_grant_is_final_and_distinct(
    intuit: respx.MockRouter, oauth: IntuitOAuth
) -> None:
    intuit.post(TOKEN_URL).respond(
        400,
        json={"error": "invalid_grant", "error_description": "Token invalid"},
        headers={"intuit_tid": "tid-grant"},
    )
    with pytest.raises(InvalidGrantError) as caught:
        await oauth.refresh(OLD_REFRESH)
    error = caught.value
    assert not error.retryable
    assert error.code == "invalid_grant"
    assert error.detail == "Token invalid"
    assert error.intuit_tid == "tid-grant"
    assert "Reconnect" in error.user_message
    assert OLD_REFRESH not in f"{error} {error!r}"


async def test_invalid_grant_echoing_the_token_is_redacted(
    intuit: respx.MockRouter, oauth: IntuitOAuth
) -> None:
    intuit.post(TOKEN_URL).respond(
        400,
        json={"error": "invalid_grant", "error_description": f"bad {OLD_REFRESH}"},
    )
    with pytest.raises(InvalidGrantError) as caught:
        await oauth.refresh(OLD_REFRESH)
    assert OLD_REFRESH not in f"{caught.value} {caught.value!r} {caught.value.detail}"


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, {"error": "invalid_client"}), (400, {"error": "invalid_client"}), (401, None)],
)
async def test_invalid_client_is_not_retryable(
    intuit: respx.MockRouter, oauth: IntuitOAuth, status: int, body: object
) -> None:
    intuit.post(TOKEN_URL).respond(status, json=body)
    with pytest.raises(InvalidClientError) as caught:
        await oauth.refresh(OLD_REFRESH)
    assert not caught.value.retryable


async def test_other_refusals_are_token_request_errors(
    intuit: respx.MockRouter, oauth: IntuitOAuth
) -> None:
    intuit.post(TOKEN_URL).respond(400, json={"error": "invalid_request"})
    with pytest.raises(TokenRequestError) as caught:
        await oauth.exchange_code("code")
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, text="Service Unavailable"),
        httpx.Response(500, json={"error": "server_error"}),
        httpx.Response(429),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ConnectError("refused"),
        httpx.Response(200, text="<html>maintenance</html>"),
    ],
    ids=["503", "500", "429", "read-timeout", "connect-timeout", "refused", "garbled-200"],
)
async def test_token_endpoint_outage_is_retryable(
    intuit: respx.MockRouter, oauth: IntuitOAuth, failure: httpx.Response | Exception
) -> None:
    """R7: a token endpoint 5xx or timeout never looks like a dead connection."""
    intuit.post(TOKEN_URL).mock(side_effect=[failure])
    with pytest.raises(TokenEndpointUnavailableError) as caught:
        await oauth.refresh(OLD_REFRESH)
    assert caught.value.retryable
    assert not isinstance(caught.value, InvalidGrantError)
    assert OLD_REFRESH not in f"{caught.value} {caught.value!r}"


async def test_revoke_posts_the_token_as_json_with_basic_auth(
    intuit: respx.MockRouter, oauth: IntuitOAuth
) -> None:
    route = intuit.post(REVOKE_URL).respond(200)
    await oauth.revoke(OLD_REFRESH)
    request = route.calls.last.request
    assert request.headers["authorization"] == BASIC
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"token": OLD_REFRESH}


async def test_revoke_failures_are_typed(intuit: respx.MockRouter, oauth: IntuitOAuth) -> None:
    intuit.post(REVOKE_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(400, json={"error": "invalid_token"})]
    )
    with pytest.raises(TokenEndpointUnavailableError):
        await oauth.revoke(OLD_REFRESH)
    with pytest.raises(TokenRequestError) as caught:
        await oauth.revoke(OLD_REFRESH)
    assert OLD_REFRESH not in f"{caught.value} {caught.value!r}"


@pytest.mark.parametrize(
    "change",
    [
        {"refresh_token": None},
        {"refresh_token": ""},
        {"access_token": None},
        {"access_token": 12345},
        {"refresh_token": {"value": "x"}},
        {"expires_in": "soon"},
        {"expires_in": 10**30},
        {"expires_in": -5},
    ],
    ids=[
        "null-refresh",
        "empty-refresh",
        "null-access",
        "numeric-access",
        "object-refresh",
        "text-expiry",
        "huge-expiry",
        "negative-expiry",
    ],
)
async def test_a_token_response_without_usable_tokens_is_never_returned(
    intuit: respx.MockRouter, oauth: IntuitOAuth, change: dict[str, object]
) -> None:
    """R7: a garbled 200 must not replace the stored refresh token with "None" or ""; the old
    token stays valid for 24 h, so the refresh is retried instead."""
    intuit.post(TOKEN_URL).respond(200, json={**token_response(), **change})
    with pytest.raises(TokenEndpointUnavailableError) as caught:
        await oauth.refresh(OLD_REFRESH)
    assert caught.value.retryable


@pytest.mark.parametrize("seconds", [10**30, "forever", -1])
async def test_odd_refresh_expiries_are_left_unknown(
    intuit: respx.MockRouter, oauth: IntuitOAuth, seconds: object
) -> None:
    intuit.post(TOKEN_URL).respond(
        200, json={**token_response(), "x_refresh_token_hard_expires_in": seconds}
    )
    tokens = await oauth.refresh(OLD_REFRESH)
    assert tokens.refresh_token.get_secret_value() == NEW_REFRESH
    assert tokens.refresh_hard_expires_at is None
    assert tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)
