"""The QuickBooks card page at `/`, its script and styles, and `POST /dev/token`.

Mounted only in dev and test (`create_app` includes this router when `settings.is_dev`). The
page plays the platform's frontend: it calls the real API with a dev JWT. `qbsync dev` points
`QBSYNC_PLATFORM__SETTINGS_URL` at `/`, so the OAuth callback lands here.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from qbsync.deps import SettingsDep
from qbsync.devpage.accountant_panel import router as accountant_router
from qbsync.devpage.events_receiver import router as receiver_router
from qbsync.devpage.platform_panel import router as platform_router
from qbsync.errors import ConflictError
from qbsync.security import mint_dev_token

router = APIRouter(include_in_schema=False)
FILES = resources.files("qbsync.devpage")
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
NO_STORE = {"Cache-Control": "no-store"}


class DevTokenRequest(BaseModel):
    # Blank ids would mint a token the API then refuses (security.py wants a non-blank org).
    org_id: str = Field(default="org_dev", min_length=1, max_length=128, pattern=r"\S")
    user_id: str = Field(default="user_dev", min_length=1, max_length=128, pattern=r"\S")


class DevToken(BaseModel):
    token: str


@router.get("/", response_class=HTMLResponse)
async def card_page() -> HTMLResponse:
    return HTMLResponse(FILES.joinpath("index.html").read_text(encoding="utf-8"), headers=NO_STORE)


@router.get("/dev/quickbooks")
async def old_settings_page(request: Request) -> RedirectResponse:
    """The page's former address: a consent started before an upgrade still lands."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/{query}", status_code=307)


@router.get("/dev/assets/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return HTMLResponse("<p>Not found</p>", status_code=404)
    body = FILES.joinpath(name).read_text(encoding="utf-8")
    return Response(body, media_type=media_type, headers=NO_STORE)


@router.post("/dev/token", response_model=DevToken)
async def dev_token(body: DevTokenRequest, settings: SettingsDep) -> DevToken:
    """What `qbsync token` prints, for the page's "use a dev token" button."""
    try:
        token = mint_dev_token(settings.auth, org_id=body.org_id, user_id=body.user_id)
    except ValueError as error:
        raise ConflictError(str(error), code="dev_tokens_unavailable") from error
    return DevToken(token=token)


router.include_router(platform_router)
router.include_router(accountant_router)
router.include_router(receiver_router)
