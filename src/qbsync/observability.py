"""Structured JSON logs with request ids, Prometheus metrics, and QuickBooks calls counted per
company per day."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TextIO, cast

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbsync.errors import INTERNAL_ERROR_DETAIL, PROBLEM_JSON, problem_body
from qbsync.qbo.config import ApiCall

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

HTTP_REQUESTS = Counter(
    "qbsync_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "qbsync_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
JOBS = Counter("qbsync_jobs_total", "Jobs run by the worker", ["function", "outcome"])
JOB_LATENCY = Histogram("qbsync_job_duration_seconds", "Job run time", ["function"])
INTUIT_CALLS = Counter(
    "qbsync_intuit_calls_total",
    "Calls to QuickBooks' Accounting API; kind coreplus is what Intuit meters (P7)",
    ["kind", "operation"],
)


def count_intuit_call(call: ApiCall) -> None:
    INTUIT_CALLS.labels(call.kind, call.operation).inc()


# Long enough to read yesterday's numbers after midnight UTC, short enough to leave no litter.
CALL_COUNT_SECONDS = 4 * 24 * 3600
# A slow Redis must not hold up the QuickBooks call it is counting for long.
CALL_COUNT_TIMEOUT_SECONDS = 1.0
_calls_log = structlog.get_logger("qbsync.intuit_calls")


@dataclass(frozen=True)
class CallsOnDay:
    day: date
    core: int
    coreplus: int


class CompanyCallCounter:
    """Accounting API calls per company per UTC day, kept in Redis so that every API replica
    and worker adds to the same numbers (Intuit meters CorePlus calls: P7).

    One hash per company and day, `{prefix}:calls:{realm_id}:{YYYY-MM-DD}`, fields `core` and
    `coreplus`.
    """

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix

    def key(self, realm_id: str, day: date) -> str:
        return f"{self._prefix}:calls:{realm_id}:{day.isoformat()}"

    async def record(self, call: ApiCall) -> None:
        """Count one answered call; never raises, because the call itself has succeeded or
        failed on its own merits and a lost count is only a number too low."""
        key = self.key(call.realm_id, _today())
        try:
            async with asyncio.timeout(CALL_COUNT_TIMEOUT_SECONDS):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hincrby(key, call.kind, 1)
                    pipe.expire(key, CALL_COUNT_SECONDS)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            # The type only: a Redis error's text can carry its URL, password included.
            _calls_log.warning("intuit_call_not_counted", error=type(error).__name__)

    async def on_day(self, realm_id: str, day: date | None = None) -> CallsOnDay:
        """The company's counts for a UTC day (today by default); Redis errors propagate."""
        day = day or _today()
        key = self.key(realm_id, day)
        # redis-py types its hash commands for both clients at once; this one is async.
        reading = cast("Awaitable[dict[bytes | str, bytes | str]]", self._redis.hgetall(key))
        counts = await reading
        values = {_text(name): int(value) for name, value in counts.items()}
        return CallsOnDay(day=day, core=values.get("core", 0), coreplus=values.get("coreplus", 0))


def _today() -> date:
    return datetime.now(UTC).date()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# Keys whose values must never reach a log line, whatever logged them.
_REDACTED_KEYS = re.compile(
    r"(token|secret|password|authorization|signature|cookie|api_key|code$)", re.IGNORECASE
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and _REDACTED_KEYS.search(key):
            event[key] = "[redacted]"
    return event


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _CurrentStderr())),
        # Not cached: a logger picks up the configuration in force when it logs (tests rely on it).
        cache_logger_on_first_use=False,
    )


class RequestContextMiddleware:
    """Request id in, request id out, one access log line and the HTTP metrics per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("qbsync.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        status_sent = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                message.setdefault("headers", []).append(
                    (REQUEST_ID_HEADER.encode(), request_id.encode())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The traceback goes to the log with the request id; the caller sees neither.
            self.log.exception("unhandled_error")
            if status_sent:
                raise
            status = 500
            body = problem_body(500, "internal_error", INTERNAL_ERROR_DETAIL, request_id=request_id)
            response = JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            self.log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _route_template(scope: Scope) -> str:
    # The template, not the raw path: ids in paths would explode the metric's label space.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
