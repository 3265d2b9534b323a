"""Ops endpoints: no tenant data, no authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from qbsync.db import Database
from qbsync.errors import problem, problem_responses
from qbsync.observability import metrics_endpoint
from qbsync.queue import JobQueue

CHECK_TIMEOUT_SECONDS = 2.0
router = APIRouter(tags=["ops"])

CheckState = Literal["ok", "down"]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, CheckState]


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Postgres and Redis answer",
    responses={
        503: {
            "description": "A dependency is down: a problem body that also carries `checks`",
            "content": problem_responses(503)[503]["content"],
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    queue: JobQueue = request.app.state.queue
    database, redis = await asyncio.gather(_check(db.ping()), _check(queue.redis.ping()))
    checks: dict[str, CheckState] = {"database": database, "redis": redis}
    ready = all(state == "ok" for state in checks.values())
    if ready:
        return JSONResponse(Readiness(status="ready", checks=checks).model_dump())
    down = ", ".join(name for name, state in checks.items() if state != "ok")
    return problem(503, "not_ready", f"A dependency is down: {down}", extra={"checks": checks})


async def _check(probe: Awaitable[Any]) -> CheckState:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "down"
    return "ok"


router.add_api_route(
    "/metrics",
    metrics_endpoint,
    methods=["GET"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
