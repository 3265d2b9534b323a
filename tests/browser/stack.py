"""qbsync as `make run` starts it, inside the test process: the real app under uvicorn, a real
arq worker and the QuickBooks simulator, each on a free loopback port, in a thread with its own
event loop (the browser test drives Playwright's blocking API from the main thread)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from qbsync.main import create_app
from qbsync.settings import Settings
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.testing import running_simulator
from qbsync.worker import create_worker

EVENTS_SECRET = "whsec_" + "YnJvd3Nlci10ZXN0LWV2ZW50cy1zZWNyZXQ="


@dataclass(frozen=True)
class Stack:
    api_url: str
    simulator_url: str
    settings: Settings


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("qbsync stopped before it started")
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task


def _settings(api_url: str, simulator_url: str, key_prefix: str) -> Settings:
    return Settings(
        env="test",
        redis={"queue_name": f"{key_prefix}:browser", "key_prefix": f"{key_prefix}:browser"},
        platform={
            "settings_url": f"{api_url}/",
            "events_url": f"{api_url}/dev/platform/events",
            "events_secret": EVENTS_SECRET,
        },
        intuit={
            "environment": "simulator",
            "redirect_uri": f"{api_url}/v1/quickbooks/callback",
            "authorize_url": f"{simulator_url}/connect/oauth2",
            "token_url": f"{simulator_url}/oauth2/v1/tokens/bearer",
            "revoke_url": f"{simulator_url}/v2/oauth2/tokens/revoke",
            "api_base_url": simulator_url,
        },
    )


async def _run(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    ready: Callable[[Stack], None],
    stop: asyncio.Event,
) -> None:
    api_sock = _free_socket()
    api_url = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
    config = SimulatorConfig(
        app_name="qbsync",
        redirect_uris=(f"{api_url}/v1/quickbooks/callback",),
        webhook_url=f"{api_url}/v1/quickbooks/webhooks",
        webhook_batch_window=0.1,
    )
    async with running_simulator(config) as simulator:
        settings = _settings(api_url, simulator.base_url, key_prefix)
        app = create_app(settings, database_url=database_url, redis_url=redis_url)
        worker = create_worker(
            settings, database_url, redis_url, poll_delay=0.05, handle_signals=False
        )
        async with _serve(app, api_sock):
            work = asyncio.create_task(worker.main())
            ready(Stack(api_url, simulator.base_url, settings))
            try:
                await stop.wait()
            finally:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                await worker.close()


@contextlib.contextmanager
def running_stack(database_url: str, redis_url: str, key_prefix: str) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready: list[Stack] = []
    failures: list[BaseException] = []
    started = threading.Event()

    def on_ready(running: Stack) -> None:
        ready.append(running)
        started.set()

    def run() -> None:
        try:
            loop.run_until_complete(_run(database_url, redis_url, key_prefix, on_ready, stop))
        except BaseException as error:  # reported to the test's thread below
            failures.append(error)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name=f"qbsync-{uuid.uuid4().hex[:6]}", daemon=True)
    thread.start()
    started.wait(timeout=60)
    try:
        if failures or not ready:
            raise RuntimeError("qbsync did not start") from (failures[0] if failures else None)
        yield ready[0]
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=20)
