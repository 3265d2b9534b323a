"""Test connection end to end through the simulator: what each check says, what it costs at
Intuit (one batch call), how briefly it waits on a busy company, and that it holds no database
connection while Intuit answers (R13)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from qbsync.connections.intuit import INTERACTIVE_LIMITER_WAIT_SECONDS, IntuitAccess
from qbsync.db import Database
from qbsync.models import ConnectionStatus
from qbsync.settings import Settings
from qbsync.simulator.admin import ExpireRequest
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import (
    UK_REALM,
    US_REALM,
    Consent,
    expire_access_token,
    load_connection,
)

TOKEN_PATH = "/oauth2/v1/tokens/bearer"
READ_CHECKS = (
    "read_customers",
    "read_products_and_services",
    "read_accounts",
    "read_tax_codes",
    "read_invoices",
    "read_payments",
    "read_vendors",
    "read_bills",
    "read_expenses",
)


async def _test(client: httpx.AsyncClient, token: str) -> dict[str, dict[str, str]]:
    response = await client.post("/v1/quickbooks/test-connection", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    return {check["name"]: check for check in body["checks"]} | {"_": {"ok": str(body["ok"])}}


def _calls(simulator: SimulatorHandle, realm_id: str = US_REALM) -> tuple[int, int]:
    """(Accounting API calls for the company, token endpoint calls), counted as they arrive."""
    stats = simulator.admin.stats()
    return (
        stats["requests_by_realm"].get(realm_id, 0),
        stats["requests_by_endpoint"].get(f"POST {TOKEN_PATH}", 0),
    )


async def test_connection_test_passes_for_a_healthy_us_company(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    await consent.connect()
    checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "True"
    for name in ("credentials", "company_file", *READ_CHECKS):
        assert checks[name]["outcome"] == "pass", checks[name]
    assert "Craig's Design and Landscaping" in checks["company_file"]["message"]
    assert checks["read_products_and_services"]["message"] == "Can read products and services."
    assert "tax_rates_mapped" not in checks, "US automated sales tax needs no tax-code mapping"


async def test_a_healthy_test_costs_one_accounting_call(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
) -> None:
    """P7: Intuit meters reads, so every read of the test travels in one batch call."""
    await consent.connect()
    api_before, tokens_before = _calls(simulator)
    checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "True"
    assert _calls(simulator) == (api_before + 1, tokens_before)
    endpoints = simulator.admin.stats()["requests_by_endpoint"]
    assert endpoints[f"{US_REALM} POST batch"] == 1


async def test_a_due_access_token_adds_one_token_call(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    await consent.connect()
    await expire_access_token(db)
    api_before, tokens_before = _calls(simulator)
    checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "True"
    assert _calls(simulator) == (api_before + 1, tokens_before + 1)


async def test_connection_test_warns_about_unmapped_vat_rates(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    await consent.connect("org_uk", UK_REALM)
    checks = await _test(client, make_token("org_uk"))
    assert checks["_"]["ok"] == "True"
    assert checks["tax_rates_mapped"]["outcome"] == "warn"
    assert "tax codes" in checks["tax_rates_mapped"]["message"]


async def test_connection_test_reports_quickbooks_being_down(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
) -> None:
    await consent.connect()
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=20, path="/batch$"))
    checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "False"
    assert checks["credentials"]["outcome"] == "pass"
    assert checks["company_file"]["outcome"] == "fail"
    assert "try again" in checks["company_file"]["message"].lower()
    assert checks["read_customers"]["outcome"] == "skipped"


@pytest.mark.parametrize(
    ("refused", "failed"),
    [("FROM Vendor", "read_vendors"), ("FROM CompanyInfo", "company_file")],
)
async def test_each_batch_items_fault_fails_only_its_own_check(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    refused: str,
    failed: str,
) -> None:
    """The simulator serves every read, so a refused one is Intuit's answer played by respx."""
    await consent.connect()
    fault = {"type": "AuthorizationFault", "Error": [{"Message": "Unauthorized", "code": "120"}]}

    def answer(request: httpx.Request) -> httpx.Response:
        items: list[dict[str, Any]] = []
        for item in json.loads(request.content)["BatchItemRequest"]:
            if refused in item["Query"]:
                items.append({"bId": item["bId"], "Fault": fault})
            elif item["Query"] == "SELECT * FROM CompanyInfo":
                company = {"CompanyInfo": [{"Id": "1", "CompanyName": "Acme Ltd"}]}
                items.append({"bId": item["bId"], "QueryResponse": company})
            else:
                items.append({"bId": item["bId"], "QueryResponse": {"totalCount": 3}})
        return httpx.Response(200, json={"BatchItemResponse": items})

    with respx.mock(assert_all_called=False) as intuit:
        intuit.post(f"{simulator.base_url}/v3/company/{US_REALM}/batch").mock(side_effect=answer)
        intuit.route(host="127.0.0.1").pass_through()
        checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "False"
    assert checks[failed]["outcome"] == "fail"
    assert "admin" in checks[failed]["message"]
    for name in {"company_file", *READ_CHECKS} - {failed}:
        assert checks[name]["outcome"] == "pass", checks[name]
    if failed == "read_vendors":
        assert checks["read_vendors"]["message"].startswith("Can't read vendors: ")
        assert checks["company_file"]["message"] == "Reached the company file of Acme Ltd."


async def test_a_busy_company_is_told_to_try_again_without_a_long_wait(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    app: FastAPI,
    redis: ArqRedis,
    settings: Settings,
) -> None:
    """Every in-flight slot of the company is taken by its sync: the test waits a few seconds
    on the shared limiter, sends nothing to Intuit, takes no slot, and says why."""
    await consent.connect()
    intuit: IntuitAccess = app.state.intuit
    inflight = f"{settings.redis.key_prefix}:qbo:ratelimit:{{{US_REALM}}}:inflight"
    api_before, _ = _calls(simulator)
    async with AsyncExitStack() as held:
        for _ in range(settings.intuit.max_in_flight):
            await held.enter_async_context(intuit.limiter.slot(US_REALM))
        started = time.monotonic()
        # Unbounded, the test would wait for the held slots for good: fail instead of hanging.
        async with asyncio.timeout(INTERACTIVE_LIMITER_WAIT_SECONDS + 5):
            checks = await _test(client, make_token())
        waited = time.monotonic() - started
        assert await redis.zcard(inflight) == settings.intuit.max_in_flight
    assert await redis.zcard(inflight) == 0
    assert INTERACTIVE_LIMITER_WAIT_SECONDS <= waited < INTERACTIVE_LIMITER_WAIT_SECONDS + 2
    assert _calls(simulator)[0] == api_before
    assert checks["_"]["ok"] == "False"
    assert checks["credentials"]["outcome"] == "pass"
    assert checks["company_file"] == {
        "name": "company_file",
        "outcome": "fail",
        "message": "QuickBooks is busy with this company's other syncing work; "
        "try again in a minute.",
    }
    assert checks["read_customers"]["outcome"] == "skipped"


@contextmanager
def open_transactions() -> Iterator[set[int]]:
    """The sessions (by id) holding a database transaction, hence a connection, right now."""
    holding: set[int] = set()

    def began(session: Session, transaction: SessionTransaction, connection: Any) -> None:
        holding.add(id(session))

    def ended(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            holding.discard(id(session))

    event.listen(Session, "after_begin", began)
    event.listen(Session, "after_transaction_end", ended)
    try:
        yield holding
    finally:
        event.remove(Session, "after_begin", began)
        event.remove(Session, "after_transaction_end", ended)


async def test_no_database_session_is_open_while_intuit_answers(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    """R13: the checks read what they need and close their session before calling Intuit, for
    the token refresh and the batch alike (the request's own session is not used)."""
    await consent.connect()
    await expire_access_token(db)
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.5, path="tokens/bearer"))
    simulator.admin.inject(FaultSpec(kind="delay", delay_seconds=0.5, path="/batch$"))
    api_before, tokens_before = _calls(simulator)
    with open_transactions() as holding:
        running = asyncio.create_task(_test(client, make_token()))
        try:
            # The simulator counts each call as it arrives, then answers half a second later.
            for arrived in ((api_before, tokens_before + 1), (api_before + 1, tokens_before + 1)):
                while _calls(simulator) != arrived:
                    assert not running.done(), "the test finished before Intuit was called"
                    await asyncio.sleep(0.01)
                assert not holding, f"a database session was open during call {arrived}"
            checks = await running
        finally:
            running.cancel()
    assert checks["_"]["ok"] == "True"


async def test_connection_test_when_intuit_revoked_access(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    redis: ArqRedis,
    settings: Settings,
) -> None:
    """The user removed the app inside QuickBooks: refresh gives invalid_grant → needs_reauth,
    and the platform's event is queued at once."""
    await consent.connect()
    simulator.admin.disconnect(US_REALM)
    await expire_access_token(db)
    queued_before = await redis.zcard(settings.redis.queue_name)
    checks = await _test(client, make_token())
    assert checks["credentials"]["outcome"] == "fail"
    assert "reconnect" in checks["credentials"]["message"].lower()
    assert checks["company_file"]["outcome"] == "skipped"
    status = await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert status.json()["status"] == "needs_reauth"
    assert await redis.zcard(settings.redis.queue_name) == queued_before + 1


async def test_connection_test_before_connecting_is_404(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.post("/v1/quickbooks/test-connection", headers=bearer(make_token()))
    assert response.status_code == 404
    assert response.json()["code"] == "not_connected"


async def test_an_expired_access_token_is_refreshed_on_401(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    await consent.connect()
    before = await load_connection(db)
    simulator.admin.expire_tokens(ExpireRequest(kind="access", realm_id=US_REALM))
    checks = await _test(client, make_token())
    assert checks["_"]["ok"] == "True"
    assert simulator.admin.refresh_calls == 1
    after = await load_connection(db)
    assert after.access_token != before.access_token
    assert after.status is ConnectionStatus.CONNECTED
