"""R4: a real worker process killed with SIGKILL at each step of a push; after recovery the
invoice (and its new customer) exist in QuickBooks exactly once and the record is `synced`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from sqlalchemy import select, text

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import Connection, RecordStatus, SyncRecord
from qbsync.models.base import utcnow
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.committed import org_prefix, remove_orgs
from tests.connections.conftest import UK_REALM, Consent
from tests.mappings.previews import ten_pounds
from tests.sync.pushing import Books

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2
CLIENT = {"id": "cl_crash", "name": "Crash Test Ltd", "email": "crash@test.test"}


@pytest.fixture
async def committed(database_url: str) -> AsyncIterator[tuple[Database, str]]:
    db = Database.connect(database_url)
    prefix = org_prefix()
    since = utcnow()
    yield db, prefix
    await remove_orgs(db, prefix, since)
    await db.dispose()


def _worker_env(settings: Settings, database_url: str, redis_url: str) -> dict[str, str]:
    intuit = settings.intuit
    return {
        **os.environ,
        "QBSYNC_ENV": "test",
        "QBSYNC_LOG_LEVEL": "WARNING",
        "QBSYNC_DATABASE__URL": database_url,
        "QBSYNC_REDIS__URL": redis_url,
        "QBSYNC_REDIS__QUEUE_NAME": settings.redis.queue_name,
        "QBSYNC_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "QBSYNC_INTUIT__ENVIRONMENT": "simulator",
        "QBSYNC_INTUIT__REDIRECT_URI": intuit.redirect_uri,
        "QBSYNC_INTUIT__AUTHORIZE_URL": intuit.authorize_url or "",
        "QBSYNC_INTUIT__TOKEN_URL": intuit.token_url or "",
        "QBSYNC_INTUIT__REVOKE_URL": intuit.revoke_url or "",
        "QBSYNC_INTUIT__API_BASE_URL": intuit.api_base_url or "",
        "QBSYNC_PLATFORM__EVENTS_URL": "http://platform.test/events",
        "QBSYNC_PUSH__LEASE_SECONDS": str(LEASE_SECONDS),
    }


async def _start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qbsync.cli",
        "worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _record(db: Database, org_id: str) -> SyncRecord | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(SyncRecord)
            .where(SyncRecord.org_id == org_id, SyncRecord.platform_id == "inv_crash")
            .execution_options(populate_existing=True)
        )


def _invoices(simulator: SimulatorHandle) -> list[dict[str, Any]]:
    return [
        row
        for row in simulator.admin.documents(UK_REALM, "Invoice")
        if row.get("DocNumber") == "INV-inv_crash"
    ]


def _customers(simulator: SimulatorHandle) -> list[dict[str, Any]]:
    return [
        row
        for row in simulator.admin.documents(UK_REALM, "Customer")
        if row["DisplayName"].startswith("Crash Test Ltd")
    ]


STEPS = ["customer_create", "before_invoice_send", "invoice_create", "before_outcome_stored"]


@pytest.mark.parametrize("step", STEPS)
async def test_a_worker_killed_mid_push_leaves_the_invoice_in_quickbooks_exactly_once(
    step: str,
    simulator: SimulatorHandle,
    settings: Settings,
    committed: tuple[Database, str],
    redis: ArqRedis,
    database_url: str,
    redis_url: str,
    make_token: TokenFactory,
) -> None:
    """R4, killed (SIGKILL) at `step`; a second worker recovers after the claim's lease."""
    db, prefix = committed
    org_id = f"{prefix}r4"
    app = create_app(settings, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            await Consent(client, simulator, make_token).connect(org_id, UK_REALM)
            headers = bearer(make_token(org_id))
            company = simulator.state.company(UK_REALM)
            ids = {row.get("Name"): row["Id"] for row in company.objects["Item"].values()}
            accounts = {row["Name"]: row["Id"] for row in company.objects["Account"].values()}
            for path, body in (
                ("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"}),
                ("mappings/services/svc_consulting", {"qbo_id": ids["Consulting"]}),
            ):
                response = await client.put(f"/v1/quickbooks/{path}", json=body, headers=headers)
                assert response.status_code == 200, response.text
            response = await client.put(
                "/v1/quickbooks/settings",
                json={
                    "invoice_auto_push": True,
                    "default_income_account_id": accounts["Consulting Income"],
                },
                headers=headers,
            )
            assert response.status_code == 200, response.text
            books = Books(
                None,  # type: ignore[arg-type]
                client,
                settings,
                db,
                redis,
                database_url,
                redis_url,
                org_id=org_id,
            )
            rule = None
            if step in ("customer_create", "before_invoice_send"):
                rule = simulator.admin.inject(
                    FaultSpec(kind="delay", delay_seconds=1.5, method="POST", path="/customer$")
                )
            else:
                rule = simulator.admin.inject(
                    FaultSpec(kind="delay", delay_seconds=1.5, method="POST", path="/invoice$")
                )
            env = _worker_env(settings, database_url, redis_url)
            worker = await _start_worker(env)
            await books.send("invoice.upserted", ten_pounds("inv_crash", CLIENT))
            await _until(lambda: _taken(rule), 20, "the delayed call to arrive")

            async with db.engine.connect() as blocker:
                if step == "before_invoice_send":
                    # The worker will block noting its write: the customer exists, the invoice
                    # is not sent yet.
                    await blocker.execute(
                        text(
                            "SELECT id FROM sync_records WHERE org_id = :org AND "
                            "platform_id = 'inv_crash' FOR UPDATE"
                        ),
                        {"org": org_id},
                    )
                    await _until(lambda: _true(len(_customers(simulator)) == 1), 10, "the customer")
                    await asyncio.sleep(0.5)
                    assert _invoices(simulator) == []
                elif step == "before_outcome_stored":
                    # The worker will block storing the outcome: QuickBooks holds the invoice.
                    await blocker.execute(
                        select(Connection.id).where(Connection.org_id == org_id).with_for_update()
                    )
                    await _until(lambda: _true(len(_invoices(simulator)) == 1), 10, "the invoice")
                    await asyncio.sleep(0.5)
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
                await blocker.rollback()
            if step == "invoice_create":
                # Whether QuickBooks finishes a write whose caller died is not ours to know:
                # give it the time it would take, then recover either way.
                await asyncio.sleep(2.0)
            simulator.admin.clear_faults()
            interrupted = await _record(db, org_id)
            assert interrupted is not None
            assert interrupted.status is RecordStatus.IN_PROGRESS, "killed mid-push"

            await asyncio.sleep(LEASE_SECONDS + 0.5)
            recovery = await _start_worker(env)
            try:
                await _until(lambda: _synced(db, org_id), 60, "the record to be synced")
            finally:
                recovery.send_signal(signal.SIGTERM)
                await recovery.wait()
            record = await _record(db, org_id)

    assert record is not None
    invoices = _invoices(simulator)
    assert len(invoices) == 1, f"exactly once after a kill at {step}"
    assert record.qbo_id == invoices[0]["Id"]
    assert len(_customers(simulator)) == 1, "and its customer once"
    assert record.write_started_at is None


async def _taken(rule: Any) -> bool:
    return bool(rule.remaining == 0)


async def _true(value: bool) -> bool:
    return value


async def _synced(db: Database, org_id: str) -> bool:
    record = await _record(db, org_id)
    return record is not None and record.status is RecordStatus.SYNCED
