"""Intuit OAuth 2.0: authorization URL, code exchange, refresh and revoke.

Built from authlib's primitives over the shared httpx client (one connection pool, and respx or
the simulator can stand in for Intuit). Storing, locking and single-flighting refreshes is the
connection layer's job; this module only speaks the protocol and types its failures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from pydantic import SecretStr

from qbsync.qbo import codec
from qbsync.qbo.config import ACCOUNTING_SCOPE, QboConfig
from qbsync.qbo.errors import (
    InvalidClientError,
    InvalidGrantError,
    TokenEndpointUnavailableError,
    TokenError,
    TokenRequestError,
)
from qbsync.qbo.faults import INTUIT_TID_HEADER

log = structlog.get_logger(__name__)

HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


@dataclass(frozen=True)
class TokenSet:
    """One token response. Always persist `refresh_token`: Intuit may rotate it on any refresh."""

    access_token: SecretStr
    refresh_token: SecretStr
    access_expires_at: datetime
    # Rolling (~100 days): pushed back by every refresh.
    refresh_expires_at: datetime | None
    # Absolute (5 years from consent); only when Intuit honours the hard-expiry header.
    refresh_hard_expires_at: datetime | None
    intuit_tid: str | None


class IntuitOAuth:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: QboConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._config = config
        self._clock = clock
        self._client_auth = ClientAuth(
            config.client_id, config.client_secret.get_secret_value(), "client_secret_basic"
        )

    def authorization_url(self, state: str, *, scopes: Sequence[str] = (ACCOUNTING_SCOPE,)) -> str:
        url: str = prepare_grant_uri(
            self._config.endpoints.authorize_url,
            client_id=self._config.client_id,
            response_type="code",
            redirect_uri=self._config.redirect_uri,
            scope=list(scopes),
            state=state,
        )
        return url

    async def exchange_code(self, code: str) -> TokenSet:
        body: str = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self._config.redirect_uri
        )
        return await self._token_request(body, secrets=(code,))

    async def refresh(self, refresh_token: str) -> TokenSet:
        body: str = prepare_token_request("refresh_token", refresh_token=refresh_token)
        return await self._token_request(body, secrets=(refresh_token,))

    async def revoke(self, token: str) -> None:
        """Revoking the refresh token disconnects the app from the company."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        url = self._config.endpoints.revoke_url
        response = await self._post(url, codec.dumps({"token": token}), headers, (token,))
        if not response.is_success:
            raise self._error(response, (token,))

    async def _token_request(self, body: str, *, secrets: Sequence[str]) -> TokenSet:
        # Expiries count from before the request left, so they err early, never late.
        issued_at = self._clock()
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            HARD_EXPIRY_HEADER: "true",
        }
        response = await self._post(
            self._config.endpoints.token_url, body.encode(), headers, secrets
        )
        if not response.is_success:
            raise self._error(response, secrets)
        tid = response.headers.get(INTUIT_TID_HEADER)
        try:
            payload = codec.loads(response.content)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        access_token = _token(payload.get("access_token"))
        refresh_token = _token(payload.get("refresh_token"))
        expires_in = _seconds(payload.get("expires_in"))
        if access_token is None or refresh_token is None or expires_in is None:
            # Never hand back "None" or "" to be stored over the real refresh token. Intuit may
            # have rotated it and lost the answer; the old one stays valid for 24 h, so trying
            # again later is safe.
            raise TokenEndpointUnavailableError(
                "the token endpoint answered without a usable token", intuit_tid=tid
            )
        return TokenSet(
            access_token=SecretStr(access_token),
            refresh_token=SecretStr(refresh_token),
            access_expires_at=issued_at + timedelta(seconds=expires_in),
            refresh_expires_at=_after(issued_at, payload.get("x_refresh_token_expires_in")),
            refresh_hard_expires_at=_after(
                issued_at, payload.get("x_refresh_token_hard_expires_in")
            ),
            intuit_tid=tid,
        )

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], secrets: Sequence[str]
    ) -> httpx.Response:
        url, headers, body = self._client_auth.prepare("POST", url, headers, body)
        try:
            return await self._http.post(
                url, content=body, headers=headers, timeout=self._config.timeout_seconds
            )
        except httpx.TransportError as error:
            log.warning("intuit_oauth_unreachable", error_type=type(error).__name__)
            raise TokenEndpointUnavailableError(
                f"the Intuit OAuth endpoint could not be reached ({type(error).__name__})",
                secrets=secrets,
            ) from error

    def _error(self, response: httpx.Response, secrets: Sequence[str]) -> TokenError:
        status = response.status_code
        tid = response.headers.get(INTUIT_TID_HEADER)
        error_code, description = _oauth_error(response.content)
        message = f"the Intuit OAuth endpoint answered HTTP {status}"
        if error_code:
            message += f": {error_code}"
        log.warning("intuit_oauth_refused", status=status, oauth_error=error_code, intuit_tid=tid)
        error_class: type[TokenError]
        if status >= 500 or status in (408, 429):
            error_class = TokenEndpointUnavailableError
        elif error_code == "invalid_grant":
            error_class = InvalidGrantError
        elif error_code == "invalid_client" or (status == 401 and error_code is None):
            error_class = InvalidClientError
        else:
            error_class = TokenRequestError
        all_secrets = (*secrets, self._config.client_secret.get_secret_value())
        return error_class(
            message,
            code=error_code,
            detail=description,
            status_code=status,
            intuit_tid=tid,
            secrets=all_secrets,
        )


def _oauth_error(content: bytes) -> tuple[str | None, str | None]:
    try:
        payload: Any = codec.loads(content)
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    error, description = payload.get("error"), payload.get("error_description")
    return (
        str(error) if error is not None else None,
        str(description) if description is not None else None,
    )


# Longer than any lifetime Intuit gives (the hard cap is 5 years); beyond it a value is garbage.
_MAX_LIFETIME_SECONDS = 20 * 366 * 24 * 3600


def _token(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _seconds(value: Any) -> int | None:
    """A lifetime in whole seconds, or None when the value is not a sane one."""
    if isinstance(value, bool):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if 0 < seconds <= _MAX_LIFETIME_SECONDS else None


def _after(start: datetime, value: Any) -> datetime | None:
    seconds = _seconds(value)
    return None if seconds is None else start + timedelta(seconds=seconds)
