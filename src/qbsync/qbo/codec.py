"""JSON in and out of QuickBooks with money kept exact.

Intuit sends money as JSON numbers. Parsing them as float would turn 0.1 + 0.2 into
0.30000000000000004 somewhere down the line, so numbers with a fraction become `Decimal`; and
`Decimal` goes back out as a JSON number, not the string pydantic or `json` would make of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def loads(data: bytes | str) -> Any:
    """JSON with fractions as exact `Decimal`; NaN and Infinity (which `json` accepts) refused."""
    return json.loads(data, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def dumps(value: Any) -> bytes:
    return _encode(value).encode()


def _encode(value: Any) -> str:
    # bool before int: bool is an int subclass.
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount to QuickBooks: {value}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not sent to QuickBooks; use Decimal for amounts")
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    if isinstance(value, Mapping):
        items = (f"{_encode(str(key))}:{_encode(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, bytes | bytearray):
        raise TypeError("cannot encode bytes as JSON")
    if isinstance(value, Sequence):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
