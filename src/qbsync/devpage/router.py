"""A stand-in for the platform's settings page, served in dev and test only.

`qbsync dev` points `QBSYNC_PLATFORM__SETTINGS_URL` here, so a newcomer sees the callback's
outcome and completes the confirm step without the platform's frontend. The page calls the real
API with a dev JWT, as the frontend would.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from qbsync.deps import SettingsDep
from qbsync.errors import ConflictError
from qbsync.security import mint_dev_token

router = APIRouter(prefix="/dev", include_in_schema=False)
PAGE = resources.files("qbsync.devpage").joinpath("page.html")


class DevTokenRequest(BaseModel):
    org_id: str = Field(default="org_dev", min_length=1, max_length=128)
    user_id: str = Field(default="user_dev", min_length=1, max_length=128)


class DevToken(BaseModel):
    token: str


@router.get("/quickbooks", response_class=HTMLResponse)
async def settings_page(_: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})


@router.post("/token", response_model=DevToken)
async def dev_token(body: DevTokenRequest, settings: SettingsDep) -> DevToken:
    """What `qbsync token` prints, for the page's "use a dev token" button."""
    try:
        token = mint_dev_token(settings.auth, org_id=body.org_id, user_id=body.user_id)
    except ValueError as error:
        raise ConflictError(str(error), code="dev_tokens_unavailable") from error
    return DevToken(token=token)
