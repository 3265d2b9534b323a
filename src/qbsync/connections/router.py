from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse

from qbsync.connections import checks, service
from qbsync.connections.intuit import IntuitAccess
from qbsync.connections.schemas import (
    ConnectionStatusView,
    ConnectionTestReport,
    ConnectStarted,
    DisconnectResult,
)
from qbsync.db import Database
from qbsync.deps import QueueDep, SessionDep, SettingsDep
from qbsync.errors import problem_responses
from qbsync.models import ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.security import OrgDep

router = APIRouter(
    prefix="/v1/quickbooks",
    tags=["connection"],
    responses=problem_responses(413, 422, 500, 503),
)
ORG_ERRORS = problem_responses(401, 403)
KEPT = "Your data and mappings are kept; reconnect any time."
DISCONNECT_MESSAGES = {
    service.Revocation.REVOKED: f"Disconnected. {KEPT}",
    service.Revocation.NOTHING_TO_REVOKE: f"Disconnected. {KEPT}",
    service.Revocation.FAILED: "Disconnected here, but Intuit could not be told. Remove the app "
    "from QuickBooks (Settings → Apps) to be sure it has no access.",
}


def get_intuit(request: Request) -> IntuitAccess:
    intuit: IntuitAccess = request.app.state.intuit
    return intuit


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


IntuitDep = Annotated[IntuitAccess, Depends(get_intuit)]
DatabaseDep = Annotated[Database, Depends(get_db)]
Param = Annotated[str | None, Query(max_length=2048)]


@router.post(
    "/connect",
    response_model=ConnectStarted,
    summary="Start connecting a QuickBooks company",
    responses=ORG_ERRORS,
    description="Answers the Intuit consent URL. Its state is single-use, bound to this org and "
    "user, and expires in 10 minutes.",
)
async def connect(org: OrgDep, session: SessionDep, intuit: IntuitDep) -> ConnectStarted:
    return await service.start_connect(session, intuit, org.org_id, org.user_id)


@router.get(
    "/callback",
    response_class=RedirectResponse,
    status_code=303,
    summary="Where Intuit returns the browser after consent",
    description="Checks the state, stores the tokens and redirects to the platform's settings "
    "page with `quickbooks=connected` or `quickbooks=error&reason=…`.",
    responses={303: {"description": "Back to the platform's settings page"}},
)
async def callback(
    session: SessionDep,
    intuit: IntuitDep,
    settings: SettingsDep,
    code: Param = None,
    state: Param = None,
    realm_id: Annotated[str | None, Query(alias="realmId", max_length=64)] = None,
    error: Param = None,
) -> RedirectResponse:
    params = service.CallbackParams(state=state, code=code, realm_id=realm_id, error=error)
    try:
        await service.complete_connect(session, intuit, params)
    except service.CallbackError as failure:
        outcome = {"quickbooks": "error", "reason": failure.reason}
    else:
        outcome = {"quickbooks": "connected"}
    target = service.settings_redirect(settings.platform.settings_url, outcome)
    return RedirectResponse(target, status_code=303)


@router.get(
    "/connection",
    response_model=ConnectionStatusView,
    summary="Connection status, company and token health",
    responses=ORG_ERRORS,
)
async def get_connection(org: OrgDep, session: SessionDep) -> ConnectionStatusView:
    connection = await service.get_connection(session, org.org_id)
    return service.status_view(connection, utcnow())


@router.post(
    "/test-connection",
    response_model=ConnectionTestReport,
    summary="Run read-only checks against QuickBooks",
    responses=ORG_ERRORS | problem_responses(404),
)
async def test_connection(
    org: OrgDep, db: DatabaseDep, queue: QueueDep, intuit: IntuitDep
) -> ConnectionTestReport:
    return await checks.run_checks(db, queue, intuit, org.org_id, utcnow())


@router.delete(
    "/connection",
    response_model=DisconnectResult,
    summary="Disconnect: revoke at Intuit, forget the tokens, keep data and mappings",
    responses=ORG_ERRORS | problem_responses(404),
)
async def disconnect(org: OrgDep, session: SessionDep, intuit: IntuitDep) -> DisconnectResult:
    connection = await service.require_connection(session, org.org_id, lock=True)
    if connection.status is ConnectionStatus.DISCONNECTED:
        return DisconnectResult(
            status="disconnected", revoked_at_intuit=False, message="Already disconnected."
        )
    revocation = await service.disconnect(session, intuit, connection)
    return DisconnectResult(
        status="disconnected",
        revoked_at_intuit=revocation is service.Revocation.REVOKED,
        message=DISCONNECT_MESSAGES[revocation],
    )
