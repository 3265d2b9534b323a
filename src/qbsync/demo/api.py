"""qbsync's HTTP API as the platform's frontend calls it: a bearer JWT, JSON in and out, and
any answer other than the one expected turned into a failed step that quotes the problem."""

from __future__ import annotations

from typing import Any

import httpx

from qbsync.demo.display import StepFailedError

TIMEOUT_SECONDS = 30.0


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            timeout=TIMEOUT_SECONDS,
            headers={"Authorization": f"Bearer {token}"},
        )

    def close(self) -> None:
        self.http.close()

    def call(
        self, method: str, path: str, *, expect: int = 200, body: Any = None, **params: Any
    ) -> Any:
        try:
            response = self.http.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as error:
            raise StepFailedError(f"{method} {path}: {type(error).__name__}: {error}") from error
        if response.status_code != expect:
            raise StepFailedError(
                f"{method} {path} answered {response.status_code}: {_problem(response)}"
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def put(self, path: str, body: Any) -> Any:
        return self.call("PUT", path, body=body)

    def post(self, path: str, body: Any = None, *, expect: int = 200) -> Any:
        return self.call("POST", path, body=body, expect=expect)


def _problem(response: httpx.Response) -> str:
    """The problem's code and detail when it is problem+json, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and "code" in body:
        return f"{body.get('code')}: {body.get('detail') or body.get('title')}"
    return response.text[:300]
