"""The QuickBooks Online Accounting API for one company (realm).

Cheap to build per job: it holds no connection of its own, only the shared `httpx.AsyncClient`,
the company's token provider and the shared rate limiter. Every call sends `minorversion`, asks
for JSON, passes through the per-company limiter, refreshes the access token once on a 401, and
rides out 429 / 5xx / network errors within the configured bound.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote as quote_path

import httpx
from pydantic import ValidationError

from qbsync.qbo import codec
from qbsync.qbo.config import ApiCall, QboConfig
from qbsync.qbo.entities import (
    ENTITY_TYPES,
    CompanyInfo,
    Preferences,
    QboEntity,
    entity_from_wire,
)
from qbsync.qbo.errors import QboAuthenticationError, QboError, QboNetworkError, QboServerError
from qbsync.qbo.faults import INTUIT_TID_HEADER, fault_error, read_response
from qbsync.qbo.query import MAX_RESULTS, count_statement, select
from qbsync.qbo.ratelimit import SlotLimiter
from qbsync.qbo.realm import is_realm_id
from qbsync.qbo.retry import with_retries

E = TypeVar("E", bound=QboEntity)

MAX_REQUEST_ID_LENGTH = 50
MAX_BATCH_REQUEST_ID_LENGTH = 36
MAX_BATCH_ITEMS = 30
MAX_BATCH_ID_LENGTH = 10
CDC_MAX_OBJECTS = 1000


class AccessTokenProvider(Protocol):
    """The company's current access token; with `force_refresh`, a newly refreshed one."""

    async def access_token(self, *, force_refresh: bool = False) -> str: ...


@dataclass(frozen=True)
class BatchOperation:
    """One write in a batch. `update` is sparse; `delete` sends only the entity's Id and SyncToken.

    `bid` is at most 10 characters (Intuit's limit when a requestid is used).
    """

    bid: str
    operation: Literal["create", "update", "delete"]
    entity: QboEntity

    def __post_init__(self) -> None:
        if not 1 <= len(self.bid) <= MAX_BATCH_ID_LENGTH:
            raise ValueError(f"bId must be 1 to {MAX_BATCH_ID_LENGTH} characters: {self.bid!r}")
        _entity_name(self.entity)  # refuses a bare QboEntity, which has no QuickBooks name
        if self.operation != "create":
            _require_id_and_token(self.entity)

    def item(self) -> dict[str, Any]:
        if self.operation == "create":
            payload = self.entity.to_payload()
        elif self.operation == "update":
            payload = {**self.entity.to_payload(), "sparse": True}
        else:
            payload = {"Id": self.entity.id, "SyncToken": self.entity.sync_token}
        return {"bId": self.bid, "operation": self.operation, _entity_name(self.entity): payload}


@dataclass(frozen=True)
class BatchQuery:
    """One query in a batch: a single page, as the statement's own STARTPOSITION/MAXRESULTS say.

    Build the statement with `query.select` / `query.count_statement` (values with `quote`).
    """

    bid: str
    statement: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.bid) <= MAX_BATCH_ID_LENGTH:
            raise ValueError(f"bId must be 1 to {MAX_BATCH_ID_LENGTH} characters: {self.bid!r}")
        if not self.statement.strip():
            raise ValueError("a batch query needs a statement")

    def item(self) -> dict[str, Any]:
        return {"bId": self.bid, "Query": self.statement}


BatchItem = BatchOperation | BatchQuery


@dataclass(frozen=True)
class BatchItemResult:
    """A write's `entity`, or a query's `rows` (and `total_count` for COUNT(*)); else `error`."""

    bid: str
    entity: QboEntity | None = None
    error: QboError | None = None
    rows: tuple[QboEntity, ...] = ()
    total_count: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CdcResult:
    """Changed objects by entity name; deleted ones have `is_deleted` and little else."""

    changes: dict[str, list[QboEntity]]
    object_count: int
    # QuickBooks' clock when it answered (the body's `time`): where the next read starts.
    server_time: datetime | None = None
    # The most one answer holds (Intuit: 1,000).
    cap: int = CDC_MAX_OBJECTS

    @property
    def truncated(self) -> bool:
        """QuickBooks stops at its cap without saying so: narrow the window and ask again."""
        return self.object_count >= self.cap


@dataclass(frozen=True)
class _Reply:
    body: dict[str, Any]
    intuit_tid: str | None


class QboClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: QboConfig,
        *,
        realm_id: str,
        tokens: AccessTokenProvider,
        limiter: SlotLimiter,
    ) -> None:
        if not is_realm_id(realm_id):
            raise ValueError(f"not a QuickBooks realm id: {realm_id!r}")
        self._http = http
        self._config = config
        self._realm_id = realm_id
        self._tokens = tokens
        self._limiter = limiter
        self._base_url = f"{config.endpoints.api_base_url.rstrip('/')}/v3/company/{realm_id}"

    @property
    def realm_id(self) -> str:
        return self._realm_id

    async def company_info(self) -> CompanyInfo:
        reply = await self._request("GET", f"companyinfo/{self._realm_id}")
        return _entity(reply, CompanyInfo)

    async def preferences(self) -> Preferences:
        return _entity(await self._request("GET", "preferences"), Preferences)

    async def get(self, entity_type: type[E], entity_id: str) -> E:
        name = _type_name(entity_type)
        reply = await self._request("GET", f"{name.lower()}/{quote_path(entity_id, safe='')}")
        return _entity(reply, entity_type)

    async def query(
        self,
        entity_type: type[E],
        where: str | None = None,
        *,
        order_by: str | None = None,
        page_size: int = MAX_RESULTS,
    ) -> AsyncIterator[E]:
        """Every matching object, fetched page by page (build `where` with `query.quote`)."""
        name = _type_name(entity_type)
        start = 1
        previous_first: Any = None
        while True:
            statement = select(
                name, where, order_by=order_by, start_position=start, max_results=page_size
            )
            reply = await self._request("GET", "query", params={"query": statement})
            rows = _query_rows(reply, name, start)
            # A server that ignores STARTPOSITION would hand back the same full page forever.
            first = rows[0].get("Id") if rows and isinstance(rows[0], Mapping) else None
            if start > 1 and first is not None and first == previous_first:
                raise QboServerError(
                    f"QuickBooks repeated the query page before position {start}",
                    intuit_tid=reply.intuit_tid,
                )
            previous_first = first
            for row in rows:
                yield _validate(entity_type, row, reply)
            if len(rows) < page_size:
                return
            start += len(rows)

    async def query_all(
        self, entity_type: type[E], where: str | None = None, *, order_by: str | None = None
    ) -> list[E]:
        return [row async for row in self.query(entity_type, where, order_by=order_by)]

    async def count(self, entity_type: type[QboEntity], where: str | None = None) -> int:
        statement = count_statement(_type_name(entity_type), where)
        reply = await self._request("GET", "query", params={"query": statement})
        response = reply.body.get("QueryResponse")
        if not isinstance(response, Mapping):
            raise _unexpected(reply, "QueryResponse")
        total = response.get("totalCount", 0)
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise _unexpected(reply, "QueryResponse.totalCount")
        return total

    async def create(self, entity: E, *, requestid: str) -> E:
        _check_request_id(requestid, MAX_REQUEST_ID_LENGTH)
        name = _entity_name(entity)
        reply = await self._request(
            "POST", name.lower(), params={"requestid": requestid}, body=entity.to_payload()
        )
        return _entity(reply, type(entity))

    async def update(self, entity: E, *, requestid: str) -> E:
        """A sparse update: only the fields set on `entity` change. Needs Id and SyncToken."""
        _check_request_id(requestid, MAX_REQUEST_ID_LENGTH)
        name = _entity_name(entity)
        _require_id_and_token(entity)
        reply = await self._request(
            "POST",
            name.lower(),
            params={"requestid": requestid},
            body={**entity.to_payload(), "sparse": True},
        )
        return _entity(reply, type(entity))

    async def delete(
        self, entity_type: type[E], entity_id: str, sync_token: str, *, requestid: str
    ) -> E:
        """Hard delete (transactions). Name lists cannot be deleted: update `active=False`."""
        _check_request_id(requestid, MAX_REQUEST_ID_LENGTH)
        name = _type_name(entity_type)
        reply = await self._request(
            "POST",
            name.lower(),
            params={"operation": "delete", "requestid": requestid},
            body={"Id": entity_id, "SyncToken": sync_token},
        )
        return _entity(reply, entity_type)

    async def void(
        self, entity_type: type[E], entity_id: str, sync_token: str, *, requestid: str
    ) -> E:
        """Invoices have their own void operation; payments and others void by a sparse update."""
        _check_request_id(requestid, MAX_REQUEST_ID_LENGTH)
        name = _type_name(entity_type)
        body: dict[str, Any] = {"Id": entity_id, "SyncToken": sync_token}
        params = {"operation": "void", "requestid": requestid}
        if name != "Invoice":
            params = {"operation": "update", "include": "void", "requestid": requestid}
            body["sparse"] = True
        reply = await self._request("POST", name.lower(), params=params, body=body)
        return _entity(reply, entity_type)

    async def batch(
        self, items: Sequence[BatchItem], *, requestid: str | None = None
    ) -> list[BatchItemResult]:
        """Up to 30 writes and queries in one call; one result per item, in the order given.

        Items succeed or fail on their own: a failed item carries its typed error. The call
        itself raises only when the whole request failed. A batch with a write needs the
        caller's `requestid`; one of queries only may leave it out.
        """
        if requestid is None:
            if any(isinstance(item, BatchOperation) for item in items):
                raise ValueError("a batch with writes needs a requestid")
            # Intuit needs no requestid for reads (python-quickbooks sends none), but
            # `_request` refuses every POST without one so that no write can go out unkeyed.
            # A fresh random id is harmless: a resend of this batch gets Intuit's first answer,
            # as current as a new read. A fixed one would replay an old answer to a later call.
            requestid = uuid.uuid4().hex
        _check_request_id(requestid, MAX_BATCH_REQUEST_ID_LENGTH)
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_ITEMS} items")
        bids = [item.bid for item in items]
        if len(set(bids)) != len(bids):
            raise ValueError("bIds must be unique within a batch")
        reply = await self._request(
            "POST",
            "batch",
            params={"requestid": requestid},
            body={"BatchItemRequest": [item.item() for item in items]},
            batch=True,
            metered=any(isinstance(item, BatchQuery) for item in items),
        )
        raw_items = reply.body.get("BatchItemResponse")
        if not isinstance(raw_items, list):
            raise _unexpected(reply, "BatchItemResponse")
        by_bid = {str(raw.get("bId")): raw for raw in raw_items if isinstance(raw, Mapping)}
        return [_batch_result(item, by_bid.get(item.bid), reply.intuit_tid) for item in items]

    async def cdc(
        self, entity_types: Sequence[type[QboEntity]], changed_since: datetime
    ) -> CdcResult:
        """Objects of these types changed since `changed_since` (at most 30 days back).

        When `truncated`, QuickBooks returned its maximum of 1000 objects and more may have
        changed: split the window and ask again.
        """
        if changed_since.tzinfo is None:
            raise ValueError("changed_since must carry a UTC offset")
        names = [_type_name(entity_type) for entity_type in entity_types]
        if not names:
            raise ValueError("CDC needs at least one entity type")
        reply = await self._request(
            "GET",
            "cdc",
            params={"entities": ",".join(names), "changedSince": cdc_moment(changed_since)},
        )
        responses = reply.body.get("CDCResponse")
        if not isinstance(responses, list):
            raise _unexpected(reply, "CDCResponse")
        changes: dict[str, list[QboEntity]] = {}
        for response in responses:
            groups = response.get("QueryResponse", []) if isinstance(response, Mapping) else []
            for group in groups if isinstance(groups, list) else []:
                for key, rows in group.items() if isinstance(group, Mapping) else ():
                    if isinstance(rows, list):
                        changes.setdefault(key, []).extend(
                            _from_wire(key, row, reply.intuit_tid)
                            for row in rows
                            if isinstance(row, dict)
                        )
        return CdcResult(
            changes=changes,
            object_count=sum(len(rows) for rows in changes.values()),
            server_time=_server_time(reply.body.get("time")),
            cap=self._config.cdc_max_objects,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        batch: bool = False,
        metered: bool | None = None,
    ) -> _Reply:
        if method != "GET" and not (params or {}).get("requestid"):
            # Retries resend writes; only a requestid makes Intuit answer a repeat with the
            # first response instead of applying it twice.
            raise ValueError(f"a {method} to {path} needs a requestid")
        url = f"{self._base_url}/{path}"
        query = {"minorversion": str(self._config.minor_version), **(params or {})}
        content = None if body is None else codec.dumps(body)
        refreshed = False
        operation = f"{method} {path.split('/', 1)[0]}"
        if params and params.get("operation"):
            operation += f"?operation={params['operation']}"
        call = ApiCall(
            operation=operation,
            metered=method == "GET" if metered is None else metered,
            realm_id=self._realm_id,
        )

        async def attempt() -> _Reply:
            nonlocal refreshed
            token = await self._tokens.access_token()
            try:
                return await self._send(method, url, query, content, token, call, batch=batch)
            except QboAuthenticationError:
                if refreshed:
                    raise
                # Once per call: a token that fails right after a refresh will not get better.
                refreshed = True
                token = await self._tokens.access_token(force_refresh=True)
                return await self._send(method, url, query, content, token, call, batch=batch)

        return await with_retries(attempt, self._config.retry)

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str],
        content: bytes | None,
        token: str,
        call: ApiCall,
        *,
        batch: bool,
    ) -> _Reply:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        failure: httpx.RequestError | None = None
        async with self._limiter.slot(
            self._realm_id, batch=batch, max_wait_seconds=self._config.limiter_wait_seconds
        ):
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=self._config.timeout_seconds,
                )
            except httpx.RequestError as error:
                failure = error
        if not isinstance(failure, httpx.ConnectError | httpx.ConnectTimeout):
            # Every request Intuit may have received counts there: an answered one (refused
            # or retried too), and one whose answer was lost or timed out. Only a request that
            # never connected is left out.
            await self._count(call)
        if failure is not None:
            # Transport failures, and a body that could not be decoded (bad gzip).
            raise QboNetworkError(
                f"QuickBooks could not be reached ({type(failure).__name__})", secrets=(token,)
            ) from failure
        body = read_response(response, secrets=(token,))
        return _Reply(body=body, intuit_tid=response.headers.get(INTUIT_TID_HEADER))

    async def _count(self, call: ApiCall) -> None:
        if self._config.call_observer is not None:
            self._config.call_observer(call)
        if self._config.call_recorder is not None:
            # Outside the limiter's slot: recording never holds the company's capacity.
            await self._config.call_recorder(call)


def cdc_moment(moment: datetime) -> str:
    """`changedSince` as Intuit's reference writes it: whole seconds with an offset. The
    fraction is dropped (rounded down), so nothing in that second is skipped."""
    return moment.replace(microsecond=0).isoformat()


def _server_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _batch_result(
    sent: BatchItem, item: Mapping[str, Any] | None, intuit_tid: str | None
) -> BatchItemResult:
    bid = sent.bid
    error: QboError
    if item is None:
        error = QboServerError(
            f"QuickBooks returned no result for batch item {bid}", intuit_tid=intuit_tid
        )
        return BatchItemResult(bid=bid, entity=None, error=error)
    # The key's presence is the signal: an empty Fault is still a failure, never an entity.
    fault = item.get("Fault")
    if fault is None:
        fault = item.get("fault")
    if fault is not None:
        if not isinstance(fault, Mapping):
            fault = {}
        error = fault_error(fault, intuit_tid=intuit_tid)
        return BatchItemResult(bid=bid, entity=None, error=error)
    if isinstance(sent, BatchQuery):
        return _query_result(bid, item.get("QueryResponse"), intuit_tid)
    for key, value in item.items():
        if key not in ("bId", "Fault", "fault") and isinstance(value, dict):
            try:
                entity = _from_wire(key, value, intuit_tid)
            except QboServerError as invalid:
                return BatchItemResult(bid=bid, entity=None, error=invalid)
            return BatchItemResult(bid=bid, entity=entity, error=None)
    error = QboServerError(f"batch item {bid} carried no entity", intuit_tid=intuit_tid)
    return BatchItemResult(bid=bid, entity=None, error=error)


def _query_result(bid: str, response: Any, intuit_tid: str | None) -> BatchItemResult:
    """`{"<Entity>": [rows], "startPosition": …}`, or `{"totalCount": n}` for COUNT(*)."""
    if not isinstance(response, Mapping):
        error = QboServerError(f"batch item {bid} carried no QueryResponse", intuit_tid=intuit_tid)
        return BatchItemResult(bid=bid, error=error)
    total = response.get("totalCount")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        error = QboServerError(f"batch item {bid} carried an odd totalCount", intuit_tid=intuit_tid)
        return BatchItemResult(bid=bid, error=error)
    rows: list[QboEntity] = []
    for key, value in response.items():
        # Lists are the rows; startPosition, maxResults and totalCount are plain numbers.
        for row in value if isinstance(value, list) else ():
            if not isinstance(row, dict):
                error = QboServerError(
                    f"batch item {bid} carried a {key} row that is not an object",
                    intuit_tid=intuit_tid,
                )
                return BatchItemResult(bid=bid, error=error)
            try:
                rows.append(_from_wire(key, row, intuit_tid))
            except QboServerError as invalid:
                return BatchItemResult(bid=bid, error=invalid)
    return BatchItemResult(bid=bid, rows=tuple(rows), total_count=total)


def _entity(reply: _Reply, entity_type: type[E]) -> E:
    name = _type_name(entity_type)
    data = reply.body.get(name)
    if not isinstance(data, dict):
        raise _unexpected(reply, name)
    return _validate(entity_type, data, reply)


def _validate(entity_type: type[E], data: Any, reply: _Reply) -> E:
    return _checked(lambda: entity_type.model_validate(data), entity_type, reply.intuit_tid)


def _from_wire(name: str, data: dict[str, Any], intuit_tid: str | None) -> QboEntity:
    entity_type = ENTITY_TYPES.get(name, QboEntity)
    return _checked(lambda: entity_from_wire(name, data), entity_type, intuit_tid)


def _checked(parse: Callable[[], E], entity_type: type[QboEntity], tid: str | None) -> E:
    """A body that does not fit our model is QuickBooks answering oddly: a QboError like any.

    The message names the fields, never their values (which could be anything).
    """
    try:
        return parse()
    except ValidationError as invalid:
        fields = sorted(
            {".".join(str(part) for part in error["loc"]) for error in invalid.errors()}
        )
        raise QboServerError(
            f"QuickBooks sent a {entity_type.entity_name or 'record'} that does not fit: "
            + ", ".join(fields[:5]),
            intuit_tid=tid,
        ) from None


def _query_rows(reply: _Reply, name: str, start: int) -> list[Any]:
    response = reply.body.get("QueryResponse")
    if not isinstance(response, Mapping):
        raise _unexpected(reply, "QueryResponse")
    rows = response.get(name, [])
    if not isinstance(rows, list):
        raise _unexpected(reply, f"QueryResponse.{name}")
    answered = response.get("startPosition")
    if rows and answered is not None and str(answered) != str(start):
        raise QboServerError(
            f"QuickBooks answered the query page at position {answered}, not {start}",
            intuit_tid=reply.intuit_tid,
        )
    return rows


def _unexpected(reply: _Reply, expected: str) -> QboServerError:
    return QboServerError(
        f"QuickBooks answered without the expected {expected}", intuit_tid=reply.intuit_tid
    )


def _type_name(entity_type: type[QboEntity]) -> str:
    if not entity_type.entity_name:
        raise TypeError(f"{entity_type.__name__} is not a QuickBooks entity type")
    return entity_type.entity_name


def _entity_name(entity: QboEntity) -> str:
    return _type_name(type(entity))


def _require_id_and_token(entity: QboEntity) -> None:
    if not entity.id or entity.sync_token is None:
        raise ValueError(f"{_entity_name(entity)} needs its Id and current SyncToken")


def _check_request_id(requestid: str, limit: int) -> None:
    if not requestid or len(requestid) > limit or not requestid.isprintable() or " " in requestid:
        raise ValueError(f"requestid must be 1 to {limit} printable characters without spaces")
