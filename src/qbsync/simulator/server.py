"""Serving the simulator with uvicorn inside the caller's event loop."""

from __future__ import annotations

import asyncio

import uvicorn

from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.config import SimulatorConfig


async def serve(config: SimulatorConfig, host: str, port: int) -> None:
    """Serve until a signal stops uvicorn or the caller cancels; either way it shuts down cleanly.

    Cancelling uvicorn's own `serve()` would skip its shutdown: the listening socket, the
    lifespan task and the webhook sender would be left behind. So a cancellation asks the
    server to exit, waits for that, and then lets the cancellation through.
    """
    # log_config=None leaves logging to whoever runs us (`qbsync simulator`, `qbsync dev`).
    server_config = uvicorn.Config(
        create_simulator_app(config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(server_config)
    running = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        server.should_exit = True
        await running
        raise
