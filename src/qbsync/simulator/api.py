"""The Accounting API subset under /v3/company/{realmId}: reads, writes, query, batch, CDC."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from fastapi import APIRouter, Request
from starlette.responses import Response

from qbsync.simulator import batch, cdc, query
from qbsync.simulator.errors import (
    QboError,
    duplicate_request_id,
    invalid_property,
    unsupported,
)
from qbsync.simulator.jsonio import JsonObject, json_response, loads
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.store import ALL_ENTITIES, BY_LOWER_NAME, WRITABLE, StoredResponse

# Intuit's limits on a requestid: 50 characters, 36 on a batch request.
REQUESTID_MAX = 50
BATCH_REQUESTID_MAX = 36


def build_router(state: SimulatorState) -> APIRouter:
    router = APIRouter(prefix="/v3/company/{realm_id}")

    def answer(realm_id: str, produce: Callable[[], JsonObject]) -> Response:
        time = state.response_time(realm_id)
        try:
            return json_response({**produce(), "time": time})
        except QboError as error:
            return json_response({"Fault": error.fault_json(), "time": time}, error.status_code)

    async def once(
        realm_id: str, request: Request, fingerprint: str, produce: Callable[[], JsonObject]
    ) -> Response:
        """With `requestid`, the first answer is stored and replayed byte for byte.

        Replayed only to the same kind of request (`fingerprint`: entity and operation, or
        "batch"); the id used for anything else is refused with fault 600, never answered
        with another entity's response.
        """
        requestid = request.query_params.get("requestid")
        if not requestid:
            return answer(realm_id, produce)
        state.stats.record_requestid(realm_id, requestid)
        company = state.companies[realm_id]
        stored = company.responses.get(requestid)
        if stored is not None and stored.fingerprint != fingerprint:
            return answer(realm_id, lambda: _raise(duplicate_request_id(requestid)))
        if stored is None:
            limit = BATCH_REQUESTID_MAX if fingerprint == "batch" else REQUESTID_MAX
            response = answer(realm_id, lambda: _checked_requestid(requestid, limit, produce))
            stored = StoredResponse(response.status_code, bytes(response.body), fingerprint)
            company.responses[requestid] = stored
        return Response(stored.body, stored.status_code, media_type="application/json")

    @router.get("/companyinfo/{object_id}")
    async def company_info(realm_id: str, object_id: str) -> Response:
        ledger = state.ledger(realm_id)
        return answer(realm_id, lambda: {"CompanyInfo": ledger.read("CompanyInfo", "1")})

    @router.get("/preferences")
    async def preferences(realm_id: str) -> Response:
        ledger = state.ledger(realm_id)
        return answer(realm_id, lambda: {"Preferences": ledger.read("Preferences", "1")})

    @router.get("/query")
    async def query_by_get(realm_id: str, request: Request) -> Response:
        statement = request.query_params.get("query", "")
        company = state.companies[realm_id]
        return answer(realm_id, lambda: {"QueryResponse": query.run(company, statement)})

    @router.post("/query")
    async def query_by_post(realm_id: str, request: Request) -> Response:
        raw = await request.body()
        company = state.companies[realm_id]
        return answer(realm_id, lambda: {"QueryResponse": query.run(company, _text(raw))})

    @router.get("/cdc")
    async def change_data_capture(realm_id: str, request: Request) -> Response:
        params = request.query_params
        config = state.config
        return answer(
            realm_id,
            lambda: cdc.run(
                state.companies[realm_id],
                state.clock.timestamp(),
                params.get("entities"),
                params.get("changedSince"),
                window_days=config.cdc_window_days,
                max_objects=config.cdc_max_objects,
            ),
        )

    @router.post("/batch")
    async def run_batch(realm_id: str, request: Request) -> Response:
        raw = await request.body()
        ledger = state.ledger(realm_id)
        with_requestid = "requestid" in request.query_params
        return await once(
            realm_id,
            request,
            "batch",
            lambda: batch.run(
                ledger, _json(raw), state.config.batch_max_items, with_requestid=with_requestid
            ),
        )

    @router.get("/{resource}/{object_id}")
    async def read(realm_id: str, resource: str, object_id: str) -> Response:
        ledger = state.ledger(realm_id)

        def produce() -> JsonObject:
            entity = _entity(resource, ALL_ENTITIES)
            return {entity: ledger.read(entity, object_id)}

        return answer(realm_id, produce)

    @router.post("/{resource}")
    async def write(realm_id: str, resource: str, request: Request) -> Response:
        raw = await request.body()
        params = request.query_params
        include = frozenset(filter(None, params.get("include", "").lower().split(",")))
        ledger = state.ledger(realm_id)

        def produce() -> JsonObject:
            entity = _entity(resource, WRITABLE)
            return {entity: ledger.write(entity, params.get("operation"), _json(raw), include)}

        fingerprint = " ".join(
            (resource.lower(), _operation(params.get("operation"), raw), *sorted(include))
        )
        return await once(realm_id, request, fingerprint, produce)

    return router


def _operation(operation: str | None, raw: bytes) -> str:
    """The operation a write performs: as the URL says, else create or update by its Id."""
    if operation:
        return operation.lower()
    try:
        body = loads(raw)
    except ValueError:
        return "create"
    return "update" if isinstance(body, dict) and "Id" in body else "create"


def _checked_requestid(requestid: str, limit: int, produce: Callable[[], JsonObject]) -> JsonObject:
    if len(requestid) > limit:
        raise invalid_property(
            "requestid", f"requestid can be at most {limit} characters long: {requestid}"
        )
    return produce()


def _raise(error: QboError) -> NoReturn:
    raise error


def _entity(resource: str, allowed: frozenset[str]) -> str:
    entity = BY_LOWER_NAME.get(resource.lower())
    if entity is None or entity not in allowed:
        raise unsupported(f"Unsupported resource or operation: {resource}")
    return entity


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unsupported("The request body is not valid UTF-8.") from exc


def _json(raw: bytes) -> object:
    try:
        return loads(_text(raw))
    except ValueError as exc:
        raise invalid_property("", f"Request body is not valid JSON: {exc}") from exc
