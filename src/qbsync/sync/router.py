"""`POST /v1/events`: the platform's signed events, one or a batch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from qbsync.deps import SessionDep, SettingsDep
from qbsync.errors import problem_responses
from qbsync.sync import intake
from qbsync.sync.events import EVENT_TYPES, MAX_BATCH, AcceptedEvents, Envelope

router = APIRouter(tags=["events"], responses=problem_responses(413, 500, 503))


async def signed_body(request: Request, settings: SettingsDep) -> tuple[bytes, str]:
    """The raw body and its `webhook-id`, once the signature holds: nothing is read before."""
    body = await request.body()
    secret = settings.platform.webhook_secret.get_secret_value()
    return body, intake.verify(secret, body, request.headers)


SignedBody = Annotated[tuple[bytes, str], Depends(signed_body)]


def _data_schema(event_type: str, model: str) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{model}"}
    if event_type == "invoice.voided":
        # intake.parse refuses a voided invoice whose snapshot does not say so.
        return {"allOf": [reference, {"properties": {"status": {"const": "void"}}}]}
    return reference


def event_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON Schema (one event or a batch, each type with its data's shape),
    and the component schemas it refers to."""
    variants: list[dict[str, Any]] = []
    components: dict[str, Any] = {}
    envelope = Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, kind in EVENT_TYPES.items():
        data = kind.data.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(data.pop("$defs", {}))
        components[kind.data.__name__] = data
        variant = {
            **envelope,
            "title": name,
            "properties": {
                **envelope["properties"],
                "type": {"const": name},
                "data": _data_schema(name, kind.data.__name__),
            },
        }
        variant.pop("$defs", None)
        variants.append(variant)
    one = {"oneOf": variants}
    batch = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_BATCH,
        # In a batch each event needs an id of its own: a string, never null.
        "items": {
            "allOf": [
                one,
                {"required": ["id"], "properties": {"id": {"type": "string", "maxLength": 120}}},
            ]
        },
    }
    return {"oneOf": [one, batch]}, components


BODY_SCHEMA, EVENT_COMPONENTS = event_schemas()


@router.post(
    "/v1/events",
    status_code=202,
    response_model=AcceptedEvents,
    summary="Platform events in: one event or a batch of up to 100",
    description="Signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
    "`webhook-signature`) over the raw body with `QBSYNC_PLATFORM__WEBHOOK_SECRET`; a bad or "
    "missing signature, or a timestamp more than 5 minutes off, is 401 and nothing is stored. "
    "Each event is deduplicated by its `id` (a single event without one: the `webhook-id`); a "
    "redelivery is acknowledged and changes nothing. Every field at fault in every event is "
    "named in one 422.",
    responses=problem_responses(401, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BODY_SCHEMA}},
        }
    },
)
async def receive_events(signed: SignedBody, session: SessionDep) -> AcceptedEvents:
    body, webhook_id = signed
    events = intake.parse(body, webhook_id)
    return await intake.store(session, events)
