"""Every error leaves as application/problem+json (RFC 9457) with a stable `code`."""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

PROBLEM_JSON = "application/problem+json"

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details with a stable `code`.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable, for programs to branch on."},
        "detail": {"type": "string", "description": "For people: what happened, what to do."},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Each field at fault.",
            "items": {
                "type": "object",
                "required": ["field", "code", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "location": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_PROBLEM_DESCRIPTIONS = {
    400: "The request can't be processed",
    401: "Missing, expired or invalid platform token",
    403: "The organisation's plan does not include integrations",
    404: "Not found for this organisation",
    409: "The resource is in a state that does not allow this",
    413: "The request body is too large",
    422: "A field is not valid; `errors` names each one",
    415: "The body is not in a media type this route reads",
    429: "Too many at once; retry after `Retry-After` seconds",
    500: "Unexpected error; quote the request id to support",
    502: "QuickBooks refused the request; `detail` says why",
    503: "A dependency is unavailable; retry shortly",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    return {
        status: {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


class AppError(Exception):
    """An error a caller can act on. Subclasses fix `status` and `code`; `detail` is for people."""

    status: int = 400
    code: str = "bad_request"
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


class NotFoundError(AppError):
    status = 404
    code = "not_found"


class ConflictError(AppError):
    status = 409
    code = "conflict"


class UnauthorizedError(AppError):
    status = 401
    code = "unauthenticated"


class ForbiddenError(AppError):
    status = 403
    code = "forbidden"


class ServiceUnavailableError(AppError):
    status = 503
    code = "service_unavailable"


INTERNAL_ERROR_DETAIL = (
    "Something went wrong on our side. Quote the request id if you contact support."
)


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://qbsync.dev/problems/{code.replace('_', '-')}",
        "title": _phrase(status),
        "status": status,
        "code": code,
        "detail": detail,
    }
    body.update(extra)
    return body


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    request: Request | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(status, code, detail)
    if title is not None:
        body["title"] = title
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_path(location: tuple[Any, ...] | list[Any], kind: str = "") -> str:
    if kind == "json_invalid":
        return "body"  # the location's number is a byte offset, not a field
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


async def _app_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    extra = dict(error.extra)
    if error.field is not None:
        extra["errors"] = [{"field": error.field, "code": error.code, "message": error.detail}]
    return problem(
        error.status,
        error.code,
        error.detail,
        request=request,
        title=error.title,
        extra=extra,
        headers=error.headers,
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {
            "field": _field_path(item.get("loc", ()), str(item.get("type", ""))),
            "location": str(item.get("loc", ("body",))[0]),
            "code": str(item.get("type", "invalid")),
            "message": str(item.get("msg", "invalid value")),
        }
        for item in error.errors()
    ]
    fields = ", ".join(sorted({entry["field"] for entry in errors})) or "the request"
    return problem(
        422,
        "validation_error",
        f"The request is not valid: check {fields}.",
        request=request,
        extra={"errors": errors},
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400:
        # FastAPI's only 400: a body it could not parse (a form or bytes that are not the
        # JSON the route reads). A bad input is a 422 naming its field, as everywhere else.
        return problem(
            422,
            "validation_error",
            "The request body could not be read: send JSON.",
            request=request,
            extra={"errors": [{"field": "body", "code": "body_unreadable", "message": "not JSON"}]},
        )
    code = _HTTP_CODES.get(error.status_code, "http_error")
    detail = error.detail if isinstance(error.detail, str) else _phrase(error.status_code)
    headers = dict(error.headers) if error.headers else {}
    if error.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    extra = None
    if error.status_code == 413:
        # The body as a whole is at fault, as the size limit's own answer says.
        extra = {"errors": [{"field": "body", "code": code, "message": detail}]}
    return problem(
        error.status_code, code, detail, request=request, headers=headers or None, extra=extra
    )


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names only the first route on the path; GET and DELETE often share one.
    methods: set[str] = set()
    pending: list[Any] = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        elif isinstance(route, Route) and route.methods:
            matched, _ = route.matches(request.scope)
            if matched is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


# Deadlock and serialization failure: the database gave up on the transaction; retrying works.
_RETRY_STATES = frozenset({"40P01", "40001"})
# The server is shutting down, crashed, or is starting or recovering (57P01-57P03), or the
# connection failed (class 08): the database is unavailable, not the request wrong.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})


def database_unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The database is unavailable. Retry shortly.",
        code="database_unavailable",
        headers={"Retry-After": "5"},
    )


def database_busy() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The service is busy. Retry in a few seconds.",
        code="database_busy",
        headers={"Retry-After": "2"},
    )


def database_problem(error: BaseException) -> ServiceUnavailableError | None:
    """The 503 a database failure means, or None when it is a bug (a 500).

    The driver raises plain OSErrors while connecting (refused or reset, an unresolvable host, a
    connect timeout); the HTTP and Redis clients wrap theirs in their own exception types. Other
    OSErrors (a missing file, a permission) are bugs.
    """
    if isinstance(error, PoolTimeoutError):
        return database_busy()
    if isinstance(error, DBAPIError):
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if code in _RETRY_STATES:
            return database_busy()
        if error.connection_invalidated or isinstance(error, OperationalError | InterfaceError):
            return database_unavailable()
        if code in _UNAVAILABLE_STATES or (isinstance(code, str) and code.startswith("08")):
            return database_unavailable()
        return None
    if isinstance(error, ConnectionError | socket.gaierror | TimeoutError):
        return database_unavailable()
    return None


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    mapped = database_problem(error)
    if mapped is None:
        # A bug: the request middleware logs it with the request id and answers a 500 problem.
        raise error
    return await _app_error(request, mapped)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    # Routes that open their own short transactions (those that call Intuit) meet these outside
    # the request session's dependency, which maps them the same way.
    for failure in (PoolTimeoutError, DBAPIError, OSError):
        app.add_exception_handler(failure, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
