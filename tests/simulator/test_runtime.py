"""Settings, the clock and the server entry point."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from qbsync.settings import Settings
from qbsync.simulator import SimulatorConfig
from qbsync.simulator.clock import SimClock
from qbsync.simulator.server import serve
from qbsync.simulator_launch import simulator_config


def test_config_from_settings_uses_qbsyncs_intuit_credentials() -> None:
    settings = Settings(
        env="test",
        host="0.0.0.0",  # noqa: S104
        port=8123,
        intuit={"client_id": "cid", "client_secret": "cs", "webhook_verifier_token": "vt"},
        simulator={"time_scale": 60, "webhook_format": "legacy"},
    )

    config = simulator_config(settings, data_dir=Path("state/sim"))

    assert (config.client_id, config.client_secret, config.verifier_token) == ("cid", "cs", "vt")
    assert (config.app_name, config.data_dir) == ("qbsync", Path("state/sim"))
    assert config.redirect_uris == ("http://127.0.0.1:8000/v1/quickbooks/callback",)
    assert config.webhook_url == "http://127.0.0.1:8123/v1/quickbooks/webhooks"
    assert (config.time_scale, config.webhook_format) == (60, "legacy")


async def test_the_clock_runs_time_scaled_and_advancing_wakes_sleepers() -> None:
    clock = SimClock(time_scale=1000)
    start_sim, start_real = clock.timestamp(), time.monotonic()
    await clock.sleep(100)
    assert 0.09 < time.monotonic() - start_real < 0.5
    assert clock.timestamp() - start_sim >= 100

    slow = SimClock(time_scale=1)
    sleeper = asyncio.create_task(slow.sleep(3600))
    await asyncio.sleep(0.01)
    slow.advance(3600)
    await asyncio.wait_for(sleeper, 1)


@pytest.fixture
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_serve_answers_on_the_given_port_and_cancelling_shuts_it_down(
    free_port: int,
) -> None:
    task = asyncio.create_task(serve(SimulatorConfig(), "127.0.0.1", free_port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port}") as http:
            for _ in range(200):
                try:
                    response = await http.get("/.well-known/openid_configuration")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
        assert response.json()["token_endpoint"].endswith("/oauth2/v1/tokens/bearer")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # The listening socket is closed (not left to the garbage collector) and, as the autouse
    # fixture checks, no lifespan or webhook task is left pending.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port), timeout=1).close()
