"""Structured JSON logs with request ids, and Prometheus metrics."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
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
    INTUIT_CALLS.labels("coreplus" if call.metered else "core", call.operation).inc()


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
