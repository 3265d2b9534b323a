"""Every error is application/problem+json with a stable code; validation names the field."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError

from qbsync.db import Database
from qbsync.deps import SessionDep
from qbsync.errors import database_problem
from qbsync.main import create_app
from qbsync.settings import Settings


class Widget(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    quantity: int = Field(ge=1)


def _add_routes(app: FastAPI) -> None:
    @app.post("/v1/test/widgets")
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @app.get("/v1/test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.post("/v1/test/store")
    async def store(session: SessionDep) -> dict[str, str]:
        await session.execute(__import__("sqlalchemy").text("SELECT 1"))
        return {"stored": "yes"}


async def test_validation_errors_name_each_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    _add_routes(app)
    response = await client.post("/v1/test/widgets", json={"name": "", "quantity": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert {error["field"] for error in body["errors"]} == {"name", "quantity"}
    assert body["instance"] == "/v1/test/widgets"


async def test_malformed_json_is_a_validation_error(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _add_routes(app)
    response = await client.post(
        "/v1/test/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_500_never_shows_internals(app: FastAPI, client: httpx.AsyncClient) -> None:
    _add_routes(app)
    response = await client.get("/v1/test/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    shared = await client.put("/v1/quickbooks/connection")
    assert shared.status_code == 405
    assert shared.headers["allow"] == "DELETE, GET"


async def test_oversized_body_is_refused_before_work(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """S8: a body over the limit gets 413, by declared length or by what actually arrives."""
    _add_routes(app)
    big = b"x" * (settings.max_body_bytes + 1)
    declared = await client.post(
        "/v1/test/widgets", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    streamed = await client.post(
        "/v1/test/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_database_down_is_503_never_2xx(settings: Settings, redis: object) -> None:
    """R1: when nothing could be stored the caller is told to retry."""
    down = Database.connect("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    app = create_app(settings, database=down, redis=redis)  # type: ignore[arg-type]
    _add_routes(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/v1/test/store")
    await down.dispose()
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "5"


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "code"),
    [("40P01", "database_busy"), ("40001", "database_busy"), ("23505", None)],
)
def test_a_deadlock_is_a_503_to_retry_and_a_constraint_a_bug(
    sqlstate: str, code: str | None
) -> None:
    """Postgres gave up a transaction (deadlock, serialization): retrying works, so 503."""
    mapped = database_problem(DBAPIError("UPDATE …", None, _DriverError(sqlstate)))
    assert (mapped.code if mapped else None) == code
    if mapped is not None:
        assert mapped.headers["Retry-After"] == "2"
