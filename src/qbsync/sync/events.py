"""The platform's events: each type, the entity it is about, what it asks, and its data's shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from qbsync.mappings.snapshots import (
    ClientSnapshot,
    DeletedSnapshot,
    ExpenseSnapshot,
    InvoiceSnapshot,
    PaymentSnapshot,
    ServiceSnapshot,
    Snapshot,
    TaxRateSnapshot,
)

MAX_BATCH = 100
# Records the push writes to QuickBooks; services and tax rates only feed the catalogue.
EntityKind = Literal["client", "invoice", "expense", "payment", "service", "tax_rate"]
Operation = Literal["upsert", "void", "delete"]


@dataclass(frozen=True)
class EventType:
    kind: EntityKind
    operation: Operation
    data: type[Snapshot]


EVENT_TYPES: dict[str, EventType] = {
    "client.upserted": EventType("client", "upsert", ClientSnapshot),
    "client.deleted": EventType("client", "delete", DeletedSnapshot),
    "service.upserted": EventType("service", "upsert", ServiceSnapshot),
    "service.deleted": EventType("service", "delete", DeletedSnapshot),
    "tax_rate.upserted": EventType("tax_rate", "upsert", TaxRateSnapshot),
    "tax_rate.deleted": EventType("tax_rate", "delete", DeletedSnapshot),
    "invoice.upserted": EventType("invoice", "upsert", InvoiceSnapshot),
    "invoice.voided": EventType("invoice", "void", InvoiceSnapshot),
    "invoice.deleted": EventType("invoice", "delete", DeletedSnapshot),
    "expense.upserted": EventType("expense", "upsert", ExpenseSnapshot),
    "expense.deleted": EventType("expense", "delete", DeletedSnapshot),
    "payment.recorded": EventType("payment", "upsert", PaymentSnapshot),
    "payment.deleted": EventType("payment", "delete", DeletedSnapshot),
}
EventTypeName = Literal[
    "client.upserted",
    "client.deleted",
    "service.upserted",
    "service.deleted",
    "tax_rate.upserted",
    "tax_rate.deleted",
    "invoice.upserted",
    "invoice.voided",
    "invoice.deleted",
    "expense.upserted",
    "expense.deleted",
    "payment.recorded",
    "payment.deleted",
]


MAX_TIME_LENGTH = 64


def _iso_text(value: Any) -> Any:
    # Lax pydantic would read a number as seconds since 1970; the platform writes ISO 8601.
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        raise ValueError("must be an ISO 8601 time with a UTC offset")
    return value


class Envelope(BaseModel):
    """One event as the platform sends it; `data` is checked against its type's shape next."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[\x21-\x7e]+$")] | None = None
    type: EventTypeName
    organization_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    occurred_at: Annotated[
        AwareDatetime,
        BeforeValidator(_iso_text),
        WithJsonSchema({"type": "string", "format": "date-time", "maxLength": MAX_TIME_LENGTH}),
    ]
    data: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """A checked event: its dedupe key, and its data in its type's shape."""

    key: str
    type: str
    org_id: str
    occurred_at: datetime
    kind: EntityKind
    operation: Operation
    platform_id: str
    data: Snapshot
    raw: dict[str, Any]


class AcceptedEvents(BaseModel):
    accepted: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events stored before (same id): acknowledged, unchanged.")
