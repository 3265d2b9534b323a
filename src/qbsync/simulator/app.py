"""The simulator's ASGI app: OAuth, the Accounting API behind Intuit's edge, and /_sim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from qbsync.simulator import admin, api, oauth
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.errors import QboError
from qbsync.simulator.gateway import IntuitGateway
from qbsync.simulator.jsonio import json_response
from qbsync.simulator.state import SimulatorState


def create_simulator_app(
    config: SimulatorConfig, *, state: SimulatorState | None = None
) -> FastAPI:
    """A fresh simulator; pass `state` to keep a handle on its memory (see testing.py)."""
    sim = state or SimulatorState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sim.webhooks.start()
        if sim.saver is not None:
            sim.saver.start()
        try:
            yield
        finally:
            sim.stopping.set()
            await sim.webhooks.stop()
            if sim.saver is not None:
                await sim.saver.stop()

    app = FastAPI(title="QuickBooks Online simulator", lifespan=lifespan)
    app.state.simulator = sim
    app.include_router(oauth.build_router(sim))
    app.include_router(api.build_router(sim))
    app.include_router(admin.build_router(admin.Admin(sim)))

    async def fault_handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QboError)
        body = {"Fault": exc.fault_json(), "time": sim.response_time(None)}
        return json_response(body, exc.status_code)

    async def consent_handler(request: Request, exc: Exception) -> Response:
        return json_response({"error": "invalid_request", "error_description": str(exc)}, 400)

    app.add_exception_handler(QboError, fault_handler)
    app.add_exception_handler(oauth.ConsentError, consent_handler)
    app.add_middleware(IntuitGateway, state=sim)
    return app
