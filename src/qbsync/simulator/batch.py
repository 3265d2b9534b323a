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


# With a requestid, Intuit allows batch item ids of at most 10 characters.
BID_MAX_WITH_REQUESTID = 10


def run(ledger: Ledger, body: Any, max_items: int, *, with_requestid: bool = False) -> JsonObject:
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
    if with_requestid:
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            if isinstance(bid, str) and len(bid) > BID_MAX_WITH_REQUESTID:
                raise invalid_property(
                    "bId",
                    f"With a requestid a bId can be at most {BID_MAX_WITH_REQUESTID} "
                    f"characters long: {bid}",
                )
    # Items run one after another, but as in QBO each is independent: none sees what an
    # earlier item of the same batch created.
    created: list[tuple[str, str]] = []
    responses = []
    for item in items:
        view = ledger.without(frozenset(created))
        responses.append(_item(view, item))
        created.extend(view.created)
    return {"BatchItemResponse": responses}


def _item(ledger: Ledger, item: Any) -> JsonObject:
    bid = item.get("bId") if isinstance(item, dict) else None
    try:
        item = mapping(item, "BatchItemRequest")
        if "Query" in item:
            result = query.run(ledger.company, str(item["Query"]), hidden=ledger.hidden)
            return {"bId": bid, "QueryResponse": result}
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
