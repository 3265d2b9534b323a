"""Faults on demand: the next N matching calls fail, throttle, stall, or lose their answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count
from typing import Literal

from pydantic import BaseModel, Field, field_validator

# error: answer `status_code`; throttle: answer 429/3001; delay: answer late (real seconds);
# reset: do the work, then drop the connection instead of answering.
FaultKind = Literal["error", "throttle", "delay", "reset"]


class FaultSpec(BaseModel):
    kind: FaultKind
    times: int = Field(default=1, ge=1)
    status_code: int = Field(default=503, ge=400, le=599)
    delay_seconds: float = Field(default=0.0, ge=0)
    method: str | None = None
    # A regular expression searched in the request path, e.g. "/invoice$" or "tokens/bearer".
    path: str | None = None

    @field_validator("path")
    @classmethod
    def _compiles(cls, path: str | None) -> str | None:
        # Refused here, not by every later request failing to match it.
        if path is not None:
            try:
                re.compile(path)
            except re.error as exc:
                raise ValueError(f"path is not a regular expression: {exc}") from exc
        return path


@dataclass
class FaultRule:
    rule_id: int
    spec: FaultSpec
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        spec = self.spec
        if spec.method is not None and spec.method.upper() != method:
            return False
        return spec.path is None or re.search(spec.path, path) is not None


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._ids = count(1)

    def add(self, spec: FaultSpec) -> FaultRule:
        rule = FaultRule(next(self._ids), spec, spec.times)
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultSpec | None:
        """The first matching rule fires once; rules are used up in the order they were added."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.rules.remove(rule)
                return rule.spec
        return None

    def clear(self) -> None:
        self.rules.clear()
