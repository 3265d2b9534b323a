"""Intuit's OAuth 2.0 endpoints: consent page, token (code and refresh), revoke, discovery."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qbsync.simulator.jsonio import JsonObject, json_response
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.tokens import ACCOUNTING_SCOPE, InvalidGrantError

HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"


class ConsentError(Exception):
    """A consent request Intuit shows an error page for instead of redirecting."""


@dataclass(frozen=True)
class ConsentRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str

    @classmethod
    def from_params(cls, sim: SimulatorState, params: dict[str, str]) -> ConsentRequest:
        consent = cls(
            params.get("client_id", ""),
            params.get("redirect_uri", ""),
            params.get("scope", ""),
            params.get("state", ""),
        )
        config = sim.config
        if not hmac.compare_digest(consent.client_id, config.client_id):
            raise ConsentError("Unknown client_id.")
        if params.get("response_type", "code") != "code":
            raise ConsentError("response_type must be code.")
        if not consent.redirect_uri or (
            config.redirect_uris and consent.redirect_uri not in config.redirect_uris
        ):
            raise ConsentError("The redirect_uri is not registered for this app.")
        return consent

    def decide(self, sim: SimulatorState, realm_id: str | None, *, approve: bool) -> str:
        """Where the browser goes next: the app's callback with a code or an error."""
        if ACCOUNTING_SCOPE not in self.scope.split():
            return self._callback({"error": "invalid_scope", "state": self.state})
        if not approve:
            return self._callback({"error": "access_denied", "state": self.state})
        if realm_id not in sim.companies:
            raise ConsentError("Pick one of the companies.")
        code = sim.tokens.issue_code(realm_id, self.redirect_uri, self.scope)
        return self._callback({"code": code, "state": self.state, "realmId": realm_id})

    def _callback(self, params: dict[str, str]) -> str:
        separator = "&" if "?" in self.redirect_uri else "?"
        return f"{self.redirect_uri}{separator}{urlencode(params)}"


def build_router(sim: SimulatorState) -> APIRouter:
    router = APIRouter()

    @router.get("/connect/oauth2")
    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            consent = ConsentRequest.from_params(sim, params)
        except ConsentError as exc:
            return _error_page(str(exc))
        if ACCOUNTING_SCOPE not in consent.scope.split():
            return RedirectResponse(consent.decide(sim, None, approve=False), 302)
        return HTMLResponse(_consent_page(sim, params))

    @router.post("/connect/oauth2/decision")
    async def decision(request: Request) -> Response:
        form = _form(await request.body())
        try:
            consent = ConsentRequest.from_params(sim, form)
            location = consent.decide(
                sim, form.get("realm_id"), approve=form.get("decision") == "approve"
            )
        except ConsentError as exc:
            return _error_page(str(exc))
        return RedirectResponse(location, 302)

    @router.post("/oauth2/v1/tokens/bearer")
    async def token(request: Request) -> Response:
        form = _form(await request.body())
        grant_type = form.get("grant_type", "")
        sim.stats.token_calls[grant_type or "missing"] += 1
        if not _client_authenticated(sim, request.headers, form):
            return _oauth_error("invalid_client", 401)
        try:
            if grant_type == "authorization_code":
                tokens = sim.tokens.exchange_code(
                    form.get("code", ""), form.get("redirect_uri", "")
                )
            elif grant_type == "refresh_token":
                tokens = sim.tokens.refresh(form.get("refresh_token", ""))
            else:
                return _oauth_error("unsupported_grant_type", 400)
        except InvalidGrantError:
            return _oauth_error("invalid_grant", 400, "Token invalid")
        hard = request.headers.get(HARD_EXPIRY_HEADER, "").lower() == "true"
        return json_response(tokens.body(include_hard_expiry=hard), headers=_no_store())

    @router.post("/v2/oauth2/tokens/revoke")
    async def revoke(request: Request) -> Response:
        sim.stats.revoke_calls += 1
        if not _client_authenticated(sim, request.headers, {}):
            return _oauth_error("invalid_client", 401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        value = body.get("token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            return _oauth_error("invalid_request", 400, "token is required")
        sim.tokens.revoke(value)
        return Response(status_code=200)

    @router.get("/.well-known/openid_configuration")
    @router.get("/.well-known/openid_sandbox_configuration")
    async def discovery(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return json_response(_discovery(base))

    return router


def _form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode(), keep_blank_values=True))


def _client_authenticated(sim: SimulatorState, headers: Headers, form: dict[str, str]) -> bool:
    """HTTP Basic, or client_secret_post as the discovery document also allows."""
    header = headers.get("authorization", "")
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
    config = sim.config
    return hmac.compare_digest(client_id, config.client_id) and hmac.compare_digest(
        secret, config.client_secret
    )


def _oauth_error(error: str, status_code: int, description: str | None = None) -> Response:
    body: JsonObject = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status_code, _no_store())


def _no_store() -> dict[str, str]:
    return {"cache-control": "no-store", "pragma": "no-cache"}


def _error_page(message: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Authorization error</title><p>{escape(message)}</p>", 400
    )


def _consent_page(sim: SimulatorState, params: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(key)}" value="{escape(params.get(key, ""))}">'
        for key in ("client_id", "redirect_uri", "scope", "state", "response_type")
    )
    choices = "".join(
        f'<label><input type="radio" name="realm_id" value="{escape(realm_id)}"'
        f"{' checked' if index == 0 else ''}> {escape(company.spec.name)} "
        f"({escape(company.spec.country)})</label><br>"
        for index, (realm_id, company) in enumerate(sim.companies.items())
    )
    return (
        "<!doctype html><html><head><title>Connect to QuickBooks (simulator)</title></head>"
        "<body><h1>Connect your QuickBooks company</h1>"
        f'<form method="post" action="/connect/oauth2/decision">{hidden}{choices}'
        '<button type="submit" name="decision" value="approve">Connect</button> '
        '<button type="submit" name="decision" value="deny">Cancel</button>'
        "</form></body></html>"
    )


def _discovery(base: str) -> JsonObject:
    return {
        "issuer": f"{base}/op/v1",
        "authorization_endpoint": f"{base}/connect/oauth2",
        "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
        "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "scopes_supported": [ACCOUNTING_SCOPE, "openid", "profile", "email", "phone", "address"],
        "claims_supported": ["realmid"],
    }
