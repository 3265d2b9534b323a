"""Intuit's edge in front of the app: request ids, injected faults, bearer auth, throttling."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbsync.simulator.errors import QboError, authentication_failed_body, system_error
from qbsync.simulator.faults import FaultSpec
from qbsync.simulator.jsonio import json_response
from qbsync.simulator.limits import throttled_response
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.tokens import AuthenticationError

_API_PATH = re.compile(r"^/v3/company/([^/]+)(?:/([^/?]*))?")


class ConnectionDroppedError(Exception):
    """Raised after the response has started, so the server closes the connection mid-answer."""


class IntuitGateway:
    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        finally:
            # Only reads leave the state as it was; everything else is saved soon after.
            if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                self.state.changed()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        state = self.state
        method: str = scope["method"]
        path: str = scope["path"]
        match = _API_PATH.match(path)
        realm_id = match.group(1) if match else None
        state.stats.record_request(realm_id, method, path, scope["query_string"].decode())
        send = _with_intuit_tid(send)
        fault = state.faults.take(method, path)
        rejection = self._rejection(fault, realm_id, scope)
        if rejection is not None:
            await rejection(scope, receive, send)
            return
        if realm_id is None:
            await self._serve(fault, scope, receive, send)
            return
        if not state.limiter.acquire(
            realm_id, batch=match is not None and match.group(2) == "batch"
        ):
            state.stats.throttled_by_realm[realm_id] += 1
            await throttled_response(state.config.limits, state.response_time(realm_id))(
                scope, receive, send
            )
            return
        try:
            if state.config.api_latency:
                await state.clock.sleep(state.config.api_latency)
            await self._serve(fault, scope, receive, send)
        finally:
            state.limiter.release(realm_id)

    def _rejection(
        self, fault: FaultSpec | None, realm_id: str | None, scope: Scope
    ) -> Response | None:
        """The answer given without reaching the app: an injected fault or a refused token."""
        state = self.state
        time = state.response_time(realm_id)
        if fault is not None and fault.kind == "throttle":
            if realm_id is not None:
                state.stats.throttled_by_realm[realm_id] += 1
            return throttled_response(state.config.limits, time)
        if fault is not None and fault.kind == "error":
            if realm_id is None:
                return json_response({"error": "server_error"}, fault.status_code)
            error = system_error(fault.status_code)
            return json_response({"Fault": error.fault_json(), "time": time}, fault.status_code)
        if realm_id is None:
            return None
        try:
            state.tokens.authenticate(Headers(scope=scope).get("authorization"), realm_id)
        except AuthenticationError as exc:
            millis = int(state.clock.timestamp() * 1000)
            return json_response(
                authentication_failed_body(str(exc), millis),
                401,
                {"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
            )
        except QboError as error:
            return json_response({"Fault": error.fault_json(), "time": time}, error.status_code)
        return None

    async def _serve(
        self, fault: FaultSpec | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if fault is not None and fault.kind == "delay":
            await self.state.stall(fault.delay_seconds)
        if fault is None or fault.kind != "reset":
            await self.app(scope, receive, send)
            return
        started: Message | None = None

        async def hold(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = message

        await self.app(scope, receive, hold)
        if started is not None:
            await send(started)
        raise ConnectionDroppedError("simulated connection reset after the write was committed")


def _with_intuit_tid(send: Send) -> Send:
    async def send_with_tid(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((b"intuit_tid", str(uuid.uuid4()).encode()))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_tid
