"""Authorization codes, access and refresh tokens: lifetimes, rotation with grace, revocation."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count

from qbsync.simulator.clock import SimClock
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.errors import authorization_failed
from qbsync.simulator.jsonio import JsonObject

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class InvalidGrantError(Exception):
    """A code or refresh token that is unknown, used, expired, long superseded or revoked."""


class AuthenticationError(Exception):
    """An access token the API refuses with 401; the message is the fault's detail."""


@dataclass
class Grant:
    """One app connection to one company, from consent until revocation."""

    grant_id: int
    realm_id: str
    scope: str
    hard_expires_at: float
    revoked: bool = False
    latest_refresh_token: str = ""


@dataclass
class RefreshToken:
    value: str
    grant: Grant
    expires_at: float
    superseded_at: float | None = None


@dataclass
class AccessToken:
    value: str
    grant: Grant
    expires_at: float


@dataclass
class AuthorizationCode:
    value: str
    redirect_uri: str
    realm_id: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class TokenSet:
    realm_id: str
    scope: str
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    hard_expires_in: int

    def body(self, *, include_hard_expiry: bool) -> JsonObject:
        body: JsonObject = {
            "token_type": "bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "x_refresh_token_expires_in": self.refresh_expires_in,
        }
        if include_hard_expiry:
            body["x_refresh_token_hard_expires_in"] = self.hard_expires_in
        return body


@dataclass
class TokenStore:
    config: SimulatorConfig
    clock: SimClock
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    _grant_ids: count[int] = field(default_factory=lambda: count(1))

    def issue_code(self, realm_id: str, redirect_uri: str, scope: str) -> str:
        value = "AB11" + secrets.token_urlsafe(36)
        expires_at = self.clock.timestamp() + self.config.authorization_code_ttl
        self.codes[value] = AuthorizationCode(value, redirect_uri, realm_id, scope, expires_at)
        return value

    def exchange_code(self, value: str, redirect_uri: str) -> TokenSet:
        code = self.codes.get(value)
        now = self.clock.timestamp()
        if code is None or code.used or now >= code.expires_at or code.redirect_uri != redirect_uri:
            raise InvalidGrantError
        code.used = True
        return self.connect(code.realm_id, code.scope)

    def connect(self, realm_id: str, scope: str = ACCOUNTING_SCOPE) -> TokenSet:
        """A new grant, as after the user approves consent."""
        now = self.clock.timestamp()
        grant = Grant(
            next(self._grant_ids), realm_id, scope, now + self.config.refresh_token_hard_ttl
        )
        self.grants.append(grant)
        return self._issue(grant, now)

    def refresh(self, value: str) -> TokenSet:
        now = self.clock.timestamp()
        token = self.refresh_tokens.get(value)
        if token is None or not self._usable(token, now):
            raise InvalidGrantError
        grant = token.grant
        # Every refresh rotates; the tokens it replaces keep working for the grace period.
        for replaced in (token, self.refresh_tokens[grant.latest_refresh_token]):
            if replaced.superseded_at is None:
                replaced.superseded_at = now
        return self._issue(grant, now)

    def revoke(self, value: str) -> bool:
        """Revoking any token disconnects the app from the company, every grant of it included.

        Intuit: "Revoking the refresh token disconnects the app from the company." The
        simulator serves one app, so every grant for the token's company dies.
        """
        token = self.refresh_tokens.get(value) or self.access_tokens.get(value)
        if token is None:
            return False
        self.revoke_company(token.grant.realm_id)
        return True

    def authenticate(self, authorization: str | None, realm_id: str) -> None:
        if self.bearer_grant(authorization).realm_id != realm_id:
            raise authorization_failed()

    def bearer_grant(self, authorization: str | None) -> Grant:
        """The live grant behind an `Authorization: Bearer` access token."""
        value = (authorization or "").removeprefix("Bearer ").removeprefix("bearer ").strip()
        token = self.access_tokens.get(value)
        if token is None:
            raise AuthenticationError("Token invalid")
        if token.grant.revoked:
            raise AuthenticationError(f"Token revoked: {value[:12]}...")
        if self.clock.timestamp() >= token.expires_at:
            raise AuthenticationError(f"Token expired: {value[:12]}...")
        return token.grant

    def is_connected(self, realm_id: str) -> bool:
        return any(not grant.revoked and grant.realm_id == realm_id for grant in self.grants)

    def expire_access_tokens(self, realm_id: str | None = None) -> int:
        return self._expire(self.access_tokens.values(), realm_id)

    def expire_refresh_tokens(self, realm_id: str | None = None) -> int:
        return self._expire(self.refresh_tokens.values(), realm_id)

    def revoke_company(self, realm_id: str) -> int:
        """The user disconnected the app inside QuickBooks."""
        revoked = [g for g in self.grants if g.realm_id == realm_id and not g.revoked]
        for grant in revoked:
            grant.revoked = True
        return len(revoked)

    def snapshot(self) -> JsonObject:
        """Grants and live tokens, for the state file; tokens refer to grants by id."""
        return {
            "next_grant_id": max((grant.grant_id for grant in self.grants), default=0) + 1,
            "grants": [dataclasses.asdict(grant) for grant in self.grants],
            "codes": [dataclasses.asdict(code) for code in self.codes.values()],
            "access_tokens": [
                [token.value, token.grant.grant_id, token.expires_at]
                for token in self.access_tokens.values()
            ],
            "refresh_tokens": [
                [token.value, token.grant.grant_id, token.expires_at, token.superseded_at]
                for token in self.refresh_tokens.values()
            ],
        }

    def restore(self, data: JsonObject) -> None:
        grants = {raw["grant_id"]: Grant(**raw) for raw in data["grants"]}
        self.grants = list(grants.values())
        self._grant_ids = count(data["next_grant_id"])
        self.codes = {raw["value"]: AuthorizationCode(**raw) for raw in data["codes"]}
        self.access_tokens = {
            value: AccessToken(value, grants[grant_id], expires_at)
            for value, grant_id, expires_at in data["access_tokens"]
        }
        self.refresh_tokens = {
            value: RefreshToken(value, grants[grant_id], expires_at, superseded_at)
            for value, grant_id, expires_at, superseded_at in data["refresh_tokens"]
        }

    def _expire(self, tokens: Iterable[AccessToken | RefreshToken], realm_id: str | None) -> int:
        now = self.clock.timestamp()
        expired = 0
        for token in tokens:
            if (realm_id is None or token.grant.realm_id == realm_id) and token.expires_at > now:
                token.expires_at = now
                expired += 1
        return expired

    def _usable(self, token: RefreshToken, now: float) -> bool:
        grant = token.grant
        in_grace = (
            token.superseded_at is None or now < token.superseded_at + self.config.refresh_grace
        )
        return (
            not grant.revoked
            and now < token.expires_at
            and now < grant.hard_expires_at
            and in_grace
        )

    def _issue(self, grant: Grant, now: float) -> TokenSet:
        config = self.config
        access = AccessToken(
            "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.." + secrets.token_urlsafe(48),
            grant,
            now + config.access_token_ttl,
        )
        refresh = RefreshToken(
            "AB11" + secrets.token_urlsafe(36),
            grant,
            min(now + config.refresh_token_ttl, grant.hard_expires_at),
        )
        self.access_tokens[access.value] = access
        self.refresh_tokens[refresh.value] = refresh
        grant.latest_refresh_token = refresh.value
        return TokenSet(
            grant.realm_id,
            grant.scope,
            access.value,
            refresh.value,
            config.access_token_ttl,
            int(refresh.expires_at - now),
            int(grant.hard_expires_at - now),
        )
