"""Serving the simulator with uvicorn inside the caller's event loop."""

from __future__ import annotations

import uvicorn

from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.config import SimulatorConfig


async def serve(config: SimulatorConfig, host: str, port: int) -> None:
    # log_config=None leaves logging to whoever runs us (`qbsync simulator`, `qbsync dev`).
    server_config = uvicorn.Config(
        create_simulator_app(config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    await uvicorn.Server(server_config).serve()
