"""Resolving where Postgres and Redis are: the configured URLs, or embedded ones in dev and test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import create_async_engine

from qbsync import migrations
from qbsync.embedded import EmbeddedServices, ensure_database
from qbsync.settings import Settings


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


@contextmanager
def services(settings: Settings) -> Iterator[ServiceUrls]:
    database_url = settings.database.url.get_secret_value() if settings.database.url else None
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
    if database_url and redis_url:
        yield ServiceUrls(database_url, redis_url)
        return
    embedded = EmbeddedServices(settings.data_dir).start(
        postgres=database_url is None, redis=redis_url is None
    )
    try:
        if database_url is None:
            asyncio.run(ensure_database(embedded.database_url))
        yield ServiceUrls(database_url or embedded.database_url, redis_url or embedded.redis_url)
    finally:
        embedded.stop()


async def migrate(database_url: str) -> None:
    await ensure_database(database_url)
    engine = create_async_engine(database_url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
