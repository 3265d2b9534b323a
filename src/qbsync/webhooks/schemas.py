from __future__ import annotations

from pydantic import BaseModel, Field


class WebhookReceipt(BaseModel):
    """What QuickBooks is told (it reads only the status); the counts help a person debugging."""

    changes: int = Field(description="Entity changes in the delivery.")
    stored: int = Field(description="Changes seen for the first time and stored.")
    duplicates: int = Field(description="Changes already stored by an earlier delivery.")
