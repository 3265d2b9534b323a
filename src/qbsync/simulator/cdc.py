"""Change Data Capture: what changed since a moment, grouped per entity, deletions last."""

from __future__ import annotations

from datetime import datetime

from qbsync.simulator.errors import invalid_property, required, unsupported
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.store import BY_LOWER_NAME, WRITABLE, Company

DAY = 86_400


def run(
    company: Company,
    now: float,
    entities: str | None,
    changed_since: str | None,
    *,
    window_days: int,
    max_objects: int,
) -> JsonObject:
    if not entities:
        raise required("entities")
    if not changed_since:
        raise required("changedSince")
    names = [_entity(raw) for raw in entities.split(",") if raw.strip()]
    since = _moment(company, changed_since)
    if since < now - window_days * DAY:
        raise unsupported(
            f"Operation cdc with changedSince date {changed_since} which is older than fixed "
            "days is not supported."
        )
    changes: list[tuple[float, str, JsonObject, bool]] = []
    for name in names:
        for object_id, stored in company.table(name).items():
            changed_at = company.changed_at[(name, object_id)]
            if changed_at >= since:
                changes.append((changed_at, name, stored, False))
        for object_id, tombstone in company.tombstones.get(name, {}).items():
            if tombstone.deleted_at >= since:
                deleted = {
                    "domain": "QBO",
                    "status": "Deleted",
                    "Id": object_id,
                    "MetaData": {"LastUpdatedTime": tombstone.last_updated},
                }
                changes.append((tombstone.deleted_at, name, deleted, True))
    # No paging in CDC: past the cap the oldest changes win and the caller narrows the window.
    changes.sort(key=lambda change: change[0])
    kept = changes[:max_objects]
    responses: list[JsonObject] = []
    for name in names:
        rows = [row for _, entity, row, deleted in kept if entity == name and not deleted]
        rows += [row for _, entity, row, deleted in kept if entity == name and deleted]
        if rows:
            responses.append(
                {name: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)}
            )
        else:
            responses.append({})
    return {"CDCResponse": [{"QueryResponse": responses}]}


def _entity(raw: str) -> str:
    name = BY_LOWER_NAME.get(raw.strip().lower())
    if name is None or name not in WRITABLE:
        raise unsupported(f"Operation cdc is not supported for entity {raw.strip()}")
    return name


def _moment(company: Company, text: str) -> float:
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid_property("changedSince", f"changedSince is not a date: {text}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=company.tz)
    return moment.timestamp()
