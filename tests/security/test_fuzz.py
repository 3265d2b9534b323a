"""S7: schemathesis over the committed openapi/openapi.json with every check, against qbsync on
real Postgres and Redis, QuickBooks played by the simulator, as an org that has data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic_core.core_schema import ErrorType
from schemathesis import Case
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.connections.conftest import SETTINGS_URL, US_REALM
from tests.security.stack import (
    LiveStack,
    connect_org,
    live_stack,
    org_token,
    post_events,
    sign_event,
)

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
schema = schemathesis.openapi.from_path(CONTRACT)
EVENTS = "/v1/events"
WEBHOOKS = "/v1/quickbooks/webhooks"
CALLBACK = "/v1/quickbooks/callback"


async def _org_with_data(stack: LiveStack, client: httpx.AsyncClient) -> None:
    """Org A connected, its settings saved, a client mapped and records in the sync log."""
    await connect_org(stack, client, stack.org_id, US_REALM)
    headers = {"Authorization": f"Bearer {org_token(stack.org_id)}"}
    saved = await client.put(
        "/v1/quickbooks/settings",
        json={"customer_sync_mode": "match_only", "reconcile_interval_minutes": 30},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    customers = await client.get("/v1/quickbooks/customers", headers=headers)
    assert customers.status_code == 200, customers.text
    customer = customers.json()["items"][0]["id"]
    mapped = await client.put(
        "/v1/quickbooks/mappings/clients/cl_1", json={"qbo_id": customer}, headers=headers
    )
    assert mapped.status_code == 200, mapped.text
    await post_events(stack, client, sample_events(stack.org_id))


def sample_events(org_id: str) -> list[dict[str, Any]]:
    client = {"id": "cl_1", "name": "Acme Ltd", "email": "ap@acme.test"}
    invoice = {
        "id": "inv_1",
        "number": "INV-0042",
        "status": "sent",
        "currency": "USD",
        "issue_date": "2026-11-20",
        "amounts_are": "tax_exclusive",
        "client": client,
        "lines": [{"description": "Consulting", "quantity": "2", "unit_price": "150.00"}],
        "subtotal": "300.00",
        "tax_total": "0.00",
        "total": "300.00",
    }
    return [
        {
            "id": f"evt_{kind}",
            "type": f"{kind}.upserted",
            "organization_id": org_id,
            "occurred_at": "2026-11-20T10:00:00Z",
            "data": data,
        }
        for kind, data in (("client", client), ("invoice", invoice))
    ]


@pytest.fixture(scope="module")
def stack(database_url: str, redis_url: str, key_prefix: str) -> Iterator[LiveStack]:
    with live_stack(database_url, redis_url, key_prefix, _org_with_data) as running:
        yield running


# Pydantic's own error types: each is a constraint a JSON Schema can state.
SCHEMA_ERRORS = frozenset(get_args(ErrorType))


@schemathesis.check
def schema_valid_data_is_accepted(ctx: Any, response: Any, case: Case[Any]) -> bool | None:
    """positive_data_acceptance, except for a refusal by rules of qbsync's own.

    A schema cannot say that a QuickBooks id exists in the company, that a cursor is one qbsync
    handed out or that quantity times price stays in range; those refusals carry a code of their
    own. A schema-valid request refused with one of pydantic's built-in error types means the
    contract promises more than the code accepts: a failure.
    """
    if response.status_code == 422:
        problem = json.loads(response.content or b"{}")
        own_rule = problem.get("code") != "validation_error" or all(
            error.get("code") not in SCHEMA_ERRORS for error in problem.get("errors", [{}])
        )
        if own_rule:
            return None
    return positive_data_acceptance(ctx, response, case)


def _raw(case: Case[Any]) -> bytes:
    if case.body is None or type(case.body).__name__ == "NotSet":
        return b""
    if isinstance(case.body, bytes):
        return case.body
    return json.dumps(case.body).encode()


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _intuit_signature(stack: LiveStack, raw: bytes) -> dict[str, str]:
    token = stack.settings.intuit.webhook_verifier_token.get_secret_value()
    digest = hmac.new(token.encode(), raw, hashlib.sha256).digest()
    return {"intuit-signature": base64.b64encode(digest).decode()}


def _signature(stack: LiveStack, path: str, raw: bytes) -> dict[str, str]:
    """A hook that signs the generated body, so the fuzzer reaches the body's validation."""
    if path == EVENTS:
        return sign_event(stack.settings.platform.webhook_secret.get_secret_value(), raw)
    return _intuit_signature(stack, raw)


def _check_unsigned(
    stack: LiveStack, case: Case[Any], raw: bytes, session: requests.Session
) -> None:
    answer = case.call(base_url=stack.base_url, session=session, data=raw)
    case.validate_response(answer, excluded_checks=[positive_data_acceptance])
    if case.method.upper() != "POST":
        return  # another method: the 405 the checks above judged
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == ["application/problem+json"]
    assert answer.json()["code"] == "invalid_signature"


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as opened:
        yield opened


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_contract(
    case: Case[Any], stack: LiveStack, session: requests.Session
) -> None:
    """S7: every generated request, valid or not, gets an answer the contract documents: no 5xx,
    no schema violation. Signed routes are fuzzed unsigned (the documented 401) and signed."""
    checks: dict[str, Any] = {
        "excluded_checks": [positive_data_acceptance],
        "additional_checks": [schema_valid_data_is_accepted],
    }
    if case.path in (EVENTS, WEBHOOKS):
        raw = _raw(case)
        _check_unsigned(stack, case, raw, session)
        if case.path == EVENTS and not _is_text(raw):
            return  # Standard Webhooks signs text: bytes that are not UTF-8 stop at the 401
        headers = _signature(stack, case.path, raw)
        case.call_and_validate(
            base_url=stack.base_url, session=session, headers=headers, data=raw, **checks
        )
        return
    headers = {"Authorization": f"Bearer {org_token(stack.org_id)}"}
    browser = case.path == CALLBACK and case.method.upper() == "GET"
    if browser:
        # Its refusal of invalid data is a redirect with `quickbooks=error`, checked below.
        checks["excluded_checks"] = [positive_data_acceptance, negative_data_rejection]
    answer = case.call_and_validate(
        base_url=stack.base_url, session=session, headers=headers, allow_redirects=False, **checks
    )
    if browser:
        # A browser waits on this answer: always a redirect to the settings page, never JSON.
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"][0]
        assert location.startswith(SETTINGS_URL)
        if case.meta is not None and not case.meta.generation.mode.is_positive:
            assert "quickbooks=error" in location, location
