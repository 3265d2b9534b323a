"""Batch: up to 30 independent items in one call, each answered with its object or its fault."""

from __future__ import annotations

from typing import Any

from qbsync.simulator import query
from qbsync.simulator.errors import QboError, fault, invalid_enum, invalid_property, required
from qbsync.simulator.fields import mapping, sequence
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import Ledger
from qbsync.simulator.store import WRITABLE

OPERATIONS = frozenset({"create", "update", "delete"})


def run(ledger: Ledger, body: Any, max_items: int) -> JsonObject:
    items = mapping(body, "BatchItemRequest").get("BatchItemRequest")
    if items is None:
        raise required("BatchItemRequest")
    items = sequence(items, "BatchItemRequest")
    if len(items) > max_items:
        raise fault(
            "1040",
            "Batch size exceeds allowed limit",
            f"The batch has {len(items)} items; the limit is {max_items}.",
        )
    # Items run one after another, so a later item sees what an earlier one created; Intuit
    # promises neither order nor visibility.
    return {"BatchItemResponse": [_item(ledger, item) for item in items]}


def _item(ledger: Ledger, item: Any) -> JsonObject:
    bid = item.get("bId") if isinstance(item, dict) else None
    try:
        item = mapping(item, "BatchItemRequest")
        if "Query" in item:
            return {"bId": bid, "QueryResponse": query.run(ledger.company, str(item["Query"]))}
        operation = item.get("operation")
        if operation not in OPERATIONS:
            raise invalid_enum("operation", operation)
        entities = [key for key in item if key in WRITABLE]
        if len(entities) != 1:
            raise invalid_property("BatchItemRequest", "A batch item carries exactly one entity")
        entity = entities[0]
        return {"bId": bid, entity: ledger.write(entity, operation, item[entity])}
    except QboError as error:
        return {"bId": bid, "Fault": error.fault_json()}
