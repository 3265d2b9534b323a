"""Structured JSON logs with request ids, Prometheus metrics, and QuickBooks calls counted per
company per day and per month, against a monthly budget of metered reads (P7)."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
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
# Per company: Intuit bills CorePlus per app, and one busy company can spend it for all (P7).
INTUIT_COMPANY_CALLS = Counter(
    "qbsync_intuit_company_calls_total",
    "Calls to QuickBooks' Accounting API per company; kind coreplus is what Intuit meters (P7)",
    ["realm_id", "kind"],
)
READ_BUDGET_WARNINGS = Counter(
    "qbsync_read_budget_warnings_total",
    "Times a company's metered reads crossed 80 % of its monthly budget, seen once across "
    "every process (P7)",
    ["realm_id"],
)


def count_intuit_call(call: ApiCall) -> None:
    INTUIT_CALLS.labels(call.kind, call.operation).inc()
    INTUIT_COMPANY_CALLS.labels(call.realm_id, call.kind).inc()


# Long enough to read yesterday's numbers after midnight UTC, short enough to leave no litter.
CALL_COUNT_SECONDS = 4 * 24 * 3600
# A month's numbers stay readable for a while after it ends (each call renews this), no longer.
MONTH_COUNT_SECONDS = 40 * 24 * 3600
# A slow Redis must not hold up the QuickBooks call it is counting for long.
CALL_COUNT_TIMEOUT_SECONDS = 1.0
# The share of a company's monthly CorePlus budget at which the platform is warned (P7).
READ_BUDGET_WARN_PERCENT = 80
# The default of QBSYNC_INTUIT__MONTHLY_COREPLUS_BUDGET, for counters built without settings.
DEFAULT_MONTHLY_COREPLUS_BUDGET = 20_000
_calls_log = structlog.get_logger("qbsync.intuit_calls")


@dataclass(frozen=True)
class CallsOnDay:
    day: date
    core: int
    coreplus: int


@dataclass(frozen=True)
class CallsInMonth:
    """One company's calls in one UTC month against its CorePlus budget (P7)."""

    month: str  # YYYY-MM
    core: int
    coreplus: int
    budget: int
    used_ratio: float

    @property
    def past_warning_line(self) -> bool:
        """In whole calls, as `CompanyCallCounter.record` detects the crossing."""
        return self.coreplus >= read_budget_warn_at(self.budget)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def read_budget_warn_at(budget: int) -> int:
    """The CorePlus call that crosses READ_BUDGET_WARN_PERCENT of `budget` (rounded up)."""
    return (budget * READ_BUDGET_WARN_PERCENT + 99) // 100


class CompanyCallCounter:
    """Accounting API calls per company per UTC day and per UTC month, kept in Redis so that
    every API replica and worker adds to the same numbers (Intuit meters CorePlus calls: P7).

    One hash per company and day, `{prefix}:calls:{realm_id}:{YYYY-MM-DD}`, and one per company
    and month, `{prefix}:calls-month:{realm_id}:{YYYY-MM}`, fields `core` and `coreplus`.

    The call whose increment makes the month's CorePlus count reach 80 % of the budget is told
    apart by HINCRBY's answer, which exactly one process receives, whatever the concurrency:
    that process logs it, counts it in `READ_BUDGET_WARNINGS` and awaits `on_budget_crossed`
    with the realm id (the app enqueues the job that tells the platform).
    """

    def __init__(
        self,
        redis: Redis,
        key_prefix: str,
        *,
        monthly_coreplus_budget: int = DEFAULT_MONTHLY_COREPLUS_BUDGET,
        on_budget_crossed: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if monthly_coreplus_budget < 1:
            raise ValueError("monthly_coreplus_budget must be at least 1")
        self._redis = redis
        self._prefix = key_prefix
        self._budget = monthly_coreplus_budget
        self._warn_at = read_budget_warn_at(monthly_coreplus_budget)
        self._on_budget_crossed = on_budget_crossed
        self._clock = clock

    def key(self, realm_id: str, day: date) -> str:
        return f"{self._prefix}:calls:{realm_id}:{day.isoformat()}"

    def month_key(self, realm_id: str, month: date) -> str:
        return f"{self._prefix}:calls-month:{realm_id}:{_month(month)}"

    async def record(self, call: ApiCall) -> None:
        """Count one answered call; never raises, because the call itself has succeeded or
        failed on its own merits and a lost count is only a number too low (a lost crossing
        is caught up by `qbsync.connections.read_budget.warn_if_over_budget`)."""
        # One reading of the clock: a call at midnight counts in the day and month it belongs to.
        today = self._today()
        day_key = self.key(call.realm_id, today)
        month_key = self.month_key(call.realm_id, today)
        try:
            async with asyncio.timeout(CALL_COUNT_TIMEOUT_SECONDS):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hincrby(day_key, call.kind, 1)
                    pipe.expire(day_key, CALL_COUNT_SECONDS)
                    pipe.hincrby(month_key, call.kind, 1)
                    pipe.expire(month_key, MONTH_COUNT_SECONDS)
                    answers = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            # The type only: a Redis error's text can carry its URL, password included.
            _calls_log.warning("intuit_call_not_counted", error=type(error).__name__)
            return
        # Equality, not >=: every later call sees a higher count, so only one warns.
        if call.metered and int(answers[2]) == self._warn_at:
            await self._budget_crossed(call.realm_id, _month(today))

    async def _budget_crossed(self, realm_id: str, month: str) -> None:
        _calls_log.warning(
            "read_budget_80_reached",
            realm_id=realm_id,
            month=month,
            coreplus_calls=self._warn_at,
            budget=self._budget,
        )
        READ_BUDGET_WARNINGS.labels(realm_id).inc()
        if self._on_budget_crossed is None:
            return
        try:
            async with asyncio.timeout(CALL_COUNT_TIMEOUT_SECONDS):
                await self._on_budget_crossed(realm_id)
        except (RedisError, OSError, TimeoutError) as error:
            # The reconciliation's own check sends the warning on its next run.
            _calls_log.warning(
                "read_budget_warning_not_enqueued", realm_id=realm_id, error=type(error).__name__
            )

    async def on_day(self, realm_id: str, day: date | None = None) -> CallsOnDay:
        """The company's counts for a UTC day (today by default); Redis errors propagate."""
        day = day or self._today()
        values = await self._counts(self.key(realm_id, day))
        return CallsOnDay(day=day, core=values.get("core", 0), coreplus=values.get("coreplus", 0))

    async def in_month(self, realm_id: str, month: date | None = None) -> CallsInMonth:
        """The company's counts for the UTC month holding `month` (this month by default),
        against its CorePlus budget; Redis errors propagate."""
        month = month or self._today()
        values = await self._counts(self.month_key(realm_id, month))
        coreplus = values.get("coreplus", 0)
        return CallsInMonth(
            month=_month(month),
            core=values.get("core", 0),
            coreplus=coreplus,
            budget=self._budget,
            used_ratio=coreplus / self._budget,
        )

    def _today(self) -> date:
        return self._clock().astimezone(UTC).date()

    async def _counts(self, key: str) -> dict[str, int]:
        # redis-py types its hash commands for both clients at once; this one is async.
        reading = cast("Awaitable[dict[bytes | str, bytes | str]]", self._redis.hgetall(key))
        counts = await reading
        return {_text(name): int(value) for name, value in counts.items()}


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


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
