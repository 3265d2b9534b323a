"""What tests and benchmarks inspect: requests per company and endpoint, token calls, requestids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs

_REALM_PREFIX = "/v3/company/"


@dataclass
class Stats:
    requests_by_realm: Counter[str] = field(default_factory=Counter)
    # "<realm> <METHOD> <resource>[?operation=...]", or "<METHOD> <path>" outside the API.
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    throttled_by_realm: Counter[str] = field(default_factory=Counter)
    token_calls: Counter[str] = field(default_factory=Counter)  # by grant_type
    revoke_calls: int = 0
    requestids: dict[str, Counter[str]] = field(default_factory=dict)

    def record_request(self, realm_id: str | None, method: str, path: str, query: str) -> None:
        if realm_id is None:
            self.requests_by_endpoint[f"{method} {path}"] += 1
            return
        self.requests_by_realm[realm_id] += 1
        resource = path.removeprefix(f"{_REALM_PREFIX}{realm_id}/").split("/", 1)[0]
        operation = parse_qs(query).get("operation")
        suffix = f"?operation={operation[0]}" if operation else ""
        self.requests_by_endpoint[f"{realm_id} {method} {resource}{suffix}"] += 1

    def record_requestid(self, realm_id: str, requestid: str) -> None:
        self.requestids.setdefault(realm_id, Counter())[requestid] += 1
