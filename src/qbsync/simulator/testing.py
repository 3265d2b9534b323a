"""Running the simulator (or any small ASGI app) on a free loopback port inside a test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from qbsync.simulator.admin import Admin
from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.state import SimulatorState


@dataclass(frozen=True)
class SimulatorHandle:
    base_url: str
    state: SimulatorState
    admin: Admin

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/connect/oauth2"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/v1/tokens/bearer"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/v2/oauth2/tokens/revoke"


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to the test runner, not to a server living inside its loop.
        yield

    async def main_loop(self) -> None:
        # uvicorn polls `should_exit` every 0.1 s; a test's server stops as soon as it is asked.
        await self.on_tick(0)
        await self.exit_requested.wait()

    def request_exit(self) -> None:
        self.should_exit = True
        self.exit_requested.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown sleeps 0.1 s before it looks at the open connections and then
        # polls every 0.1 s; a test's server closes its idle connections and is gone at once.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        while self.server_state.connections or self.server_state.tasks:
            if loop.time() >= deadline:
                for task in self.server_state.tasks:
                    task.cancel(msg="the test's server stopped")
                break
            await asyncio.sleep(0.002)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` on a free port of `host` until the block ends; yields the base URL."""
    # An explicit IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without
    # it every answer waits for the peer's delayed ACK (about 40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.request_exit()
        await task


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimulatorConfig | None = None,
) -> AsyncIterator[SimulatorHandle]:
    """A simulator with fresh state on a free loopback port of the current event loop."""
    config = config or SimulatorConfig()
    state = SimulatorState(config)
    async with serving(create_simulator_app(config, state=state)) as base_url:
        try:
            yield SimulatorHandle(base_url, state, Admin(state))
        finally:
            # Let requests stalled by a delay fault finish now rather than hold up shutdown.
            state.stopping.set()


@contextlib.contextmanager
def simulator_in_thread(config: SimulatorConfig | None = None) -> Iterator[SimulatorHandle]:
    """A simulator in a thread of its own, for blocking clients (intuit-oauth, python-quickbooks).

    Drive it over HTTP, the admin API included: its state belongs to the simulator's thread.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    handles: list[SimulatorHandle] = []
    failures: list[BaseException] = []
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with running_simulator(config) as handle:
            handles.append(handle)
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the caller's thread below
            failures.append(exc)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name="qbo-simulator", daemon=True)
    thread.start()
    started.wait()
    try:
        if failures:
            raise failures[0]
        yield handles[0]
    finally:
        if stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
