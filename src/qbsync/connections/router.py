from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse
from redis.exceptions import RedisError

from qbsync.connections import checks, confirm, consent, service
from qbsync.connections.schemas import (
    ConfirmConnect,
    ConnectionStatusView,
    ConnectionTestReport,
    ConnectStarted,
    DisconnectResult,
)
from qbsync.deps import (
    DatabaseDep,
    IntuitDep,
    QueueDep,
    ReferenceCacheDep,
    SessionDep,
    SettingsDep,
)
from qbsync.errors import database_problem, problem_responses
from qbsync.models.base import utcnow
from qbsync.qbo.realm import REALM_ID_MAX_LENGTH
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
    service.Revocation.RETRYING: "Disconnected here, but Intuit could not be told yet; qbsync "
    "keeps trying for a week. To be sure now, remove the app from QuickBooks (Settings → Apps).",
    service.Revocation.REFUSED: "Disconnected here. Intuit did not accept ending the app's "
    "access (it may already have been removed in QuickBooks); check QuickBooks (Settings → Apps) "
    "to be sure.",
    service.Revocation.KEPT: "Disconnected here. Another connection to this QuickBooks company "
    "still uses the app's access, so Intuit was not asked to end it.",
    service.Revocation.UNSURE: "Disconnected here, but qbsync could not check whether the app's "
    "access is still in use, so Intuit was not told. Remove the app from QuickBooks (Settings → "
    "Apps) to be sure it has no access.",
    service.Revocation.UNREADABLE: "Disconnected here. The stored access could not be read, so "
    "Intuit was not told: remove the app from QuickBooks (Settings → Apps) to be sure it has no "
    "access.",
}


# Lengths are checked by the callback itself: a browser must never get a JSON 422 (item 8).
# The contract states them; a value past one lands on the settings page with `reason`.
def _callback_param(max_length: int) -> Any:
    return Query(json_schema_extra={"maxLength": max_length})


Code = Annotated[str | None, _callback_param(2048)]
State = Annotated[str | None, _callback_param(256)]
Error = Annotated[str | None, _callback_param(256)]  # any error refuses; 64 characters are logged
log = structlog.get_logger(__name__)


@router.post(
    "/connect",
    response_model=ConnectStarted,
    summary="Start connecting a QuickBooks company",
    responses=ORG_ERRORS | problem_responses(429),
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
    description="Spends the state, exchanges the code and holds the grant until the user who "
    "started the consent confirms it. Always a redirect to the platform's settings page, never "
    "JSON: `quickbooks=confirm&handle=…` (complete it with `POST /v1/quickbooks/connect/confirm`) "
    "or `quickbooks=error&reason=…`.",
    responses={303: {"description": "Back to the platform's settings page"}},
)
async def callback(
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    settings: SettingsDep,
    code: Code = None,
    state: State = None,
    realm_id: Annotated[
        str | None,
        Query(alias="realmId", json_schema_extra={"maxLength": REALM_ID_MAX_LENGTH}),
    ] = None,
    error: Error = None,
) -> RedirectResponse:
    params = consent.CallbackParams(state=state, code=code, realm_id=realm_id, error=error)
    outcome: dict[str, str]
    try:
        handle = await consent.receive_callback(db, queue, intuit, params)
    except consent.CallbackError as failure:
        outcome = {"quickbooks": "error", "reason": failure.reason}
        log.info("quickbooks_callback", outcome="error", reason=failure.reason, detail=str(failure))
    except Exception as failure:
        # A browser is waiting on this answer: it gets a page to land on, support gets the log.
        if database_problem(failure) is not None or isinstance(failure, RedisError):
            reason = consent.CallbackReason.TEMPORARILY_UNAVAILABLE
            log.warning(
                "quickbooks_callback", outcome="error", reason=reason, error=type(failure).__name__
            )
        else:
            reason = consent.CallbackReason.UNEXPECTED_ERROR
            log.exception("quickbooks_callback", outcome="error", reason=reason)
        outcome = {"quickbooks": "error", "reason": reason}
    else:
        outcome = {"quickbooks": "confirm", "handle": handle}
        log.info("quickbooks_callback", outcome="confirm")
    target = service.settings_redirect(settings.platform.settings_url, outcome)
    return RedirectResponse(target, status_code=303)


@router.post(
    "/connect/confirm",
    response_model=ConnectionStatusView,
    summary="Link the company the user just consented to",
    description="The frontend sends the `handle` from the settings page's URL with the JWT of "
    "the user who started connecting. Another org or user → 403 `consent_not_yours`, and "
    "nothing is linked (connect CSRF, S9).",
    responses=ORG_ERRORS | problem_responses(404, 409),
)
async def confirm_connect(
    org: OrgDep,
    body: ConfirmConnect,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    references: ReferenceCacheDep,
) -> ConnectionStatusView:
    connection = await confirm.confirm(
        db, queue, intuit, references, org_id=org.org_id, user_id=org.user_id, handle=body.handle
    )
    return service.status_view(connection, utcnow())


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
async def disconnect(
    org: OrgDep, db: DatabaseDep, queue: QueueDep, intuit: IntuitDep
) -> DisconnectResult:
    result = await service.disconnect(db, queue, intuit, org.org_id)
    if result.already:
        return DisconnectResult(
            status="disconnected", revoked_at_intuit=False, message="Already disconnected."
        )
    return DisconnectResult(
        status="disconnected",
        revoked_at_intuit=result.revocation is service.Revocation.REVOKED,
        message=DISCONNECT_MESSAGES[result.revocation],
    )
