from __future__ import annotations

import httpx
from arq.connections import ArqRedis
from fastapi import FastAPI

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.settings import Settings


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_postgres_and_redis_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def _readyz(app: FastAPI) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/readyz")


async def test_readyz_is_503_when_the_database_is_down(settings: Settings, redis: ArqRedis) -> None:
    down = Database.connect("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    response = await _readyz(create_app(settings, database=down, redis=redis))
    await down.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["status"] == 503
    assert body["checks"] == {"database": "down", "redis": "ok"}


async def test_readyz_is_503_when_redis_is_down(settings: Settings, db: Database) -> None:
    down = ArqRedis.from_url("redis://127.0.0.1:1/0")
    response = await _readyz(create_app(settings, database=db, redis=down))
    await down.aclose()
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "down"}


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'qbsync_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_the_platform_frontend_origin_may_call_the_api(
    settings: Settings, db: Database, redis: ArqRedis
) -> None:
    allowed = settings.model_copy(update={"cors_origins": ["https://app.example.com"]})
    app = create_app(allowed, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            preflight = await client.options(
                "/v1/quickbooks/connection",
                headers={
                    "Origin": "https://app.example.com",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            stranger = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in stranger.headers
