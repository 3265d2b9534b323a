"""What a pull or reconciliation is given (changes) and what it reports (what it applied)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Change:
    """One entity change, from a webhook or from CDC (then `known` may hold the object)."""

    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime
    deleted_id: str | None = None


@dataclass
class CallTally:
    core: int = 0
    coreplus: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"core": self.core, "coreplus": self.coreplus}


@dataclass
class Applied:
    """What a pull or a reconciliation changed, for the summary and the logs."""

    invoices_updated: int = 0
    events_sent: int = 0
    mappings_moved: int = 0
    mappings_cleared: int = 0
    removed_in_quickbooks: int = 0

    def add(self, other: Applied) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
