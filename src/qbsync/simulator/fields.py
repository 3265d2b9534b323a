"""Reading request fields the way QBO does: lenient on JSON types, strict on meaning."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qbsync.simulator.errors import invalid_property, required
from qbsync.simulator.jsonio import JsonObject

CENT = Decimal("0.01")


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def decimal(value: Any, element: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise invalid_property(element, f"{element} must be a number")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise invalid_property(element, f"{element} must be a number") from exc
    if not number.is_finite():
        raise invalid_property(element, f"{element} must be a number")
    return number


def optional_decimal(body: JsonObject, key: str, element: str) -> Decimal | None:
    value = body.get(key)
    return None if value is None else decimal(value, element)


def money(value: Any, element: str) -> Decimal:
    return round_money(decimal(value, element))


def text(body: JsonObject, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_property(key, f"{key} must be a string")
    return value.strip() or None


def max_length(value: str | None, key: str, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise invalid_property(
            key,
            f"String length is either shorter or longer than supported by specification. "
            f"Min:0 Max:{limit} supported. Supplied length:{len(value)}",
        )


def iso_date(body: JsonObject, key: str) -> str | None:
    value = text(body, key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise invalid_property(key, f"{key} must be a date (YYYY-MM-DD): {value}") from exc


def ref_id(body: JsonObject, key: str, element: str | None = None) -> str | None:
    """The `value` of a `{"value": ...}` reference, or None when the field is absent."""
    ref = body.get(key)
    if ref is None:
        return None
    value = ref.get("value") if isinstance(ref, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise required(f"{element or key}.value")
    return value.strip()


def mapping(value: Any, element: str) -> JsonObject:
    if not isinstance(value, dict):
        raise invalid_property(element, f"{element} must be an object")
    return value


def sequence(value: Any, element: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_property(element, f"{element} must be an array")
    return value
