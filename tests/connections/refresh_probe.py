"""A worker process for the R6 test: many concurrent jobs asking one connection for a token.

Run as `python -m tests.connections.refresh_probe CONNECTION_ID JOBS START_AT` with the QBSYNC_*
environment of the test; prints the distinct access tokens it was given, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import httpx
from redis.asyncio import Redis

from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.tokens import ConnectionTokens
from qbsync.db import Database
from qbsync.observability import configure_logging
from qbsync.settings import Settings


async def main(connection_id: uuid.UUID, jobs: int, start_at: float) -> list[str]:
    settings = Settings()
    configure_logging(json=True)
    assert settings.database.url is not None
    assert settings.redis.url is not None
    db = Database.connect(settings.database.url.get_secret_value())
    redis = Redis.from_url(settings.redis.url.get_secret_value())
    async with httpx.AsyncClient() as http:
        intuit = IntuitAccess.build(settings, http, redis)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        tokens = await asyncio.gather(
            *(ConnectionTokens(db, intuit, connection_id).access_token() for _ in range(jobs))
        )
    await redis.aclose()
    await db.dispose()
    return sorted(set(tokens))


if __name__ == "__main__":
    seen = asyncio.run(main(uuid.UUID(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
    sys.stdout.write(json.dumps(seen))
