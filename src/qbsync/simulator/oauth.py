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

from qbsync.simulator import identity
from qbsync.simulator.jsonio import JsonObject, json_response
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.tokens import ACCOUNTING_SCOPE, AuthenticationError, InvalidGrantError

HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"
PAYMENT_SCOPE = "com.intuit.quickbooks.payment"
SUPPORTED_SCOPES = frozenset({ACCOUNTING_SCOPE, PAYMENT_SCOPE}) | identity.OPENID_SCOPES


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

    @property
    def scope_problem(self) -> str | None:
        """Why Intuit would refuse the requested scopes, or None when it grants them."""
        scopes = self.scope.split()
        unknown = sorted(set(scopes) - SUPPORTED_SCOPES)
        if unknown:
            return f"Unsupported scope: {' '.join(unknown)}"
        if ACCOUNTING_SCOPE not in scopes:
            # Sign-in-only apps (openid without accounting) are outside the simulator.
            return f"The simulator only grants connections that include {ACCOUNTING_SCOPE}"
        return None

    def decide(self, sim: SimulatorState, realm_id: str | None, *, approve: bool) -> str:
        """Where the browser goes next: the app's callback with a code or an error."""
        problem = self.scope_problem
        if problem is not None:
            return self._callback(
                {"error": "invalid_scope", "error_description": problem, "state": self.state}
            )
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
        if consent.scope_problem is not None:
            return RedirectResponse(consent.decide(sim, None, approve=False), 302)
        return HTMLResponse(consent_page(sim, consent))

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
        body = tokens.body(include_hard_expiry=hard)
        # Intuit sends an id_token with the code exchange of an OpenID consent.
        if grant_type == "authorization_code" and "openid" in tokens.scope.split():
            body["id_token"] = identity.id_token(
                sim.signing_key,
                issuer=_issuer(request),
                client_id=sim.config.client_id,
                realm_id=tokens.realm_id,
                now=sim.clock.timestamp(),
            )
        return json_response(body, headers=_no_store())

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

    # Intuit's own clients ask for the underscore spellings with a trailing slash; its docs
    # site also serves the hyphenated one.
    @router.get("/.well-known/openid_configuration")
    @router.get("/.well-known/openid_configuration/")
    @router.get("/.well-known/openid_sandbox_configuration")
    @router.get("/.well-known/openid_sandbox_configuration/")
    @router.get("/.well-known/openid-sandbox-configuration")
    async def discovery(request: Request) -> Response:
        return json_response(_discovery(_base(request)))

    @router.get("/op/v1/jwks")
    async def jwks() -> Response:
        return json_response(sim.signing_key.jwks())

    @router.get("/v1/openid_connect/userinfo")
    async def userinfo(request: Request) -> Response:
        try:
            grant = sim.tokens.bearer_grant(request.headers.get("authorization"))
        except AuthenticationError:
            return _oauth_error("invalid_token", 401)
        scopes = frozenset(grant.scope.split())
        if "openid" not in scopes:
            return _oauth_error("insufficient_scope", 403, "The token was not granted openid")
        return json_response(identity.user_info(grant.realm_id, scopes))

    return router


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _issuer(request: Request) -> str:
    return f"{_base(request)}/op/v1"


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


_SCOPE_DESCRIPTIONS = {
    ACCOUNTING_SCOPE: "Read and change your accounting data: customers, vendors, items, "
    "invoices, payments, bills and expenses",
    "com.intuit.quickbooks.payment": "Process payments through QuickBooks Payments",
    "openid": "Know who you are (your Intuit user id)",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "address": "See your address",
}

_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f4f5f8;margin:0;color:#393a3d}"
    "main{max-width:32rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;"
    "box-shadow:0 1px 4px rgba(0,0,0,.15)}"
    "h1{font-size:1.4rem}fieldset{border:1px solid #d4d7dc;border-radius:6px;margin:1rem 0}"
    "label{display:block;padding:.3rem 0}.actions{display:flex;gap:1rem;justify-content:flex-end}"
    "button{font-size:1rem;padding:.6rem 1.4rem;border-radius:4px;border:1px solid #2ca01c}"
    ".connect{background:#2ca01c;color:#fff}.cancel{background:#fff;color:#2ca01c}"
    ".note{font-size:.85rem;color:#6b6c72}"
)


def consent_page(sim: SimulatorState, consent: ConsentRequest) -> str:
    """Intuit's consent screen: who asks, for which company, for what, Connect or Cancel."""
    app = escape(sim.config.app_name)
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(value)}">'
        for name, value in (
            ("client_id", consent.client_id),
            ("redirect_uri", consent.redirect_uri),
            ("scope", consent.scope),
            ("state", consent.state),
            ("response_type", "code"),
        )
    )
    choices = "".join(
        f'<label><input type="radio" name="realm_id" value="{escape(realm_id)}"'
        f"{' checked' if index == 0 else ''}> {escape(company.spec.name)} "
        f"({escape(company.spec.country)})</label>"
        for index, (realm_id, company) in enumerate(sim.companies.items())
    )
    access = "".join(
        f"<li>{escape(_SCOPE_DESCRIPTIONS.get(scope, scope))}</li>"
        for scope in consent.scope.split()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Connect {app} to QuickBooks</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><main><h1><strong>{app}</strong> wants to connect to your QuickBooks "
        "company</h1>"
        f'<form method="post" action="/connect/oauth2/decision">{hidden}'
        f"<fieldset><legend>Choose a company</legend>{choices}</fieldset>"
        f"<p>If you connect, {app} will be able to:</p><ul>{access}</ul>"
        f'<p class="note">You can disconnect {app} at any time from your QuickBooks '
        "apps page. This is the QuickBooks Online simulator: no real company is involved.</p>"
        '<div class="actions">'
        '<button class="cancel" type="submit" name="decision" value="deny">Cancel</button>'
        '<button class="connect" type="submit" name="decision" value="approve">Connect</button>'
        "</div></form></main></body></html>"
    )


def _discovery(base: str) -> JsonObject:
    """Intuit's discovery document, every endpoint on the simulator's own host."""
    return {
        "issuer": f"{base}/op/v1",
        "authorization_endpoint": f"{base}/connect/oauth2",
        "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
        "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
        "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
        "jwks_uri": f"{base}/op/v1/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": sorted(SUPPORTED_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }
