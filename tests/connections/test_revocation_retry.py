"""A revoke Intuit can't take right now is kept, sealed, and retried until it lands."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from qbsync.connections import token_vault
from qbsync.connections.tasks import retry_revocations
from qbsync.db import Database
from qbsync.models import PendingRevocation
from qbsync.models.base import utcnow
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import OTHER_US_REALM, US_REALM, Consent, load_connection


async def _requests(db: Database) -> list[PendingRevocation]:
    async with db.sessions() as session:
        return list(
            await session.scalars(
                select(PendingRevocation).execution_options(populate_existing=True)
            )
        )


async def _make_due(db: Database, *, created_days_ago: float = 0) -> None:
    async with db.sessions() as session:
        await session.execute(
            update(PendingRevocation).values(
                next_attempt_at=utcnow(), created_at=utcnow() - timedelta(days=created_days_ago)
            )
        )
        await session.commit()


def _ctx(app: FastAPI, db: Database) -> dict[str, object]:
    return {"db": db, "queue": app.state.queue, "intuit": app.state.intuit}


async def test_a_disconnect_intuit_could_not_hear_is_revoked_later(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    app: FastAPI,
) -> None:
    await consent.connect()
    plain = token_vault.open_tokens(app.state.intuit.keyring, await load_connection(db))
    assert plain is not None
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="revoke"))
    response = await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    assert response.json()["revoked_at_intuit"] is False
    assert "keeps trying" in response.json()["message"]
    [stored] = await _requests(db)
    assert stored.realm_id == US_REALM
    async with db.sessions() as session:
        raw = str(await session.scalar(text("SELECT CAST(t AS text) FROM pending_revocations t")))
    assert plain.refresh_token not in raw
    assert plain.access_token not in raw
    assert token_vault.open_tokens(app.state.intuit.keyring, stored) == plain
    assert simulator.state.tokens.is_connected(US_REALM), "still live at Intuit"

    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 0, "Intuit still down: kept for later"  # type: ignore[arg-type]
    [again] = await _requests(db)
    assert again.attempts == 1
    assert again.next_attempt_at > utcnow() + timedelta(minutes=4)

    simulator.admin.clear_faults()
    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 1  # type: ignore[arg-type]
    assert await _requests(db) == []
    assert not simulator.state.tokens.is_connected(US_REALM)


async def test_a_dropped_grant_is_kept_if_its_company_is_held_by_the_retry(
    consent: Consent, simulator: SimulatorHandle, db: Database, app: FastAPI
) -> None:
    """A retry re-checks: the org connected the company meanwhile, so revoking would cut it."""
    state = await consent.start()
    simulator.admin.inject(FaultSpec(kind="error", status_code=403, path="companyinfo"))
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=1, path="revoke"))
    assert (await consent.finish(consent.consent(state)))["reason"] == ["not_company_admin"]
    assert len(await _requests(db)) == 1
    simulator.admin.clear_faults()
    await consent.connect()
    await _make_due(db)
    assert await retry_revocations(_ctx(app, db)) == 0  # type: ignore[arg-type]
    assert await _requests(db) == []
    assert simulator.state.tokens.is_connected(US_REALM)


async def test_a_revoke_is_given_up_after_a_week(
    consent: Consent,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    simulator: SimulatorHandle,
    db: Database,
    app: FastAPI,
    capfd: pytest.CaptureFixture[str],
) -> None:
    await consent.connect("org_1", OTHER_US_REALM)
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="revoke"))
    await client.delete("/v1/quickbooks/connection", headers=bearer(make_token()))
    await _make_due(db, created_days_ago=8)
    await retry_revocations(_ctx(app, db))  # type: ignore[arg-type]
    assert await _requests(db) == []
    logged = capfd.readouterr()
    assert "revoke_given_up" in logged.out + logged.err
