"""`POST /v1/quickbooks/webhooks`: QuickBooks' change notifications, both payload formats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from qbsync.deps import ReferenceCacheDep, SessionDep, SettingsDep
from qbsync.errors import AppError, UnauthorizedError, problem_responses
from qbsync.qbo.webhooks import (
    SIGNATURE_HEADER,
    WebhookPayloadError,
    parse_webhook,
    verify_signature,
)
from qbsync.webhooks import service
from qbsync.webhooks.schemas import WebhookReceipt

router = APIRouter(tags=["quickbooks webhooks"], responses=problem_responses(413, 500, 503))
# Intuit sends `application/json` (legacy) or `application/cloudevents+json`; refusing the
# second silently loses every CloudEvents delivery (Intuit's migration notes warn of it).
JSON_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)


class UnsupportedMediaTypeError(AppError):
    status = 415
    code = "unsupported_media_type"


# Far above any delivery Intuit batches; a body of more changes is not Intuit's.
MAX_CHANGES = 1000


class InvalidWebhookError(AppError):
    status = 422
    code = "invalid_webhook"


async def signed_body(request: Request, settings: SettingsDep) -> bytes:
    """The raw body once `intuit-signature` holds over its exact bytes; nothing is read before
    (S4)."""
    body = await request.body()
    token = settings.intuit.webhook_verifier_token.get_secret_value()
    if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), token):
        raise UnauthorizedError(
            "The intuit-signature header is missing or does not match the body; nothing was "
            "stored.",
            code="invalid_signature",
            field=SIGNATURE_HEADER,
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaTypeError(
            f"Expected application/json or application/cloudevents+json, got "
            f"{media_type[:80] or 'no content type'}.",
            field="content-type",
        )
    return body


SignedBody = Annotated[bytes, Depends(signed_body)]
RESPONSES = problem_responses(401, 415, 422)
RESPONSES[401] = {
    **RESPONSES[401],
    "description": "The intuit-signature header is missing or does not match the raw body",
}


@router.post(
    "/v1/quickbooks/webhooks",
    response_model=WebhookReceipt,
    summary="QuickBooks change notifications (legacy eventNotifications or CloudEvents)",
    description="Signed by Intuit: `intuit-signature` is base64(HMAC-SHA256(verifier token, raw "
    "body)); a bad or missing one is 401 and nothing is stored. Each entity change is stored "
    "once (CloudEvents `id`; legacy: realm, entity, id, operation and time), then the org's "
    "pull is queued; QuickBooks is answered without any call to Intuit. A company no org is "
    "connected to is acknowledged and recorded, never pulled. A signed body that is not a "
    "QuickBooks payload is 422 naming the field at fault.",
    responses=RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": {"type": ["object", "array"], "maxItems": MAX_CHANGES}}
                for media_type in ("application/json", "application/cloudevents+json")
            },
        }
    },
)
async def receive_webhook(
    body: SignedBody, session: SessionDep, cache: ReferenceCacheDep
) -> WebhookReceipt:
    try:
        changes = parse_webhook(body)
    except WebhookPayloadError as error:
        raise InvalidWebhookError(str(error), field=error.field) from error
    if len(changes) > MAX_CHANGES:
        raise InvalidWebhookError(
            f"A delivery holds at most {MAX_CHANGES} entity changes; nothing was stored.",
            field="body",
        )
    receipt = await service.store(session, changes)
    for realm_id, entity in sorted(service.stale_lists(changes)):
        await cache.drop(realm_id, entity)
    return receipt
