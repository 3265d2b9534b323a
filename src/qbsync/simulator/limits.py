"""Intuit's throttles per company: requests per minute, requests in flight, batches per minute."""

from __future__ import annotations

from collections import Counter, deque

from starlette.responses import Response

from qbsync.simulator.clock import SimClock
from qbsync.simulator.config import LimitsConfig
from qbsync.simulator.jsonio import json_response

MINUTE = 60.0
THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
THROTTLE_DETAIL = "The request limit was reached.  Try again later"


class RateLimiter:
    """Sliding one-minute windows in Intuit time; refused calls don't count against the window."""

    def __init__(self, config: LimitsConfig, clock: SimClock) -> None:
        self.config = config
        self._clock = clock
        self._requests: dict[str, deque[float]] = {}
        self._batches: dict[str, deque[float]] = {}
        self.in_flight: Counter[str] = Counter()

    def acquire(self, realm_id: str, *, batch: bool) -> bool:
        config = self.config
        if not config.enabled:
            self.in_flight[realm_id] += 1
            return True
        now = self._clock.timestamp()
        requests = _window(self._requests, realm_id, now)
        batches = _window(self._batches, realm_id, now)
        if (
            self.in_flight[realm_id] >= config.max_in_flight
            or len(requests) >= config.requests_per_minute
            or (batch and len(batches) >= config.batch_requests_per_minute)
        ):
            return False
        requests.append(now)
        if batch:
            batches.append(now)
        self.in_flight[realm_id] += 1
        return True

    def release(self, realm_id: str) -> None:
        self.in_flight[realm_id] -= 1


def _window(windows: dict[str, deque[float]], realm_id: str, now: float) -> deque[float]:
    window = windows.setdefault(realm_id, deque())
    while window and window[0] <= now - MINUTE:
        window.popleft()
    return window


def throttled_response(config: LimitsConfig, time: str) -> Response:
    if config.throttle_body == "json":
        error = {"Message": THROTTLE_MESSAGE, "Detail": THROTTLE_DETAIL, "code": "3001"}
        return json_response({"Fault": {"Error": [error], "type": "SERVICE"}, "time": time}, 429)
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{time}" xmlns="http://schema.intuit.com/finance/v3">'
        '<Fault type="SERVICE"><Error code="3001">'
        f"<Message>{THROTTLE_MESSAGE}</Message><Detail>{THROTTLE_DETAIL}</Detail>"
        "</Error></Fault></IntuitResponse>"
    )
    return Response(xml, 429, media_type="application/xml")
