"""The platform's JWT → the org a request acts for (S2). The org comes from the token only."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qbsync.errors import ForbiddenError, UnauthorizedError
from qbsync.settings import AuthSettings

REQUIRED_CLAIMS = ["exp", "iat", "sub"]


@dataclass(frozen=True)
class OrgContext:
    org_id: str
    user_id: str
    entitlements: frozenset[str]


class TokenVerifier:
    """HS256 with the shared secret, or RS256 against the platform's JWKS when a URL is set."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=3600)
            if settings.jwks_url
            else None
        )

    async def verify(self, token: str) -> OrgContext:
        claims = await self._decode(token)
        org_id = claims.get("org_id")
        if not isinstance(org_id, str) or not org_id.strip() or len(org_id) > 128:
            raise UnauthorizedError("The token names no organisation.", code="invalid_token")
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id or len(user_id) > 128:
            raise UnauthorizedError("The token names no user.", code="invalid_token")
        entitlements = claims.get("entitlements", [])
        if not isinstance(entitlements, list) or not all(
            isinstance(item, str) for item in entitlements
        ):
            raise UnauthorizedError("The token's entitlements are malformed.", code="invalid_token")
        context = OrgContext(org_id, user_id, frozenset(entitlements))
        if self._settings.required_entitlement not in context.entitlements:
            raise ForbiddenError(
                "Your plan does not include integrations. Upgrade to a plan with integrations "
                "to connect QuickBooks.",
                code="plan_required",
            )
        return context

    async def _decode(self, token: str) -> dict[str, Any]:
        settings = self._settings
        try:
            if self._jwks is not None:
                jwks = self._jwks
                signing_key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
                key: Any = signing_key.key
                algorithms = ["RS256"]
            else:
                key = settings.jwt_secret.get_secret_value()
                algorithms = ["HS256"]
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_aud": settings.audience is not None,
                    "verify_iss": settings.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise UnauthorizedError("The token has expired.", code="token_expired") from error
        except jwt.ImmatureSignatureError as error:
            raise UnauthorizedError(
                "The token is not valid yet.", code="token_not_yet_valid"
            ) from error
        except (jwt.PyJWTError, ValueError) as error:
            raise UnauthorizedError("The token is not valid.", code="invalid_token") from error
        return claims


bearer_scheme = HTTPBearer(auto_error=False, description="The platform's JWT for one org.")


async def current_org(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> OrgContext:
    if credentials is None or not credentials.credentials.strip():
        raise UnauthorizedError(
            "Send the platform's token as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(credentials.credentials.strip())


OrgDep = Annotated[OrgContext, Depends(current_org)]


def mint_dev_token(
    settings: AuthSettings,
    *,
    org_id: str,
    user_id: str,
    minutes: int = 60,
) -> str:
    """A platform JWT signed with the shared HS256 secret, for dev and tests only.

    In production the platform mints tokens; qbsync only verifies them.
    """
    if settings.jwks_url is not None:
        raise ValueError("tokens are verified against a JWKS URL: only the platform can mint them")
    now = int(time.time())
    claims = {
        "sub": user_id,
        "org_id": org_id,
        "iat": now,
        "exp": now + minutes * 60,
        "entitlements": [settings.required_entitlement],
    }
    if settings.audience is not None:
        claims["aud"] = settings.audience
    if settings.issuer is not None:
        claims["iss"] = settings.issuer
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
