"""Every call to the Accounting API is reported as Intuit meters it (P7): reads, queries, CDC and
batches holding a query are CorePlus; writes are Core. Retried and re-sent calls count too."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from arq.connections import ArqRedis
from fastapi import FastAPI
from structlog.testing import capture_logs

from qbsync.db import Database
from qbsync.mappings.company import find_company, reader
from qbsync.observability import CompanyCallCounter
from qbsync.qbo import (
    ApiCall,
    BatchOperation,
    BatchQuery,
    Customer,
    QboClient,
    QboNetworkError,
    RetryPolicy,
)
from qbsync.settings import Settings
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory
from tests.connections.conftest import (
    UK_REALM,
    US_REALM,
    Consent,
    consent,
    simulator,
    simulator_settings,
)
from tests.mappings.conftest import Org, org, us
from tests.qbo.conftest import COMPANY, REALM, FakeTokens, RecordingLimiter, make_config

__all__ = ["consent", "org", "simulator", "us"]
NO_RETRY = RetryPolicy(max_attempts=1)


def _client(http: httpx.AsyncClient, seen: list[ApiCall]) -> QboClient:
    config = replace(make_config(), call_observer=seen.append)
    return QboClient(http, config, realm_id=REALM, tokens=FakeTokens(), limiter=RecordingLimiter())


async def test_reads_are_metered_and_writes_are_not() -> None:
    seen: list[ApiCall] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{COMPANY}/customer/1").respond(json={"Customer": {"Id": "1"}})
        mock.get(f"{COMPANY}/query").respond(json={"QueryResponse": {}})
        mock.get(f"{COMPANY}/cdc").respond(json={"CDCResponse": []})
        mock.post(f"{COMPANY}/customer").respond(json={"Customer": {"Id": "2"}})
        mock.post(f"{COMPANY}/batch").respond(
            json={"BatchItemResponse": [{"bId": "a", "Customer": {"Id": "3"}}]}
        )
        async with httpx.AsyncClient() as http:
            qbo = _client(http, seen)
            await qbo.get(Customer, "1")
            await qbo.query_all(Customer)
            await qbo.cdc([Customer], datetime(2026, 11, 1, tzinfo=UTC))
            await qbo.create(Customer(display_name="A"), requestid="r1")
            await qbo.batch(
                [BatchOperation("a", "create", Customer(display_name="B"))], requestid="r2"
            )
            mock.post(f"{COMPANY}/batch").respond(
                json={"BatchItemResponse": [{"bId": "q", "QueryResponse": {}}]}
            )
            await qbo.batch([BatchQuery("q", "SELECT * FROM Customer")])
    assert [(call.operation, call.metered) for call in seen] == [
        ("GET customer", True),
        ("GET query", True),
        ("GET cdc", True),
        ("POST customer", False),
        ("POST batch", False),
        ("POST batch", True),
    ]


async def test_a_retried_call_counts_each_time_it_was_answered() -> None:
    seen: list[ApiCall] = []
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/customer/1").mock(
            side_effect=[
                httpx.Response(503, json={"Fault": {"Error": [{"code": "10000"}]}}),
                httpx.Response(200, json={"Customer": {"Id": "1"}}),
            ]
        )
        async with httpx.AsyncClient() as http:
            await _client(http, seen).get(Customer, "1")
    assert len(seen) == 2


async def test_a_call_whose_answer_was_lost_counts_one_that_never_connected_does_not() -> None:
    """Intuit meters what it received: a timed-out read may have been served there."""
    seen: list[ApiCall] = []
    with respx.mock() as mock:
        route = mock.get(f"{COMPANY}/customer/1")
        async with httpx.AsyncClient() as http:
            qbo = QboClient(
                http,
                replace(make_config(), call_observer=seen.append, retry=NO_RETRY),
                realm_id=REALM,
                tokens=FakeTokens(),
                limiter=RecordingLimiter(),
            )
            route.side_effect = httpx.ReadTimeout("slow")
            with pytest.raises(QboNetworkError):
                await qbo.get(Customer, "1")
            assert len(seen) == 1
            route.side_effect = httpx.ConnectError("refused")
            with pytest.raises(QboNetworkError):
                await qbo.get(Customer, "1")
    assert len(seen) == 1


# Calls counted per company per UTC day, where every process adds to the same numbers: seen from
# outside, as the sync summary shows them against what the simulated company received.


@pytest.fixture
def settings(simulator: SimulatorHandle, key_prefix: str) -> Settings:
    """Each test its own Redis keys: the calls one test counted are never another test's."""
    return simulator_settings(simulator, f"{key_prefix}:{uuid.uuid4().hex[:8]}")


async def _calls_today(org: Org) -> dict[str, Any]:
    answer = await org.get("sync/summary")
    assert answer.status_code == 200, answer.text
    calls: dict[str, Any] = answer.json()["quickbooks_calls_today"]
    return calls


async def test_each_call_is_counted_for_its_company_and_day(
    us: Org, app: FastAPI, db: Database, redis: ArqRedis, settings: Settings
) -> None:
    today = datetime.now(UTC).date().isoformat()
    # Connecting read CompanyInfo and Preferences: reads, which Intuit meters.
    assert await _calls_today(us) == {"core": 0, "coreplus": us.calls(), "date": today}
    assert us.calls() > 0

    checked = await us.client.post("/v1/quickbooks/test-connection", headers=us.headers)
    assert checked.status_code == 200, checked.text
    company = await find_company(db, "org_1")
    assert company is not None
    qbo = reader(db, app.state.queue, app.state.intuit, company)
    await qbo.create(Customer(display_name="Counted Ltd"), requestid=uuid.uuid4().hex)

    writes = len([endpoint for endpoint in us.writes() if " POST batch" not in endpoint])
    assert writes == 1
    assert await _calls_today(us) == {"core": 1, "coreplus": us.calls() - 1, "date": today}
    # Kept a few days, not forever.
    key = f"{settings.redis.key_prefix}:calls:{US_REALM}:{today}"
    assert 0 < await redis.ttl(key) <= 4 * 24 * 3600


async def test_each_company_has_its_own_count(
    us: Org, consent: Consent, make_token: TokenFactory
) -> None:
    await consent.connect("org_2", UK_REALM)
    uk = Org(us.client, make_token("org_2"), us.simulator, UK_REALM)
    await uk.client.post("/v1/quickbooks/test-connection", headers=uk.headers)
    assert (await _calls_today(uk))["coreplus"] == uk.calls()
    assert (await _calls_today(us))["coreplus"] == us.calls()
    assert uk.calls() > us.calls() > 0


async def test_an_org_without_a_company_counts_no_calls(org: Org, consent: Consent) -> None:
    await consent.connect("org_2", UK_REALM)
    assert (await _calls_today(org))["coreplus"] == 0


async def test_a_disconnected_org_counts_no_calls(us: Org) -> None:
    assert (await _calls_today(us))["coreplus"] > 0
    assert (await us.delete("connection")).status_code == 200
    assert (await _calls_today(us))["coreplus"] == 0


async def test_a_redis_failure_never_fails_the_quickbooks_call() -> None:
    down = ArqRedis.from_url("redis://127.0.0.1:1/0")
    counter = CompanyCallCounter(down, "qbsync-test")
    seen: list[ApiCall] = []
    config = replace(make_config(), call_observer=seen.append, call_recorder=counter.record)
    try:
        with respx.mock() as mock, capture_logs() as logs:
            mock.get(f"{COMPANY}/customer/1").respond(json={"Customer": {"Id": "1"}})
            async with httpx.AsyncClient() as http:
                qbo = QboClient(
                    http, config, realm_id=REALM, tokens=FakeTokens(), limiter=RecordingLimiter()
                )
                customer = await qbo.get(Customer, "1")
    finally:
        await down.aclose()
    assert customer.id == "1"
    assert [call.realm_id for call in seen] == [REALM]
    [warning] = [entry for entry in logs if entry["event"] == "intuit_call_not_counted"]
    # The error's type only: its text could carry the Redis URL and its password.
    assert warning == {
        "event": "intuit_call_not_counted",
        "log_level": "warning",
        "error": "ConnectionError",
    }
