"""Disconnect and reconnect (R12), end to end through the simulator."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from qbsync.db import Database
from qbsync.models import (
    ConnectionStatus,
    EntityMapping,
    MappingKind,
    RecordKind,
    RecordStatus,
    SyncRecord,
)
from qbsync.models.base import utcnow
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import (
    OTHER_US_REALM,
    US_REALM,
    Consent,
    load_connection,
)


async def _test(client: httpx.AsyncClient, token: str) -> dict[str, dict[str, str]]:
    response = await client.post("/v1/quickbooks/test-connection", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    return {check["name"]: check for check in body["checks"]} | {"_": {"ok": str(body["ok"])}}


async def test_disconnect_revokes_shreds_and_keeps_mappings(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    capfd: pytest.CaptureFixture[str],
) -> None:
    await consent.connect()
    await _add_mapping_and_pending_work(db, US_REALM)
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.status_code == 200
    logged = capfd.readouterr()
    assert '"event": "quickbooks_disconnected"' in logged.out + logged.err
    assert '"revocation": "revoked"' in logged.out + logged.err
    body = response.json()
    assert body["status"] == "disconnected"
    assert body["revoked_at_intuit"] is True
    assert simulator.admin.revoke_calls == 1
    row = await load_connection(db)
    assert row.access_token is None
    assert row.refresh_token is None
    assert row.status is ConnectionStatus.DISCONNECTED
    async with db.sessions() as session:
        mapping = await session.scalar(select(EntityMapping))
        assert mapping is not None
        assert mapping.archived_at is None
        record = await session.scalar(select(SyncRecord))
        assert record is not None
        assert record.status is RecordStatus.HELD
    status = await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert status.json()["status"] == "disconnected"
    again = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert again.status_code == 200


async def test_disconnect_when_intuit_cannot_be_told(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    await consent.connect()
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="revoke"))
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.status_code == 200
    body = response.json()
    assert body["revoked_at_intuit"] is False
    assert "QuickBooks" in body["message"]
    row = await load_connection(db)
    assert row.status is ConnectionStatus.DISCONNECTED
    assert row.refresh_token is None


async def test_disconnect_before_connecting_is_404(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.status_code == 404


async def test_reconnect_to_the_same_company_keeps_mappings_and_resumes_work(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    """R12: same company → mappings intact, held work pending again."""
    await consent.connect()
    await _add_mapping_and_pending_work(db, US_REALM)
    await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    await consent.connect()
    async with db.sessions() as session:
        mapping = await session.scalar(select(EntityMapping))
        assert mapping is not None
        assert mapping.archived_at is None
        record = await session.scalar(select(SyncRecord))
        assert record is not None
        assert record.status is RecordStatus.PENDING
        assert record.realm_id == US_REALM
    status = await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert status.json()["status"] == "connected"


async def test_reconnect_to_another_company_archives_the_old_ids(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    """R12: another company → the old company's ids can never be used there."""
    await consent.connect()
    await _add_mapping_and_pending_work(db, US_REALM)
    await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    await consent.connect("org_1", OTHER_US_REALM)
    async with db.sessions() as session:
        mapping = await session.scalar(select(EntityMapping))
        assert mapping is not None
        assert mapping.archived_at is not None
        record = await session.scalar(select(SyncRecord))
        assert record is not None
        assert record.qbo_id is None
        assert record.realm_id is None
    status = await client.get("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert status.json()["company_name"] == "Second Street Bakery"


async def _add_mapping_and_pending_work(db: Database, realm_id: str) -> None:
    async with db.sessions() as session:
        session.add(
            EntityMapping(
                id=uuid.uuid4(),
                org_id="org_1",
                realm_id=realm_id,
                kind=MappingKind.CLIENT,
                platform_id="cl_1",
                qbo_id="58",
                details={},
            )
        )
        session.add(
            SyncRecord(
                id=uuid.uuid4(),
                org_id="org_1",
                kind=RecordKind.INVOICE,
                platform_id="inv_1",
                snapshot={"id": "inv_1"},
                status=RecordStatus.PENDING,
                realm_id=realm_id,
                qbo_id="130",
                next_attempt_at=utcnow() + timedelta(minutes=1),
            )
        )
        await session.commit()


async def test_disconnect_after_intuit_already_revoked_access(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
) -> None:
    await consent.connect()
    simulator.admin.disconnect(US_REALM)
    await _test(client, make_token())
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    body = response.json()
    assert body["status"] == "disconnected"
    assert body["revoked_at_intuit"] is False
    assert "could not be told" not in body["message"], "there was nothing left to revoke"
    assert simulator.admin.revoke_calls == 0
