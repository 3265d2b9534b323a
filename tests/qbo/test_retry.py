"""429 and 5xx are retried with backoff inside the per-company limit, within a bound (R8)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from qbsync.qbo import (
    Customer,
    QboClient,
    QboDuplicateNameError,
    QboServerError,
    QboThrottledError,
    RetryPolicy,
)
from qbsync.qbo.retry import backoff_delay
from tests.qbo import bodies
from tests.qbo.conftest import COMPANY, REALM, FakeTokens, RecordingLimiter, make_config

OK = httpx.Response(200, json={"Customer": {"Id": "1", "SyncToken": "0"}})


async def test_throttled_then_ok_is_retried_through_the_limiter(
    intuit: respx.MockRouter, qbo: QboClient, limiter: RecordingLimiter
) -> None:
    """R8: each retry takes a new slot from the per-company limiter."""
    route = intuit.get(f"{COMPANY}/customer/1").mock(
        side_effect=[
            httpx.Response(429, content=bodies.THROTTLED_XML),
            httpx.Response(503),
            OK,
        ]
    )
    found = await qbo.get(Customer, "1")
    assert found.id == "1"
    assert route.call_count == 3
    assert limiter.slots == [(REALM, False)] * 3


async def test_a_repeated_create_keeps_its_requestid(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """R3: a create whose response was lost is resent with the same requestid."""
    route = intuit.post(f"{COMPANY}/customer").mock(
        side_effect=[httpx.RemoteProtocolError("connection reset"), OK]
    )
    await qbo.create(Customer(display_name="Acme"), requestid="cl_1:create")
    ids = [call.request.url.params["requestid"] for call in route.calls]
    assert ids == ["cl_1:create", "cl_1:create"]
    assert route.calls[0].request.content == route.calls[1].request.content


async def test_retries_stop_at_the_attempt_bound_with_a_retryable_error(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    route = intuit.get(f"{COMPANY}/customer/1").respond(503)
    with pytest.raises(QboServerError) as caught:
        await qbo.get(Customer, "1")
    assert caught.value.retryable
    assert route.call_count == make_config().retry.max_attempts


async def test_a_wait_past_the_time_bound_gives_up_at_once_with_the_wait(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """The job layer gets Retry-After on the error and defers by it instead of sleeping."""
    route = intuit.get(f"{COMPANY}/customer/1").respond(
        429, json=bodies.THROTTLED_JSON, headers={"retry-after": "90"}
    )
    started = time.monotonic()
    with pytest.raises(QboThrottledError) as caught:
        await qbo.get(Customer, "1")
    assert time.monotonic() - started < 1
    assert route.call_count == 1
    assert caught.value.wait_seconds == 90


async def test_business_errors_are_not_retried(intuit: respx.MockRouter, qbo: QboClient) -> None:
    route = intuit.post(f"{COMPANY}/customer").respond(400, json=bodies.DUPLICATE_NAME)
    with pytest.raises(QboDuplicateNameError):
        await qbo.create(Customer(display_name="Taken"), requestid="cl_2:create")
    assert route.call_count == 1


def test_backoff_grows_honours_retry_after_and_only_adds_jitter() -> None:
    policy = RetryPolicy(
        base_delay_seconds=1, throttle_delay_seconds=60, max_delay_seconds=100, jitter_ratio=0.2
    )
    server = QboServerError("boom")
    assert 1 <= backoff_delay(server, 1, policy) <= 1.2
    assert 4 <= backoff_delay(server, 3, policy) <= 4.8
    assert 100 <= backoff_delay(server, 10, policy) <= 120
    throttled = QboThrottledError("slow down")
    assert 60 <= backoff_delay(throttled, 1, policy) <= 72
    told = QboThrottledError("slow down", retry_after=7)
    assert 7 <= backoff_delay(told, 1, policy) <= 8.4


async def test_a_storm_of_429_and_503_ends_with_every_job_done(
    intuit: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """R8: 20 concurrent writes through a storm of 429/503 all complete; none is dropped."""
    storm = iter([429, 503, 429, 500, 429, 502] * 4)
    bodies_by_requestid: dict[str, set[bytes]] = {}
    created: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requestid = request.url.params["requestid"]
        bodies_by_requestid.setdefault(requestid, set()).add(request.content)
        status = next(storm, 200)
        if status == 429:
            return httpx.Response(429, json=bodies.THROTTLED_SIMPLE)
        if status >= 500:
            return httpx.Response(status)
        created.append(requestid)
        number = requestid.removeprefix("cl_").removesuffix(":create")
        return httpx.Response(200, json={"Customer": {"Id": number, "SyncToken": "0"}})

    route = intuit.post(f"{COMPANY}/customer").mock(side_effect=answer)
    policy = RetryPolicy(
        max_attempts=30,
        base_delay_seconds=0.001,
        throttle_delay_seconds=0.001,
        max_delay_seconds=0.005,
        max_total_seconds=5,
    )
    client = QboClient(
        http,
        make_config(policy),
        realm_id=REALM,
        tokens=FakeTokens(),
        limiter=RecordingLimiter(),
    )
    results = await asyncio.gather(
        *(
            client.create(Customer(display_name=f"C{n}"), requestid=f"cl_{n}:create")
            for n in range(20)
        )
    )
    assert [customer.id for customer in results] == [str(n) for n in range(20)]
    # Each job succeeded exactly once, and every resend carried the same body and requestid.
    assert sorted(created) == sorted(f"cl_{n}:create" for n in range(20))
    assert all(len(sent) == 1 for sent in bodies_by_requestid.values())
    assert route.call_count == 24 + 20


@dataclass
class HeldSlots:
    """A limiter that knows how many of its slots are held right now."""

    held: int = 0

    @asynccontextmanager
    async def slot(
        self, realm_id: str, *, batch: bool = False, max_wait_seconds: float | None = None
    ) -> AsyncIterator[None]:
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


async def test_no_slot_is_held_while_waiting_to_retry(
    intuit: respx.MockRouter, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R8: the backoff sleep happens outside the per-company limiter, for every transient kind."""
    limiter = HeldSlots()
    held_while_sleeping: list[int] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        held_while_sleeping.append(limiter.held)
        await real_sleep(0)

    monkeypatch.setattr("qbsync.qbo.retry.asyncio.sleep", sleep)
    intuit.get(f"{COMPANY}/customer/1").mock(
        side_effect=[
            httpx.Response(429, content=bodies.THROTTLED_XML),
            httpx.Response(503),
            httpx.ReadTimeout("slow"),
            OK,
        ]
    )
    client = QboClient(http, make_config(), realm_id=REALM, tokens=FakeTokens(), limiter=limiter)
    await client.get(Customer, "1")
    assert held_while_sleeping == [0, 0, 0]
    assert limiter.held == 0


async def test_retry_after_as_an_http_date_is_honoured(
    intuit: respx.MockRouter, qbo: QboClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("qbsync.qbo.retry.asyncio.sleep", sleep)
    # Half a second more than a whole one: the date drops the fraction, a slow machine lags.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=1.5), usegmt=True)
    intuit.get(f"{COMPANY}/customer/1").mock(
        side_effect=[httpx.Response(503, headers={"retry-after": when}), OK]
    )
    await qbo.get(Customer, "1")
    (delay,) = slept
    # 0.5 to 1.5 s away when sent (whole seconds), plus at most 20 % jitter.
    assert 0 < delay <= 1.8


async def test_a_write_without_a_requestid_is_never_sent(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """R3: a POST that could be applied twice on a retry has no way in."""
    route = intuit.post(f"{COMPANY}/customer").respond(200, json={"Customer": {"Id": "1"}})
    with pytest.raises(ValueError, match="requestid"):
        await qbo._request("POST", "customer", body={"DisplayName": "Acme"})
    assert route.call_count == 0
