"""Change Data Capture: what changed since a moment, grouped per entity, deletions last."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from qbsync.simulator.errors import QboError, invalid_property, required, unsupported
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.store import BY_LOWER_NAME, WRITABLE, Company

DAY = 86_400
# The forms of changedSince taken: Intuit's reference shows a date (2015-11-28) and a datetime
# with seconds and an offset (2026-01-10T00:00:00-08:00). Also taken:
# * no offset (2017-01-01T00:00:00): python-quickbooks sends it for a datetime and documents it,
#   and Intuit's PHP SDK sent it for years; QBO reads it as Pacific time (PHP SDK issue #69);
# * up to six decimals of a second: Python's isoformat() writes them, and the python-quickbooks
#   test of tests/clients sends it [U: not shown by Intuit].
# Refused [stricter]: "Z", an offset without a colon (-0800), more decimals, a space for "T",
# minutes without seconds, an offset on a date.
_CHANGED_SINCE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2})?)?")
# Intuit's servers' zone for a value without an offset (fixed: no daylight saving time here).
_PACIFIC = timezone(timedelta(hours=-8))


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
    since = _moment(changed_since)
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


def _moment(text: str) -> float:
    if _CHANGED_SINCE.fullmatch(text) is None:
        raise _not_a_moment(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:  # well formed, but no such day or time (2026-02-30)
        raise _not_a_moment(text) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_PACIFIC)
    return moment.timestamp()


def _not_a_moment(text: str) -> QboError:
    return invalid_property(
        "changedSince",
        f"changedSince must be a date (YYYY-MM-DD) or a date and time "
        f"(YYYY-MM-DDThh:mm:ss-08:00): {text}",
    )
