from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

OutboundEventType = Literal[
    "quickbooks.connection.updated",
    "quickbooks.record.synced",
    "quickbooks.record.failed",
    "quickbooks.invoice.payment_updated",
]


class OutboundEnvelope(BaseModel):
    """What the platform receives; `id` repeats the `webhook-id` header so it can deduplicate."""

    id: str
    type: OutboundEventType
    organization_id: str
    occurred_at: datetime
    data: dict[str, Any]
