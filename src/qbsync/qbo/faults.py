"""Turn whatever QuickBooks answered into a body or a typed error.

Intuit sends at least five shapes for a failure: `Fault/Error` with `code` strings, a lower-case
`fault/error/message` envelope on 401s, XML `IntuitResponse/Fault/Error` on throttling even when
JSON was asked for, a simplified `{"Fault":{"Error":[{"Message":"Too Many Requests",
"code":"429"}]}}`, and a 200 that carries a Fault. The HTTP status decides first, then the code,
then the text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from qbsync.qbo import codec
from qbsync.qbo.errors import (
    FaultItem,
    QboAuthenticationError,
    QboAuthorizationError,
    QboClosedPeriodError,
    QboDuplicateDocNumberError,
    QboDuplicateNameError,
    QboDuplicateRequestError,
    QboError,
    QboNotFoundError,
    QboServerError,
    QboStaleObjectError,
    QboThrottledError,
    QboValidationError,
    redact,
)

INTUIT_TID_HEADER = "intuit_tid"
_DELTA_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_MAX_RETRY_AFTER_SECONDS = 86_400.0
# A fault body is small; anything bigger is not worth parsing for a message.
_MAX_FAULT_BYTES = 256 * 1024


def read_response(response: httpx.Response, *, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of a successful response; raises the typed error of any other."""
    body = _parse_body(response.content)
    fault = (
        _fault_of(body, secrets)
        if isinstance(body, Mapping)
        else _xml_fault(response.content, secrets)
    )
    if response.is_success and fault is None:
        if not isinstance(body, dict):
            raise QboServerError(
                "QuickBooks answered with something that is not a JSON object",
                status_code=response.status_code,
                intuit_tid=response.headers.get(INTUIT_TID_HEADER),
            )
        return body
    items, fault_type = fault if fault is not None else ([], None)
    raise error_for(
        status_code=response.status_code,
        items=items,
        fault_type=fault_type,
        intuit_tid=response.headers.get(INTUIT_TID_HEADER),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        secrets=secrets,
    )


def fault_error(
    fault: Mapping[str, Any], *, intuit_tid: str | None, secrets: Sequence[str] = ()
) -> QboError:
    """The typed error of a Fault object found inside a 200 (a batch item, for instance)."""
    items, fault_type = _fault_items(fault, secrets)
    return error_for(
        status_code=None, items=items, fault_type=fault_type, intuit_tid=intuit_tid, secrets=secrets
    )


def error_for(
    *,
    status_code: int | None,
    items: Sequence[FaultItem],
    fault_type: str | None,
    intuit_tid: str | None,
    retry_after: float | None = None,
    secrets: Sequence[str] = (),
) -> QboError:
    first = items[0] if items else None
    code = first.code if first else None
    message = first.message if first and first.message else _status_message(status_code)
    text = " ".join(f"{item.message} {item.detail or ''}" for item in items).lower()
    error_class = _classify(status_code, code, text)
    return error_class(
        message,
        code=code,
        element=first.element if first else None,
        detail=first.detail if first else None,
        status_code=status_code,
        intuit_tid=intuit_tid,
        fault_type=fault_type,
        errors=tuple(items),
        retry_after=retry_after,
        secrets=secrets,
    )


def _classify(status: int | None, code: str | None, text: str) -> type[QboError]:
    throttle_text = "throttle" in text or "too many requests" in text
    if status == 429 or code in ("3001", "429") or throttle_text:
        return QboThrottledError
    # 120 arrives as 401 or 400 but means the user lost access, which a refresh cannot fix.
    if code == "120":
        return QboAuthorizationError
    if status == 401 or code == "3200":
        return QboAuthenticationError
    if status == 403 or code == "3100":
        return QboAuthorizationError
    if code == "5010":
        return QboStaleObjectError
    if code == "6240":
        return QboDuplicateNameError
    # Intuit's own pages give 6210 to both; the text settles which one it is.
    if code == "6140" or "duplicate doc" in text or "duplicate document" in text:
        return QboDuplicateDocNumberError
    if code == "6210" or "period closed" in text:
        return QboClosedPeriodError
    if code == "610" or (status == 404 and code is None):
        return QboNotFoundError
    if code == "600":
        return QboDuplicateRequestError
    if (status is not None and status >= 500) or (code is not None and _numeric(code) >= 10000):
        return QboServerError
    # A Fault with nothing in it, on a 200 (or no status, in a batch item): not a verdict on
    # our data, so nothing to fix; treat it as QuickBooks misbehaving.
    if code is None and not text.strip() and (status is None or 200 <= status < 300):
        return QboServerError
    return QboValidationError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date).

    Anything else ("inf", "nan", "-5", "1e9") is ignored, so the caller's default wait applies;
    a wait is capped at a day so it always fits a timestamp.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return min(float(value), _MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(0.0, seconds), _MAX_RETRY_AFTER_SECONDS)


def _parse_body(content: bytes) -> Any:
    try:
        return codec.loads(content) if content else None
    except ValueError:
        return None


def _fault_of(
    body: Mapping[str, Any], secrets: Sequence[str]
) -> tuple[list[FaultItem], str | None] | None:
    # The key's presence is the signal: even an empty Fault is not a success.
    fault = body.get("Fault")
    if fault is None:
        fault = body.get("fault")
    return _fault_items(fault, secrets) if isinstance(fault, Mapping) else None


def _fault_items(
    fault: Mapping[str, Any], secrets: Sequence[str]
) -> tuple[list[FaultItem], str | None]:
    raw_errors = fault.get("Error") or fault.get("error") or []
    if isinstance(raw_errors, Mapping):
        raw_errors = [raw_errors]
    items = [
        FaultItem(
            code=_text(_get(error, "code")),
            message=redact(_text(_get(error, "Message")) or "", secrets),
            detail=_redacted(_text(_get(error, "Detail")), secrets),
            element=_text(_get(error, "element")) or None,
        )
        for error in raw_errors
        if isinstance(error, Mapping)
    ]
    return items, _text(fault.get("type"))


def _xml_fault(content: bytes, secrets: Sequence[str]) -> tuple[list[FaultItem], str | None] | None:
    if not content.lstrip().startswith(b"<") or len(content) > _MAX_FAULT_BYTES:
        return None
    try:
        # Intuit's own response over TLS; the bundled expat (≥ 2.4) refuses entity expansion bombs.
        root = ET.fromstring(content)  # noqa: S314
    except ET.ParseError:
        return None
    for fault in root.iter():
        if _local(fault.tag) != "Fault":
            continue
        items = [
            FaultItem(
                code=error.get("code"),
                message=redact(_child_text(error, "Message") or "", secrets),
                detail=_redacted(_child_text(error, "Detail"), secrets),
                element=error.get("element") or None,
            )
            for error in fault
            if _local(error.tag) == "Error"
        ]
        return items, fault.get("type")
    return None


def _get(error: Mapping[str, Any], name: str) -> Any:
    """Either spelling: `Message` in the usual envelope, `message` in the 401 one."""
    return error.get(name, error.get(name.lower(), error.get(name.capitalize())))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _redacted(value: str | None, secrets: Sequence[str]) -> str | None:
    return redact(value, secrets) if value else None


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return child.text
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _numeric(code: str) -> int:
    return int(code) if code.isdigit() else 0


def _status_message(status: int | None) -> str:
    return f"QuickBooks answered HTTP {status}" if status else "QuickBooks reported a fault"
