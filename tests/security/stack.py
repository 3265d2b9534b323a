"""qbsync and the QuickBooks simulator served over real HTTP from a thread of their own.

Schemathesis calls the API with blocking requests, so the servers cannot live in the test's
event loop. The app commits to the suite's database for real, under org ids no other test uses;
their rows are deleted when the stack stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import jwt
from sqlalchemy import delete
from standardwebhooks.webhooks import Webhook

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import (
    CatalogueEntry,
    OutboundEvent,
    PlatformEvent,
    QboWebhookEvent,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.settings import DEV_JWT_SECRET, Settings
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.testing import SimulatorHandle, running_simulator, serving
from tests.connections.committed import org_prefix, remove_orgs
from tests.connections.conftest import REDIRECT_URI, Consent, simulator_settings

T = TypeVar("T")


def org_token(org_id: str, user_id: str = "user_1") -> str:
    """A dev platform JWT for one org with the integrations entitlement."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "org_id": org_id,
        "iat": now,
        "exp": now + 3600,
        "entitlements": ["integrations"],
    }
    return jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")


def sign_event(secret: str, raw: bytes) -> dict[str, str]:
    """Standard Webhooks headers for `raw`, as the platform's backend sends them."""
    message_id = f"msg_{uuid.uuid4().hex}"
    stamp = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, stamp, raw.decode()),
    }


@dataclass
class LiveStack:
    """The running servers, and a way to run a coroutine on their loop."""

    base_url: str
    simulator: SimulatorHandle
    settings: Settings
    prefix: str
    loop: asyncio.AbstractEventLoop

    @property
    def org_id(self) -> str:
        return f"{self.prefix}a"

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


@contextlib.contextmanager
def live_stack(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    prepare: Callable[[LiveStack, httpx.AsyncClient], Awaitable[None]],
) -> Iterator[LiveStack]:
    """Serve the simulator and qbsync until the block ends; `prepare` runs on their loop first."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stacks: list[LiveStack] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def main() -> None:
        since = utcnow()
        config = SimulatorConfig(redirect_uris=(REDIRECT_URI,))
        async with running_simulator(config) as simulator:
            settings = simulator_settings(simulator, f"{key_prefix}:{uuid.uuid4().hex[:8]}")
            app = create_app(settings, database_url=database_url, redis_url=redis_url)
            try:
                async with serving(app) as base_url:
                    stack = LiveStack(base_url, simulator, settings, org_prefix(), loop)
                    async with httpx.AsyncClient(base_url=base_url) as client:
                        await prepare(stack, client)
                    stacks.append(stack)
                    started.set()
                    await stop.wait()
            finally:
                if stacks:
                    cleanup = Database.connect(database_url)
                    await remove_orgs(cleanup, stacks[0].prefix, since)
                    await remove_since(cleanup, since)
                    await cleanup.dispose()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # handed to the test's thread below
            failures.append(exc)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name="qbsync-live", daemon=True)
    thread.start()
    started.wait(timeout=120)
    try:
        if failures:
            raise failures[0]
        if not stacks:
            raise RuntimeError("the live stack did not start in time")
        yield stacks[0]
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        if failures:
            raise failures[0]


async def remove_since(db: Database, since: datetime) -> None:
    """Rows the fuzzer's signed deliveries stored for the org ids and companies it made up."""
    async with db.sessions() as session:
        for received in (PlatformEvent, QboWebhookEvent):
            await session.execute(delete(received).where(received.received_at >= since))
        for stamped in (SyncRecord, CatalogueEntry, OutboundEvent):
            await session.execute(delete(stamped).where(stamped.created_at >= since))
        await session.commit()


async def connect_org(stack: LiveStack, client: httpx.AsyncClient, org_id: str, realm: str) -> None:
    """Connect `org_id` to the simulator's company `realm` the way a user does."""

    def make_token(org: str | None = org_id, **claims: Any) -> str:
        return org_token(org or org_id, str(claims.get("sub", "user_1")))

    await Consent(client, stack.simulator, make_token).connect(org_id, realm)


async def post_events(stack: LiveStack, client: httpx.AsyncClient, events: list[Any]) -> None:
    raw = json.dumps(events).encode()
    secret = stack.settings.platform.webhook_secret.get_secret_value()
    headers = {"content-type": "application/json", **sign_event(secret, raw)}
    answer = await client.post("/v1/events", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text
