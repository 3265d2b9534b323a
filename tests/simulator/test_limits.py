"""Intuit's throttles over real HTTP: 429 with fault 3001, per company, time-scaled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from qbsync.simulator import LimitsConfig, SimulatorConfig
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.simulator.conftest import GB, US, Api, company_api

QUERY = {"query": "select * from Customer maxresults 1"}


@asynccontextmanager
async def simulated(config: SimulatorConfig) -> AsyncIterator[tuple[SimulatorHandle, Api, Api]]:
    async with (
        running_simulator(config) as sim,
        company_api(httpx.AsyncHTTPTransport(), sim.state, US, sim.base_url) as us,
        company_api(httpx.AsyncHTTPTransport(), sim.state, GB, sim.base_url) as gb,
    ):
        yield sim, us, gb


def test_the_defaults_are_intuits_limits() -> None:
    limits = SimulatorConfig().limits

    assert (limits.requests_per_minute, limits.max_in_flight, limits.batch_requests_per_minute) == (
        500,
        10,
        40,
    )
    assert limits.throttle_body == "xml"


async def test_requests_past_the_minute_limit_get_429_with_the_xml_fault() -> None:
    config = SimulatorConfig(limits=LimitsConfig(requests_per_minute=5))
    async with simulated(config) as (sim, us, gb):
        statuses = [
            (await us.client.get(us.url("query"), params=QUERY)).status_code for _ in range(5)
        ]
        throttled = await us.client.get(us.url("query"), params=QUERY)
        other_company = await gb.client.get(gb.url("query"), params=QUERY)

        assert statuses == [200] * 5
        assert throttled.status_code == 429
        assert throttled.headers["content-type"].startswith("application/xml")
        assert '<Error code="3001">' in throttled.text
        assert "message=ThrottleExceeded; errorCode=003001; statusCode=429" in throttled.text
        assert other_company.status_code == 200
        assert sim.state.stats.throttled_by_realm[US] == 1

        sim.admin.advance_clock(60)
        assert (await us.client.get(us.url("query"), params=QUERY)).status_code == 200


async def test_the_minute_is_time_scaled() -> None:
    # 60x: a minute is a real second, long enough for three calls on a busy test machine.
    config = SimulatorConfig(time_scale=60, limits=LimitsConfig(requests_per_minute=3))
    async with simulated(config) as (_, us, _gb):
        started = time.monotonic()
        for _ in range(3):
            await us.client.get(us.url("query"), params=QUERY)
        assert (await us.client.get(us.url("query"), params=QUERY)).status_code == 429
        for _ in range(300):
            await asyncio.sleep(0.01)
            if (await us.client.get(us.url("query"), params=QUERY)).status_code == 200:
                break

        # Three calls a minute at 60x: the window reopens about a real second later.
        assert 0.8 < time.monotonic() - started < 3.0


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


async def test_more_than_the_allowed_requests_in_flight_get_429() -> None:
    # Every call takes ten Intuit minutes, so calls stay in flight until the clock is moved.
    config = SimulatorConfig(api_latency=600, limits=LimitsConfig(max_in_flight=3))
    async with simulated(config) as (sim, us, gb):
        in_flight = sim.state.limiter.in_flight
        calls = [
            asyncio.create_task(us.client.get(us.url("query"), params=QUERY)) for _ in range(4)
        ]
        await until(lambda: any(call.done() for call in calls) and in_flight[US] == 3)
        [refused] = [call.result() for call in calls if call.done()]
        other_company = asyncio.create_task(gb.client.get(gb.url("query"), params=QUERY))
        await until(lambda: in_flight[GB] == 1)

        sim.admin.advance_clock(600)
        answered = await asyncio.gather(*(call for call in calls if not call.done()))

        assert refused.status_code == 429
        assert '<Error code="3001">' in refused.text
        assert [response.status_code for response in answered] == [200, 200, 200]
        assert (await other_company).status_code == 200
        assert in_flight[US] == in_flight[GB] == 0
        again = asyncio.create_task(us.client.get(us.url("query"), params=QUERY))
        await until(lambda: in_flight[US] == 1)
        sim.admin.advance_clock(600)
        assert (await again).status_code == 200


async def test_batch_calls_have_their_own_minute_limit() -> None:
    config = SimulatorConfig(limits=LimitsConfig(batch_requests_per_minute=2, throttle_body="json"))
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
    async with simulated(config) as (_, us, _gb):
        statuses = [
            (await us.client.post(us.url("batch"), json=batch)).status_code for _ in range(2)
        ]
        throttled = await us.client.post(us.url("batch"), json=batch)
        plain = await us.client.get(us.url("query"), params=QUERY)

        assert statuses == [200, 200]
        assert throttled.status_code == 429
        error = throttled.json()["Fault"]["Error"][0]
        assert error["code"] == "3001"
        assert throttled.json()["Fault"]["type"] == "SERVICE"
        assert plain.status_code == 200


async def test_limits_can_be_switched_off() -> None:
    config = SimulatorConfig(limits=LimitsConfig(enabled=False, requests_per_minute=1))
    async with simulated(config) as (_, us, _gb):
        statuses = {
            (await us.client.get(us.url("query"), params=QUERY)).status_code for _ in range(3)
        }

        assert statuses == {200}


async def test_batch_calls_count_towards_the_minute_limit_too() -> None:
    config = SimulatorConfig(limits=LimitsConfig(requests_per_minute=3))
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
    async with simulated(config) as (_, us, _gb):
        statuses = [
            (await us.client.post(us.url("batch"), json=batch)).status_code for _ in range(3)
        ]
        throttled = await us.client.get(us.url("query"), params=QUERY)

        assert statuses == [200, 200, 200]
        assert throttled.status_code == 429


async def test_api_latency_is_added_to_every_accounting_call() -> None:
    # A latency far above what a loaded machine adds to a loopback call, so the admin call's
    # time tells "no latency added" apart from a busy CPU.
    config = SimulatorConfig(api_latency=1.0)
    async with (
        simulated(config) as (sim, us, _gb),
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        started = time.monotonic()
        for _ in range(2):
            assert (await us.client.get(us.url("query"), params=QUERY)).status_code == 200
        two_calls = time.monotonic() - started
        started = time.monotonic()
        await http.get("/_sim/companies")
        admin_call = time.monotonic() - started

        assert two_calls >= 2.0
        assert admin_call < 1.0
