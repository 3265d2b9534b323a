"""Every fault shape Intuit sends becomes one typed error; no token ever shows in one."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
import structlog

from qbsync.qbo import (
    Customer,
    QboAuthenticationError,
    QboAuthorizationError,
    QboClient,
    QboClosedPeriodError,
    QboDuplicateDocNumberError,
    QboDuplicateNameError,
    QboDuplicateRequestError,
    QboError,
    QboNetworkError,
    QboNotFoundError,
    QboServerError,
    QboStaleObjectError,
    QboThrottledError,
    QboValidationError,
)
from qbsync.qbo.errors import INTUIT_THROTTLE_WAIT_SECONDS, MAX_TEXT_LENGTH, redact
from qbsync.qbo.faults import parse_retry_after, read_response
from tests.qbo import bodies
from tests.qbo.conftest import ACCESS_TOKEN_1, ACCESS_TOKEN_2, COMPANY, FakeTokens


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(
        status, content=content, headers={"intuit_tid": "tid-1", **(headers or {})}
    )


CASES: list[tuple[str, int, Any, type[QboError], str | None, bool]] = [
    ("duplicate name 6240", 400, bodies.DUPLICATE_NAME, QboDuplicateNameError, "6240", False),
    ("stale object 5010", 400, bodies.STALE_OBJECT, QboStaleObjectError, "5010", True),
    (
        "duplicate doc 6140",
        400,
        bodies.DUPLICATE_DOC_NUMBER,
        QboDuplicateDocNumberError,
        "6140",
        False,
    ),
    (
        "duplicate doc labelled 6210",
        400,
        bodies.DUPLICATE_DOC_NUMBER_AS_6210,
        QboDuplicateDocNumberError,
        "6210",
        False,
    ),
    ("closed period 6210", 400, bodies.CLOSED_PERIOD, QboClosedPeriodError, "6210", False),
    ("not found 610", 400, bodies.NOT_FOUND, QboNotFoundError, "610", False),
    (
        "duplicate request 600",
        400,
        bodies.DUPLICATE_REQUEST,
        QboDuplicateRequestError,
        "600",
        False,
    ),
    ("required param 2020", 400, bodies.REQUIRED_PARAM, QboValidationError, "2020", False),
    ("system fault 10000", 400, bodies.SYSTEM_FAULT, QboServerError, "10000", True),
    (
        "app not authorised 3100",
        403,
        bodies.APP_NOT_AUTHORISED,
        QboAuthorizationError,
        "3100",
        False,
    ),
    ("user lost access 120", 401, bodies.USER_LOST_ACCESS, QboAuthorizationError, "120", False),
    (
        "authentication 3200, lower-case envelope",
        401,
        bodies.authentication_failed("AB01"),
        QboAuthenticationError,
        "3200",
        False,
    ),
    ("throttled, XML on 429", 429, bodies.THROTTLED_XML, QboThrottledError, "3001", True),
    ("throttled, XML on a 403", 403, bodies.THROTTLED_XML, QboThrottledError, "3001", True),
    ("throttled, JSON", 429, bodies.THROTTLED_JSON, QboThrottledError, "3001", True),
    ("throttled, simplified", 429, bodies.THROTTLED_SIMPLE, QboThrottledError, "429", True),
    ("a 200 carrying a Fault", 200, bodies.DUPLICATE_NAME, QboDuplicateNameError, "6240", False),
    ("a 200 carrying an XML Fault", 200, bodies.THROTTLED_XML, QboThrottledError, "3001", True),
    ("a 200 that is not JSON", 200, b"<html>maintenance</html>", QboServerError, None, True),
    ("503 without a body", 503, b"", QboServerError, None, True),
    (
        "502 with an HTML page",
        502,
        b"<html><body>Bad gateway</body></html>",
        QboServerError,
        None,
        True,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "expected", "code", "retryable"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_fault_shape_maps_to_its_error(
    status: int, body: Any, expected: type[QboError], code: str | None, retryable: bool
) -> None:
    with pytest.raises(expected) as caught:
        read_response(response(status, body))
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    assert error.retryable is retryable
    assert error.status_code == status
    assert error.intuit_tid == "tid-1"
    assert error.message
    assert error.user_message


def test_a_success_returns_the_body_with_exact_decimals() -> None:
    body = read_response(response(200, {"Invoice": {"Id": "1", "TotalAmt": 0.1}}))
    assert str(body["Invoice"]["TotalAmt"]) == "0.1"


def test_xml_throttle_keeps_message_and_detail() -> None:
    with pytest.raises(QboThrottledError) as caught:
        read_response(response(429, bodies.THROTTLED_XML, {"content-type": "application/xml"}))
    assert "ThrottleExceeded" in caught.value.message
    assert caught.value.detail == "The request limit was reached.  Try again later"
    assert caught.value.fault_type == "SERVICE"


def test_throttle_wait_is_retry_after_or_intuits_sixty_seconds() -> None:
    with pytest.raises(QboThrottledError) as without:
        read_response(response(429, bodies.THROTTLED_SIMPLE))
    assert without.value.retry_after is None
    assert without.value.wait_seconds == INTUIT_THROTTLE_WAIT_SECONDS

    with pytest.raises(QboThrottledError) as with_header:
        read_response(response(429, bodies.THROTTLED_SIMPLE, {"retry-after": "17"}))
    assert with_header.value.wait_seconds == 17


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    waited = parse_retry_after(future)
    assert waited is not None
    assert 88 <= waited <= 90
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "-5", "1e9", "0x10", "1_000"])
def test_retry_after_that_is_not_delta_seconds_is_ignored(value: str) -> None:
    """A nonsense header falls back to the default wait; it never means "wait forever"."""
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    "body",
    [{"Fault": {}, "time": "t"}, {"Fault": {"type": "SystemFault"}}, {"fault": {"error": []}}],
    ids=["empty", "type-only", "lower-case-empty"],
)
def test_a_200_carrying_an_empty_fault_is_still_an_error(body: dict[str, Any]) -> None:
    with pytest.raises(QboServerError) as caught:
        read_response(response(200, body))
    assert caught.value.retryable


def test_validation_error_names_the_element_and_says_what_to_fix() -> None:
    with pytest.raises(QboValidationError) as caught:
        read_response(response(400, bodies.REQUIRED_PARAM))
    error = caught.value
    assert error.element == "Line.SalesItemLineDetail.ItemRef"
    assert "Line.SalesItemLineDetail.ItemRef" in error.user_message
    assert "is missing in the request" in error.user_message


def test_business_errors_pass_intuits_explanation_on() -> None:
    with pytest.raises(QboDuplicateNameError) as caught:
        read_response(response(400, bodies.DUPLICATE_NAME))
    assert "already exists in QuickBooks" in caught.value.user_message
    assert "Another customer is already using this name" in caught.value.user_message
    with pytest.raises(QboClosedPeriodError) as closed:
        read_response(response(400, bodies.CLOSED_PERIOD))
    assert "closing date" in closed.value.user_message


def test_several_errors_in_one_fault_are_all_kept() -> None:
    body = bodies.fault("2020", "Required param missing", element="CustomerRef")
    body["Fault"]["Error"].append({"Message": "Invalid Enumeration", "code": "2170"})
    with pytest.raises(QboValidationError) as caught:
        read_response(response(400, body))
    assert [item.code for item in caught.value.errors] == ["2020", "2170"]


REFRESH_TOKEN = "AB11730024394085" + "x7Kq9" * 10


async def test_no_token_in_message_repr_detail_or_log(
    intuit: respx.MockRouter, qbo: QboClient, tokens: FakeTokens
) -> None:
    """The 401 detail "Token expired: <token>" and a token echoed anywhere are redacted (S6)."""
    body = bodies.authentication_failed(ACCESS_TOKEN_1)
    body["fault"]["error"][0]["message"] += (
        f" refresh_token={REFRESH_TOKEN} Bearer {ACCESS_TOKEN_2}"
    )
    intuit.get(f"{COMPANY}/customer/1").respond(401, json=body)
    with structlog.testing.capture_logs() as logs, pytest.raises(QboAuthenticationError) as caught:
        await qbo.get(Customer, "1")
    error = caught.value
    everything = " ".join(
        [str(error), repr(error), error.message, error.detail or "", error.user_message]
        + [f"{item.message} {item.detail}" for item in error.errors]
        + [repr(entry) for entry in logs]
    )
    for secret in (ACCESS_TOKEN_1, ACCESS_TOKEN_2, REFRESH_TOKEN, "first-access-token"):
        assert secret not in everything
    assert "Token expired: [redacted]" in (error.detail or "")
    assert tokens.forced == 1


@pytest.mark.parametrize(
    "text",
    [
        "Token expired: AB01",
        "Token expired: AB01…",
        f"Token expired: {REFRESH_TOKEN}",
        f'{{"access_token": "{ACCESS_TOKEN_1}"}}',
        f"Authorization: Bearer {ACCESS_TOKEN_2}",
        f"refresh {REFRESH_TOKEN} was rejected",
    ],
)
def test_redact_removes_tokens(text: str) -> None:
    cleaned = redact(text)
    assert "[redacted]" in cleaned
    for secret in ("AB01", REFRESH_TOKEN, ACCESS_TOKEN_1, ACCESS_TOKEN_2):
        assert secret not in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "Duplicate Document Number Error : DocNumber=INV-1001 is assigned to TxnId=130",
        "Could not find resource for relative : /v3/company/9341450000000000/invoice",
        "requestid 3f0c1a9e-0000-4000-8000-000000000001 was seen before",
        "Token invalid",
    ],
)
def test_redact_leaves_ordinary_messages_alone(text: str) -> None:
    assert redact(text) == text


async def test_network_errors_are_typed_and_retryable(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    intuit.get(f"{COMPANY}/customer/1").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(QboNetworkError) as caught:
        await qbo.get(Customer, "1")
    assert caught.value.retryable
    intuit.get(f"{COMPANY}/customer/2").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(QboNetworkError):
        await qbo.get(Customer, "2")


async def test_intuit_tid_comes_from_the_response_header(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    intuit.get(f"{COMPANY}/customer/9").respond(
        400, json=bodies.NOT_FOUND, headers={"intuit_tid": "1-66a1b2c3-abcdef"}
    )
    with pytest.raises(QboNotFoundError) as caught:
        await qbo.get(Customer, "9")
    assert caught.value.intuit_tid == "1-66a1b2c3-abcdef"
    assert "intuit_tid=1-66a1b2c3-abcdef" in str(caught.value)


async def test_no_token_in_the_logs_or_errors_of_retried_failures(
    intuit: respx.MockRouter, qbo: QboClient
) -> None:
    """S6: failures that are logged on the way (retries) leak no token either."""
    echo = {
        "Fault": {
            "Error": [
                {
                    "Message": f"upstream said Bearer {ACCESS_TOKEN_1}",
                    "Detail": f"refresh_token={REFRESH_TOKEN}",
                    "code": "10000",
                }
            ],
            "type": "SystemFault",
        }
    }
    intuit.get(f"{COMPANY}/customer/1").mock(
        side_effect=[
            httpx.Response(503, json=echo),
            httpx.ConnectError(f"refused while sending Authorization: Bearer {ACCESS_TOKEN_1}"),
            httpx.Response(500, json=echo),
            httpx.Response(502, json=echo),
        ]
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(QboServerError) as caught:
        await qbo.get(Customer, "1")
    assert [entry["event"] for entry in logs] == ["qbo_retry"] * 3
    error = caught.value
    everything = " ".join(
        [str(error), repr(error), error.detail or "", error.user_message]
        + [f"{item.message} {item.detail}" for item in error.errors]
        + [repr(entry) for entry in logs]
    )
    for secret in (ACCESS_TOKEN_1, REFRESH_TOKEN, "first-access-token"):
        assert secret not in everything


def test_redacting_a_huge_message_is_quick_and_cut_short() -> None:
    """A fault detail of 200 kB (up to the XML cap) must not stall the event loop."""
    text = "a+" * 100_000 + " Token expired: AB01"
    started = time.monotonic()
    cleaned = redact(text)
    assert time.monotonic() - started < 0.5
    assert len(cleaned) <= MAX_TEXT_LENGTH + 1
    assert redact(text, secrets=["AB01"]).count("AB01") == 0
