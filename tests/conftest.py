"""Real Postgres and Redis for the suite: the configured URLs, or embedded ones under .qbsync/test.

One database per run, migrated by Alembic once; each test runs inside a transaction that is rolled
back at its end (the app's commits release savepoints inside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

os.environ["QBSYNC_ENV"] = "test"

from qbsync import migrations
from qbsync.db import Database
from qbsync.embedded import EmbeddedServices, drop_database, ensure_database
from qbsync.main import create_app
from qbsync.settings import DEV_JWT_SECRET, Settings

RUN_ID = uuid.uuid4().hex[:10]
TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedServices]:
    services = EmbeddedServices(Path(".qbsync") / "test", database=f"qbsync_test_{RUN_ID}")
    services.start(
        postgres="QBSYNC_DATABASE__URL" not in os.environ,
        redis="QBSYNC_REDIS__URL" not in os.environ,
    )
    yield services
    services.stop()


@pytest.fixture(scope="session")
def redis_url(embedded: EmbeddedServices) -> str:
    return os.environ.get("QBSYNC_REDIS__URL") or embedded.redis_url


@pytest.fixture(scope="session")
def key_prefix() -> str:
    """A Redis key prefix (and arq queue name stem) no other test run shares."""
    return f"qbsync-test-{RUN_ID}"


def database_url_for(embedded: EmbeddedServices, name: str) -> str:
    configured = os.environ.get("QBSYNC_DATABASE__URL")
    if configured:
        return make_url(configured).set(database=name).render_as_string(hide_password=False)
    return make_url(embedded.database_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(embedded: EmbeddedServices) -> AsyncIterator[str]:
    url = database_url_for(embedded, f"qbsync_test_{RUN_ID}")
    await ensure_database(url)
    engine = create_async_engine(url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def db(connection: AsyncConnection) -> Database:
    return Database.bound_to(connection)


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    queue = f"{key_prefix}:{uuid.uuid4().hex[:8]}"
    return Settings(
        env="test",
        log_json=True,
        redis={"queue_name": queue, "key_prefix": key_prefix},
        platform={"events_url": "http://platform.test/events"},
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = ArqRedis.from_url(redis_url)
    yield pool
    await pool.aclose()


@pytest.fixture
async def app(settings: Settings, db: Database, redis: ArqRedis) -> AsyncIterator[FastAPI]:
    application = create_app(settings, database=db, redis=redis)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
        yield client


@pytest.fixture
def make_token() -> TokenFactory:
    """A platform JWT; keyword arguments override or (with None) remove claims."""

    def factory(
        org_id: str | None = "org_1",
        *,
        secret: str = DEV_JWT_SECRET,
        algorithm: str = "HS256",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": "user_1",
            "org_id": org_id,
            "iat": now,
            "exp": now + 600,
            "entitlements": ["integrations"],
        }
        payload.update(claims)
        payload = {key: value for key, value in payload.items() if value is not None}
        return jwt.encode(payload, secret, algorithm=algorithm)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def drain_worker(worker: Worker, redis: ArqRedis, limit_seconds: float = 30.0) -> None:
    """Run a real arq worker until no job is ready or running (deferred jobs stay queued)."""
    task = asyncio.create_task(worker.main())
    idle_polls = 0
    try:
        async with asyncio.timeout(limit_seconds):
            while idle_polls < 3:
                await asyncio.sleep(0.05)
                if task.done():
                    task.result()
                now_ms = int(time.time() * 1000)
                ready = await redis.zcount(worker.queue_name, "-inf", now_ms)
                idle_polls = idle_polls + 1 if ready == 0 and not worker.tasks else 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
