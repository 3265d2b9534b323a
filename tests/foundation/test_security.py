"""The platform JWT → org context (S2): every bad token gets a problem body, never a 200."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from fastapi import FastAPI

from qbsync.security import OrgDep
from tests.conftest import TokenFactory, bearer


@pytest.fixture
async def whoami(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    @app.get("/v1/test/whoami")
    async def who(org: OrgDep) -> dict[str, str]:
        return {"org_id": org.org_id, "user_id": org.user_id}

    return client


def _b64(part: dict[str, object]) -> str:
    raw = json.dumps(part, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _get(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return await client.get("/v1/test/whoami", headers=headers)


async def test_a_valid_token_names_the_org(
    whoami: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await _get(whoami, make_token("org_42"))
    assert response.status_code == 200
    assert response.json() == {"org_id": "org_42", "user_id": "user_1"}


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": int(time.time()) - 120}, "token_expired"),
        ({"iat": int(time.time()) + 3600}, "token_not_yet_valid"),
        ({"nbf": int(time.time()) + 3600}, "token_not_yet_valid"),
        ({"exp": None}, "invalid_token"),
        ({"iat": None}, "invalid_token"),
        ({"sub": None}, "invalid_token"),
        ({"entitlements": "integrations"}, "invalid_token"),
    ],
)
async def test_bad_claims_are_refused_with_401(
    whoami: httpx.AsyncClient, make_token: TokenFactory, claims: dict[str, object], code: str
) -> None:
    """S2: expired, future iat, missing claims."""
    response = await _get(whoami, make_token(**claims))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_missing_org_is_refused(whoami: httpx.AsyncClient, make_token: TokenFactory) -> None:
    """S2: a token that names no org."""
    response = await _get(whoami, make_token(None))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_wrong_signature_is_refused(
    whoami: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S2: signed with another secret."""
    response = await _get(whoami, make_token(secret="another-secret-that-is-long-enough-123"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_alg_none_is_refused(whoami: httpx.AsyncClient) -> None:
    """S2: an unsigned token must never be trusted, whatever it claims."""
    now = int(time.time())
    claims = {
        "sub": "u",
        "org_id": "org_1",
        "iat": now,
        "exp": now + 60,
        "entitlements": ["integrations"],
    }
    header = _b64({"alg": "none", "typ": "JWT"})
    unsigned = f"{header}.{_b64(claims)}."
    response = await _get(whoami, unsigned)
    assert response.status_code == 401


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_hs256_token_with_a_different_algorithm_is_refused(
    whoami: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await _get(whoami, make_token(algorithm="HS512"))
    assert response.status_code == 401


@pytest.mark.parametrize("value", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"])
async def test_missing_or_malformed_authorization(whoami: httpx.AsyncClient, value: str) -> None:
    headers = {"Authorization": value} if value else {}
    response = await whoami.get("/v1/test/whoami", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] in {"unauthenticated", "invalid_token"}
    assert body["status"] == 401


async def test_plan_without_integrations_gets_403(
    whoami: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S2: missing entitlement → 403 plan_required."""
    response = await _get(whoami, make_token(entitlements=["invoicing"]))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "plan_required"
    assert "integrations" in body["detail"]
