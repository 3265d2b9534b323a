"""QuickBooks webhooks: the `intuit-signature` check and one parser for both payload formats.

Legacy: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}`.
CloudEvents: a JSON array of CloudEvents 1.0 objects, `type` = `qbo.<entity>.<past-tense op>.v1`.
Both become a flat list of `EntityChange`, each with an event id to deduplicate on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from qbsync.qbo.realm import is_realm_id

SIGNATURE_HEADER = "intuit-signature"
# The longest values a change may carry (QuickBooks ids are short digit strings; a CloudEvents
# id is a UUID): longer ones are refused, never cut.
ID_LIMIT = 32
EVENT_ID_LIMIT = 256
OPERATION_LIMIT = 16

# Intuit's entity names in their canonical case, keyed by lower case: CloudEvents types carry
# only the lower-case form ("qbo.billpayment.voided.v1").
_ENTITY_NAMES = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}

_OPERATIONS = {
    "create": "Create",
    "created": "Create",
    "update": "Update",
    "updated": "Update",
    "delete": "Delete",
    "deleted": "Delete",
    "merge": "Merge",
    "merged": "Merge",
    "void": "Void",
    "voided": "Void",
    "emailed": "Emailed",
}


class WebhookPayloadError(ValueError):
    """The body is not a QuickBooks webhook payload; the message says what is wrong where,
    `field` is the path of the value at fault (`body` for the whole document)."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class EntityChange:
    realm_id: str
    entity: str
    entity_id: str
    # Create | Update | Delete | Merge | Void | Emailed; an operation Intuit adds later is kept
    # as sent (capitalised) rather than failing the whole delivery.
    operation: str
    occurred_at: datetime
    event_id: str
    # For Merge: the id of the record merged away (and gone).
    deleted_id: str | None
    source_format: Literal["legacy", "cloudevents"]


def verify_signature(body: bytes, signature: str | None, verifier_token: str) -> bool:
    """True when `signature` is base64(HMAC-SHA256(verifier token, raw body bytes))."""
    if not signature or not verifier_token:
        return False
    try:
        received = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(received, expected)


def parse_webhook(body: bytes) -> list[EntityChange]:
    """Every change in a delivery; any body that is not a usable payload raises
    `WebhookPayloadError` (never KeyError, TypeError or RecursionError)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert.
        raise WebhookPayloadError(f"the body is not JSON: {type(error).__name__}") from None
    if isinstance(payload, list):
        return [_cloud_event(event, f"[{index}]") for index, event in enumerate(payload)]
    if isinstance(payload, Mapping):
        if "eventNotifications" in payload:
            return _legacy(payload["eventNotifications"])
        if "specversion" in payload:
            return [_cloud_event(payload, "event")]
    raise WebhookPayloadError("expected a CloudEvents array or an object with eventNotifications")


def _legacy(notifications: Any) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for n_index, notification in enumerate(_list(notifications, "eventNotifications")):
        where = f"eventNotifications[{n_index}]"
        notification = _object(notification, where)
        realm_id = _realm(notification, "realmId", where)
        event = _object(notification.get("dataChangeEvent"), f"{where}.dataChangeEvent")
        entities = _list(event.get("entities"), f"{where}.dataChangeEvent.entities")
        for e_index, raw in enumerate(entities):
            at = f"{where}.dataChangeEvent.entities[{e_index}]"
            entity = _object(raw, at)
            name = _entity_name(_string(entity, "name", at))
            entity_id = _string(entity, "id", at, ID_LIMIT)
            operation = _operation(_string(entity, "operation", at, OPERATION_LIMIT))
            occurred_at = _timestamp(_string(entity, "lastUpdated", at), f"{at}.lastUpdated")
            deleted_id = _deleted_id(entity, at)
            event_id = _legacy_event_id(
                realm_id, name, entity_id, operation, occurred_at, deleted_id
            )
            changes.append(
                EntityChange(
                    realm_id=realm_id,
                    entity=name,
                    entity_id=entity_id,
                    operation=operation,
                    occurred_at=occurred_at,
                    event_id=event_id,
                    deleted_id=deleted_id,
                    source_format="legacy",
                )
            )
    return changes


def _cloud_event(raw: Any, where: str) -> EntityChange:
    event = _object(raw, where)
    event_type = _string(event, "type", where)
    parts = event_type.split(".")
    if (
        len(parts) < 3
        or parts[0] != "qbo"
        or not parts[1].strip()
        or not parts[2].strip()
        or len(parts[2]) > OPERATION_LIMIT
    ):
        raise WebhookPayloadError(
            f"{where}.type: expected qbo.<entity>.<operation>.v<N>, got {_shown(event_type)}",
            f"{where}.type",
        )
    data = event.get("data")
    deleted_id = _deleted_id(data, f"{where}.data") if isinstance(data, Mapping) else None
    return EntityChange(
        realm_id=_realm(event, "intuitaccountid", where),
        entity=_entity_name(parts[1]),
        entity_id=_string(event, "intuitentityid", where, ID_LIMIT),
        operation=_operation(parts[2]),
        occurred_at=_timestamp(_string(event, "time", where), f"{where}.time"),
        event_id=_string(event, "id", where, EVENT_ID_LIMIT),
        deleted_id=deleted_id,
        source_format="cloudevents",
    )


def _deleted_id(container: Mapping[str, Any], where: str) -> str | None:
    """Merge's merged-away id; both spellings seen in Intuit's material."""
    key = "deletedId" if "deletedId" in container else "deletedID"
    if container.get(key) is None:
        return None
    return _string(container, key, where, ID_LIMIT)


def _legacy_event_id(
    realm_id: str,
    entity: str,
    entity_id: str,
    operation: str,
    occurred_at: datetime,
    deleted_id: str | None,
) -> str:
    """Stable across Intuit's retries, which resend the same (realm, entity, id, op, time).

    A merge also counts what was merged away: two customers merged into one in the same second
    are two events. (Added only when present, so other events keep the ids they always had.)
    """
    parts = [realm_id, entity, entity_id, operation, occurred_at.isoformat()]
    if deleted_id is not None:
        parts.append(deleted_id)
    key = "\x1f".join(parts)
    return "legacy-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _entity_name(raw: str) -> str:
    return _ENTITY_NAMES.get(raw.lower(), raw[:1].upper() + raw[1:])


def _operation(raw: str) -> str:
    return _OPERATIONS.get(raw.lower(), raw[:1].upper() + raw[1:])


def _timestamp(raw: str, where: str) -> datetime:
    """Aware UTC. Python ≥ 3.11 reads `Z`, `-0700` and nanosecond fractions (kept to µs)."""
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError as error:
        raise WebhookPayloadError(f"{where}: not an ISO-8601 time: {_shown(raw)}", where) from error
    if parsed.tzinfo is None:
        raise WebhookPayloadError(f"{where}: the time has no UTC offset: {_shown(raw)}", where)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as error:
        raise WebhookPayloadError(
            f"{where}: the time is out of range: {_shown(raw)}", where
        ) from error


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(f"{where}: expected an object", where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise WebhookPayloadError(f"{where}: expected an array", where)
    return value


def _string(container: Mapping[str, Any], key: str, where: str, limit: int = 64) -> str:
    """A value as stored: refused rather than cut when longer than `limit` (a cut id would name
    another entity) or when it holds a NUL (no database column takes one)."""
    value = container.get(key)
    # Ids are strings on the wire, but a number is not worth refusing a delivery over.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    field = f"{where}.{key}"
    if not isinstance(value, str) or not value.strip():
        raise WebhookPayloadError(f"{field}: expected a non-empty string", field)
    if "\x00" in value:
        raise WebhookPayloadError(f"{field}: holds a NUL character", field)
    if len(value) > limit:
        raise WebhookPayloadError(f"{field}: longer than {limit} characters", field)
    return value


def _realm(container: Mapping[str, Any], key: str, where: str) -> str:
    value = _string(container, key, where)
    if not is_realm_id(value):
        raise WebhookPayloadError(
            f"{where}.{key}: not a QuickBooks company id: {_shown(value)}", f"{where}.{key}"
        )
    return value


def _shown(raw: str) -> str:
    """A sender's value in a message, cut short: messages end up in logs."""
    return repr(raw if len(raw) <= 64 else raw[:64] + "…")
