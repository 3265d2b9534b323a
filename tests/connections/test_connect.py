"""Connect, deny and the callback's state checks (S5), end to end through the simulator."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from qbsync.connections.intuit import intuit_endpoints
from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus, OAuthState, OutboundEvent
from qbsync.models.base import utcnow
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.testing import SimulatorHandle
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import OTHER_US_REALM, REDIRECT_URI, UK_REALM, US_REALM, Consent


async def _status(client: httpx.AsyncClient, token: str) -> dict[str, object]:
    response = await client.get("/v1/quickbooks/connection", headers=bearer(token))
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def _connections(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Connection)) or 0)


async def test_not_connected_at_first(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    body = await _status(client, make_token())
    assert body["status"] == "not_connected"
    assert body["company_name"] is None


async def test_the_authorization_url_asks_intuit_for_accounting_access(
    client: httpx.AsyncClient, make_token: TokenFactory, settings: Settings
) -> None:
    response = await client.post("/v1/quickbooks/connect", headers=bearer(make_token()))
    assert response.status_code == 200
    url = urlsplit(response.json()["authorization_url"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == intuit_endpoints(settings).authorize_url
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert query["client_id"] == [settings.intuit.client_id]
    assert len(query["state"][0]) >= 32


async def test_connect_shows_connected_with_the_company_name(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    await consent.connect("org_1", US_REALM)
    body = await _status(client, make_token("org_1"))
    assert body["status"] == "connected"
    assert body["company_name"] == "Craig's Design and Landscaping"
    assert body["realm_id"] == US_REALM
    assert body["country"] == "US"
    assert body["automated_sales_tax"] is True
    health = body["token_health"]
    assert isinstance(health, dict)
    assert health["access_expires_at"] is not None
    assert health["refresh_expires_at"] is not None
    assert health["days_left"] >= 90
    async with db.sessions() as session:
        event = await session.scalar(select(OutboundEvent).where(OutboundEvent.org_id == "org_1"))
        assert event is not None
        assert event.type == "quickbooks.connection.updated"
        assert event.payload["status"] == "connected"


async def test_uk_company_details_come_from_company_info_and_preferences(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    await consent.connect("org_uk", UK_REALM)
    body = await _status(client, make_token("org_uk"))
    assert body["company_name"] == "Trafalgar Consulting Ltd"
    assert body["country"] == "GB"
    assert body["automated_sales_tax"] is False
    assert body["home_currency"] == "GBP"


async def test_another_orgs_status_is_untouched(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S1: the org comes from the token only."""
    await consent.connect("org_1", US_REALM)
    assert (await _status(client, make_token("org_2")))["status"] == "not_connected"


async def test_denied_consent_stores_nothing(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory, db: Database
) -> None:
    state = await consent.start()
    outcome = await consent.finish(consent.consent(state, approve=False))
    assert outcome == {"quickbooks": ["error"], "reason": ["access_denied"]}
    assert (await _status(client, make_token()))["status"] == "not_connected"
    assert await _connections(db) == 0


async def test_forged_state_is_refused(consent: Consent, db: Database) -> None:
    """S5: a state qbsync never issued."""
    outcome = await consent.finish(consent.consent("forged-state-" + "x" * 40))
    assert outcome["reason"] == ["invalid_state"]
    assert await _connections(db) == 0


async def test_missing_state_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.get(f"/v1/quickbooks/callback?code=abc&realmId={US_REALM}")
    assert response.status_code == 303
    assert "reason=invalid_state" in response.headers["location"]
    assert await _connections(db) == 0


async def test_a_state_works_once(consent: Consent, db: Database) -> None:
    """S5: the same callback replayed is refused."""
    callback = consent.consent(await consent.start())
    assert (await consent.finish(callback))["quickbooks"] == ["confirm"]
    replay = await consent.finish(callback)
    assert replay["reason"] == ["invalid_state"]


async def test_expired_state_is_refused(consent: Consent, db: Database) -> None:
    """S5: consent that took longer than 10 minutes."""
    state = await consent.start()
    async with db.sessions() as session:
        await session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    outcome = await consent.finish(consent.consent(state))
    assert outcome["reason"] == ["expired_state"]
    assert await _connections(db) == 0


async def test_a_state_connects_only_the_org_it_was_issued_to(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S5: a state minted for org A can never attach a company to org B."""
    state = await consent.start("org_a")
    handle = (await consent.finish(consent.consent(state, US_REALM)))["handle"][0]
    assert (await consent.confirm(handle, "org_b")).status_code == 403
    assert (await _status(client, make_token("org_b")))["status"] == "not_connected"
    assert (await _status(client, make_token("org_a")))["status"] == "not_connected"
    assert (await _status(client, make_token("org_b")))["status"] == "not_connected"


async def test_a_company_connected_to_another_org_is_refused(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    await consent.connect("org_a", OTHER_US_REALM)
    outcome = await consent.finish(consent.consent(await consent.start("org_b"), OTHER_US_REALM))
    assert outcome["reason"] == ["company_already_connected"]
    assert (await _status(client, make_token("org_b")))["status"] == "not_connected"


async def test_connect_needs_the_integrations_plan(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.post(
        "/v1/quickbooks/connect", headers=bearer(make_token(entitlements=["invoicing"]))
    )
    assert response.status_code == 403
    assert response.json()["code"] == "plan_required"


async def test_the_code_exchange_failing_is_reported_not_stored(
    consent: Consent, db: Database
) -> None:
    state = await consent.start()
    callback = consent.consent(state)
    tampered = callback.replace("code=", "code=tampered")
    outcome = await consent.finish(tampered)
    assert outcome["reason"] == ["token_exchange_failed"]
    assert await _connections(db) == 0


async def test_a_company_that_cannot_be_read_is_not_stored_and_the_grant_is_revoked(
    consent: Consent, simulator: SimulatorHandle, db: Database
) -> None:
    simulator.admin.inject(FaultSpec(kind="error", status_code=503, times=10, path="companyinfo"))
    outcome = await consent.finish(consent.consent(await consent.start()))
    assert outcome["reason"] == ["quickbooks_unavailable"]
    assert await _connections(db) == 0
    assert simulator.admin.revoke_calls == 1


async def test_the_database_refuses_one_company_connected_to_two_orgs(db: Database) -> None:
    """Two orgs sharing one company would fight over its rotating refresh token."""
    async with db.sessions() as session:
        for org_id in ("org_x", "org_y"):
            session.add(
                Connection(
                    id=uuid.uuid4(),
                    org_id=org_id,
                    realm_id=US_REALM,
                    status=ConnectionStatus.CONNECTED,
                )
            )
        with pytest.raises(IntegrityError, match="uq_connections_realm_id_connected"):
            await session.commit()


async def test_the_presented_state_decides_the_org_not_the_newest_one(
    consent: Consent, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S5: org A's consent finishes after org B started its own; A's state links A."""
    state_a = await consent.start("org_a")
    await consent.start("org_b")
    landed = await consent.finish(consent.consent(state_a, US_REALM))
    assert (await consent.confirm(landed["handle"][0], "org_a")).status_code == 200
    assert (await _status(client, make_token("org_a")))["status"] == "connected"
    assert (await _status(client, make_token("org_b")))["status"] == "not_connected"


async def test_an_org_has_a_bounded_number_of_sign_ins_in_progress(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S8: states are stored per request; a loop of clicks can't fill the table."""
    for _ in range(20):
        started = await client.post("/v1/quickbooks/connect", headers=bearer(make_token()))
        assert started.status_code == 200
    refused = await client.post("/v1/quickbooks/connect", headers=bearer(make_token()))
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_consents"
    assert refused.headers["retry-after"] == "600"
    other = await client.post("/v1/quickbooks/connect", headers=bearer(make_token("org_2")))
    assert other.status_code == 200, "another org is not held back"
