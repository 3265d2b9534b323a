"""create_app(): routers, lifespan (engine, Redis pool, httpx client) and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from qbsync import health
from qbsync.body_limit import BodySizeLimitMiddleware
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.router import router as connections_router
from qbsync.db import Database
from qbsync.devpage.router import router as devpage_router
from qbsync.errors import install_error_handlers
from qbsync.mappings.router import router as mappings_router
from qbsync.observability import RequestContextMiddleware, configure_logging
from qbsync.outbound_http import outbound_client
from qbsync.queue import JobQueue
from qbsync.reference_cache import ReferenceCache
from qbsync.security import TokenVerifier
from qbsync.settings import Settings
from qbsync.sync.log_router import router as sync_log_router
from qbsync.sync.router import EVENT_COMPONENTS
from qbsync.sync.router import router as events_router
from qbsync.webhooks.router import router as quickbooks_webhooks_router

API_DESCRIPTION = (
    "qbsync connects an organisation on the platform to its QuickBooks Online company and keeps "
    "customers, invoices, expenses, tax and payment status in step. Errors are "
    "`application/problem+json` with a stable `code`."
)


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    database: Database | None = None,
    redis: ArqRedis | None = None,
) -> FastAPI:
    """Build the app; pass URLs, or ready clients (tests share their transaction this way)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.connect(_required(database_url, "database"), settings.database)
        pool = redis or ArqRedis.from_url(_required(redis_url, "redis"))
        http = outbound_client(settings)
        app.state.settings = settings
        app.state.db = db
        app.state.queue = JobQueue(pool, settings.redis.queue_name)
        app.state.http = http
        app.state.token_verifier = TokenVerifier(settings.auth)
        app.state.intuit = IntuitAccess.build(settings, http, pool)
        app.state.reference_cache = ReferenceCache(
            pool,
            key_prefix=settings.redis.key_prefix,
            ttl_seconds=settings.intuit.reference_cache_seconds,
        )
        try:
            yield
        finally:
            await http.aclose()
            if redis is None:
                await pool.aclose()
            if database is None:
                await db.dispose()

    configure_logging(settings.log_level, json=settings.log_json)
    app = FastAPI(
        title="qbsync",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(connections_router)
    app.include_router(mappings_router)
    app.include_router(events_router)
    app.include_router(sync_log_router)
    app.include_router(quickbooks_webhooks_router)
    if settings.is_dev:
        app.include_router(devpage_router)
    _add_event_schemas(app)
    return app


def _add_event_schemas(app: FastAPI) -> None:
    """`POST /v1/events` reads its body itself (the signature is checked on the raw bytes), so
    the event shapes its schema refers to are added to the document's components here."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in EVENT_COMPONENTS.items():
            schemas.setdefault(name, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _required(value: str | None, what: str) -> str:
    if value is None:
        raise RuntimeError(f"create_app needs a {what} URL or client")
    return value
