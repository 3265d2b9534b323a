"""RS256 platform tokens verified against a JWKS URL (the option beside the shared secret)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
from arq.connections import ArqRedis
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.security import OrgDep
from qbsync.settings import DEV_JWT_SECRET, Settings
from qbsync.simulator.testing import serving

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks_app() -> Starlette:
    public: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    public |= {"kid": "platform-1", "use": "sig", "alg": "RS256"}

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse({"keys": [public]})

    return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "user_9",
        "org_id": "org_rs",
        "iat": now,
        "exp": now + 300,
        "entitlements": ["integrations"],
    }


async def test_rs256_tokens_are_checked_against_the_jwks(
    settings: Settings, db: Database, redis: ArqRedis
) -> None:
    async with serving(_jwks_app()) as base_url:
        configured = settings.model_copy(
            update={
                "auth": settings.auth.model_copy(
                    update={"jwks_url": f"{base_url}/.well-known/jwks.json"}
                )
            }
        )
        app: FastAPI = create_app(configured, database=db, redis=redis)

        @app.get("/v1/test/whoami")
        async def who(org: OrgDep) -> dict[str, str]:
            return {"org_id": org.org_id}

        good = jwt.encode(_claims(), KEY, algorithm="RS256", headers={"kid": "platform-1"})
        forged = jwt.encode(_claims(), OTHER_KEY, algorithm="RS256", headers={"kid": "platform-1"})
        confused = jwt.encode(_claims(), DEV_JWT_SECRET, algorithm="HS256")
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answers = [
                    await client.get(
                        "/v1/test/whoami", headers={"Authorization": f"Bearer {token}"}
                    )
                    for token in (good, forged, confused)
                ]
    assert answers[0].status_code == 200
    assert answers[0].json() == {"org_id": "org_rs"}
    assert answers[1].status_code == 401, "signed by a key the platform does not publish"
    assert answers[2].status_code == 401, "an HS256 token is refused in JWKS mode"
