"""S8: every input is bounded. The contract states a bound on every string and list a request
carries, and the app refuses one past it, and an oversized body, with a problem naming the field
before any work is done: no row written, no job queued, no call to QuickBooks."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import func, select

from qbsync.db import Database
from qbsync.models import EntityMapping, PlatformEvent, QboWebhookEvent, SyncRecord, SyncSettings
from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import US_REALM, Consent
from tests.security.stack import sign_event
from tests.sync.pulling import cloud_event, post_webhook

CONTRACT = json.loads(
    (Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text()
)
COMPONENTS = CONTRACT["components"]["schemas"]
CALLBACK = "/v1/quickbooks/callback"


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _bounds(schema: dict[str, Any], where: str, seen: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(schema path, problem) for each string without maxLength and list without maxItems."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return
        yield from _bounds(COMPONENTS[name], f"{where}<{name}>", seen | {name})
        return
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    bounded = "enum" in schema or "const" in schema
    if "string" in types and "maxLength" not in schema and not bounded:
        yield where, "a string without maxLength"
    if "array" in types and "maxItems" not in schema:
        yield where, "a list without maxItems"
    # A bound beside anyOf/oneOf applies to each option (FastAPI puts a parameter's there).
    inherited: dict[str, Any] = {
        key: schema[key] for key in ("maxLength", "maxItems") if key in schema
    }
    for key in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            yield from _bounds({**inherited, **option}, f"{where}/{key}/{index}", seen)
    for name, child in schema.get("properties", {}).items():
        yield from _bounds(child, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        yield from _bounds(schema["items"], f"{where}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _bounds(schema["additionalProperties"], f"{where}{{}}", seen)


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in CONTRACT["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_string_and_list_of_a_request_has_a_bound() -> None:
    """S8: a request schema's string without maxLength or list without maxItems fails here,
    named by its schema path."""
    missing = []
    for method, path, operation in _operations():
        for parameter in operation.get("parameters", []):
            where = f"{method} {path} {parameter['in']}:{parameter['name']}"
            missing += list(_bounds(parameter["schema"], where, frozenset()))
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            missing += list(
                _bounds(content["schema"], f"{method} {path} {media_type}", frozenset())
            )
    assert missing == [], "\n".join(f"{where}: {problem}" for where, problem in missing)


# One valid body per route that takes one: each bound is tried on a copy of it.
BASE_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/quickbooks/connect/confirm"): {"handle": "h" * 43},
    ("PUT", "/v1/quickbooks/settings"): {"customer_sync_mode": "match_only"},
    ("PUT", "/v1/quickbooks/mappings/{kind}/{platform_id}"): {"account_number": "4000"},
    ("POST", "/v1/quickbooks/preview"): {
        "clients": [{"id": "cl_1", "name": "Acme", "company_name": "Acme Ltd"}],
        "services": [{"id": "svc_1", "name": "Work", "description": "Hours"}],
        "tax_rates": [{"id": "tr_1", "name": "VAT", "rate": "20.00"}],
    },
    ("POST", "/v1/quickbooks/preview/apply"): {"preview_id": "p" * 22, "client_ids": ["cl_1"]},
}
PATH_VALUES = {"kind": "clients", "platform_id": "cl_1"}
RECORD_KINDS = {"kind": "client"}


def _long_value(schema: dict[str, Any], example: Any) -> Any:
    """A value one past the bound: a longer string or a longer list."""
    if "maxLength" in schema:
        return "x" * (schema["maxLength"] + 1)
    return [example[0] if isinstance(example, list) and example else "x"] * (schema["maxItems"] + 1)


def _bounded_fields(
    schema: dict[str, Any], body: Any, where: list[str]
) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """The paths present in `body` whose schema carries maxLength or maxItems."""
    schema = _resolve(schema)
    for option in schema.get("anyOf", []):
        if _resolve(option).get("type") == type_name(body):
            yield from _bounded_fields(option, body, where)
    if "maxLength" in schema or "maxItems" in schema:
        yield where, schema
    if isinstance(body, dict):
        for name, child in schema.get("properties", {}).items():
            if name in body:
                yield from _bounded_fields(child, body[name], [*where, name])
    if isinstance(body, list) and body and isinstance(schema.get("items"), dict):
        yield from _bounded_fields(schema["items"], body[0], [*where, "0"])


def type_name(value: Any) -> str:
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "other")


def _set(body: Any, where: list[str], value: Any) -> Any:
    changed = copy.deepcopy(body)
    target = changed
    for part in where[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = where[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return changed


def _cases() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, field, request) for each bound of each route taking JWT callers."""
    for method, path, operation in _operations():
        if path in ("/v1/events", "/v1/quickbooks/webhooks"):
            continue  # signed: tested below with their signatures
        values = RECORD_KINDS if "/sync/records/" in path else PATH_VALUES
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            options = [schema, *schema.get("anyOf", [])]  # a bound beside anyOf counts
            bound = next((option for option in options if "maxLength" in option), None)
            if bound is None:
                continue
            long = "x" * (bound["maxLength"] + 1)
            params = {**values, parameter["name"]: long} if parameter["in"] == "path" else values
            url = path.format(**params)
            query = {parameter["name"]: long} if parameter["in"] == "query" else {}
            yield method, path, parameter["name"], {"url": url, "params": query}
        base = BASE_BODIES.get((method, path))
        if "requestBody" in operation:
            assert base is not None, f"give {method} {path} a base body in BASE_BODIES"
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            for where, bound in _bounded_fields(schema, base, []):
                if not where:
                    continue
                current: Any = base
                for part in where:
                    current = current[int(part)] if isinstance(current, list) else current[part]
                body = _set(base, where, _long_value(bound, current))
                yield method, path, ".".join(where), {"url": path.format(**values), "json": body}


CASES = list(_cases())


async def _work_done(
    db: Database, redis: ArqRedis, settings: Settings, simulator: SimulatorHandle
) -> tuple[int, ...]:
    async with db.sessions() as session:
        rows = [
            int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (PlatformEvent, QboWebhookEvent, SyncRecord, EntityMapping, SyncSettings)
        ]
    queued = int(await redis.zcard(settings.redis.queue_name))
    return (*rows, queued, sum(simulator.state.stats.requests_by_realm.values()))


@pytest.fixture
async def connected(consent: Consent, make_token: TokenFactory) -> dict[str, str]:
    await consent.connect("org_1", US_REALM)
    return bearer(make_token("org_1"))


@pytest.mark.parametrize(
    ("method", "path", "field", "request_"), CASES, ids=[f"{m} {p} {f}" for m, p, f, _ in CASES]
)
async def test_a_value_past_its_bound_is_refused_naming_it(
    client: httpx.AsyncClient,
    connected: dict[str, str],
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    simulator: SimulatorHandle,
    method: str,
    path: str,
    field: str,
    request_: dict[str, Any],
) -> None:
    """S8: one past a maxLength or maxItems → 413/422 problem+json naming the field, and no
    row, job or QuickBooks call."""
    before = await _work_done(db, redis, settings, simulator)
    if path == CALLBACK:
        # A browser is waiting: the refusal is the settings page with the error, never JSON.
        answer = await client.get(request_["url"], params=request_["params"])
        assert answer.status_code == 303, answer.text
        assert "quickbooks=error" in answer.headers["location"]
        assert await _work_done(db, redis, settings, simulator) == before
        return
    answer = await client.request(
        method,
        request_["url"],
        params=request_.get("params"),
        json=request_.get("json"),
        headers=connected,
    )
    assert answer.status_code in (413, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    named = [error["field"] for error in answer.json().get("errors", [])]
    assert any(name == field or name.startswith(f"{field}.") for name in named), (
        field,
        answer.text,
    )
    assert await _work_done(db, redis, settings, simulator) == before


BODY_ROUTES = [
    (method, path) for method, path, operation in _operations() if "requestBody" in operation
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
async def test_an_oversized_body_is_refused_before_any_work(
    client: httpx.AsyncClient,
    connected: dict[str, str],
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    simulator: SimulatorHandle,
    method: str,
    path: str,
    declared: bool,
) -> None:
    """S8: a body one byte past QBSYNC_MAX_BODY_BYTES, declared or streamed → 413 problem+json
    naming the body; signed routes even with a valid signature; nothing done."""
    raw = b'{"x": "' + b"x" * settings.max_body_bytes + b'"}'
    headers = {**connected, "content-type": "application/json"}
    if path == "/v1/events":
        headers |= sign_event(settings.platform.webhook_secret.get_secret_value(), raw)
    before = await _work_done(db, redis, settings, simulator)

    async def chunks() -> Any:
        yield raw

    content: Any = raw if declared else chunks()
    answer = await client.request(
        method, path.format(**PATH_VALUES), content=content, headers=headers
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "payload_too_large"
    assert [error["field"] for error in answer.json()["errors"]] == ["body"]
    assert await _work_done(db, redis, settings, simulator) == before


def _event_variant(event_type: str) -> dict[str, Any]:
    body = CONTRACT["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    single = body["schema"]["oneOf"][0]
    return next(option for option in single["oneOf"] if option["title"] == event_type)


BASE_EVENT = {
    "id": "evt_1",
    "type": "client.upserted",
    "organization_id": "org_1",
    "occurred_at": "2026-11-20T10:00:00Z",
    "data": {
        "id": "cl_1",
        "name": "Acme",
        "email": "ap@acme.test",
        "company_name": "Acme Ltd",
        "phone": "123",
        "billing_address": {"line1": "1 Road", "city": "Town", "postal_code": "AB1"},
        "currency": "GBP",
    },
}
EVENT_CASES = [
    (".".join(where), _set(BASE_EVENT, where, _long_value(bound, None)))
    for where, bound in _bounded_fields(_event_variant("client.upserted"), BASE_EVENT, [])
    if where
]


async def _signed_event(client: httpx.AsyncClient, settings: Settings, body: Any) -> httpx.Response:
    raw = json.dumps(body).encode()
    secret = settings.platform.webhook_secret.get_secret_value()
    headers = {"content-type": "application/json", **sign_event(secret, raw)}
    return await client.post("/v1/events", content=raw, headers=headers)


@pytest.mark.parametrize(("field", "event"), EVENT_CASES, ids=[field for field, _ in EVENT_CASES])
async def test_a_signed_event_past_a_bound_is_refused_naming_it(
    client: httpx.AsyncClient,
    connected: dict[str, str],
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    simulator: SimulatorHandle,
    field: str,
    event: dict[str, Any],
) -> None:
    """S8: a correctly signed event with a value past its bound → 422 naming it, nothing
    stored or queued."""
    before = await _work_done(db, redis, settings, simulator)
    answer = await _signed_event(client, settings, event)
    assert answer.status_code == 422, answer.text
    named = [error["field"] for error in answer.json()["errors"]]
    assert any(name == field or name.startswith(f"{field}.") for name in named), named
    assert await _work_done(db, redis, settings, simulator) == before


async def test_a_batch_past_its_bound_is_refused(
    client: httpx.AsyncClient,
    connected: dict[str, str],
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    simulator: SimulatorHandle,
) -> None:
    """S8: one event more than a batch's maxItems → 422 naming the body, nothing stored."""
    body = CONTRACT["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    limit = body["schema"]["oneOf"][1]["maxItems"]
    events = [{**BASE_EVENT, "id": f"evt_{n}"} for n in range(limit + 1)]
    before = await _work_done(db, redis, settings, simulator)
    answer = await _signed_event(client, settings, events)
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == ["body"]
    assert await _work_done(db, redis, settings, simulator) == before


async def test_a_webhook_past_its_bound_is_refused(
    client: httpx.AsyncClient,
    connected: dict[str, str],
    db: Database,
    redis: ArqRedis,
    settings: Settings,
    simulator: SimulatorHandle,
) -> None:
    """S8: a signed CloudEvents batch one change past the contract's maxItems → 422 naming the
    body, nothing stored, no pull queued."""
    content = CONTRACT["paths"]["/v1/quickbooks/webhooks"]["post"]["requestBody"]["content"]
    limit = content["application/cloudevents+json"]["schema"]["maxItems"]
    events = [
        cloud_event(US_REALM, "Payment", str(n + 1), "created", "2026-11-21T10:00:00Z", f"e{n}")
        for n in range(limit + 1)
    ]
    before = await _work_done(db, redis, settings, simulator)
    answer = await post_webhook(client, events)
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == ["body"]
    assert await _work_done(db, redis, settings, simulator) == before
