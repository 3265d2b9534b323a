"""One company's books in memory: objects by entity and Id, deletions, remembered responses."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from qbsync.simulator.config import CompanySpec
from qbsync.simulator.jsonio import JsonObject

NAME_LISTS = frozenset({"Customer", "Vendor", "Employee", "Item", "Account"})
TRANSACTIONS = frozenset({"Invoice", "Payment", "Bill", "Purchase"})
WRITABLE = NAME_LISTS | TRANSACTIONS
READ_ONLY = frozenset({"CompanyInfo", "Preferences", "TaxCode", "TaxRate"})
ALL_ENTITIES = WRITABLE | READ_ONLY
BY_LOWER_NAME = {name.lower(): name for name in ALL_ENTITIES}

# QBO numbers all transactions from one sequence and each list from its own.
_SEQUENCE = dict.fromkeys(TRANSACTIONS, "Transaction")

# Values QBO keeps unique, indexed so that checks stay cheap in companies with many records.
# Customers, vendors and employees share one name space.
UNIQUE_FIELDS = {
    "Customer": ("names", "DisplayName"),
    "Vendor": ("names", "DisplayName"),
    "Employee": ("names", "DisplayName"),
    "Item": ("items", "Name"),
    "Account": ("accounts", "Name"),
    "Invoice": ("invoice-numbers", "DocNumber"),
}

# Read-only balances a write can't change: a replace keeps the stored figure. A customer's
# follows its invoices and payments (Company._follow_balance); a vendor's stays its opening
# balance (bills are not counted).
_SERVER_BALANCES = frozenset({"Customer", "Vendor"})

# Fixed offsets: the simulator does not model daylight saving time.
_ZONES = {"US": timezone(timedelta(hours=-8)), "GB": UTC}


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes
    # What the first request with this requestid did ("customer create", "batch", ...).
    fingerprint: str


@dataclass(frozen=True)
class Tombstone:
    deleted_at: float
    last_updated: str


@dataclass
class Company:
    spec: CompanySpec
    objects: dict[str, dict[str, JsonObject]] = field(default_factory=dict)
    # Exact change times (MetaData shows whole seconds, CDC must not lose sub-second changes).
    changed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    tombstones: dict[str, dict[str, Tombstone]] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    responses: dict[str, StoredResponse] = field(default_factory=dict)
    # invoice Id -> payment Id -> amount applied: the source of every invoice's Balance.
    applied: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    voided: set[tuple[str, str]] = field(default_factory=set)
    # (entity, Id) -> the highest line Id a transaction ever had, so that new lines never
    # take the Id of a removed one.
    line_marks: dict[tuple[str, str], int] = field(default_factory=dict)
    _unique: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)

    @property
    def realm_id(self) -> str:
        return self.spec.realm_id

    @property
    def is_us(self) -> bool:
        return self.spec.country == "US"

    @property
    def tz(self) -> timezone:
        return _ZONES[self.spec.country]

    @property
    def home_currency(self) -> JsonObject:
        if self.is_us:
            return {"value": "USD", "name": "United States Dollar"}
        return {"value": "GBP", "name": "British Pound Sterling"}

    @property
    def preferences(self) -> JsonObject:
        return self.objects["Preferences"]["1"]

    @property
    def multicurrency(self) -> bool:
        return self.preferences["CurrencyPrefs"]["MultiCurrencyEnabled"] is True

    @property
    def book_close_date(self) -> str | None:
        """The last day of the closed period ("YYYY-MM-DD"), or None while the books are open."""
        closed: str | None = self.preferences["AccountingInfoPrefs"].get("BookCloseDate")
        return closed

    def local(self, timestamp: float) -> datetime:
        return datetime.fromtimestamp(timestamp, self.tz)

    def today(self, timestamp: float) -> str:
        """The company's date at `timestamp`: what a transaction sent without TxnDate gets."""
        return self.local(timestamp).date().isoformat()

    def stamp(self, timestamp: float) -> str:
        return self.local(timestamp).isoformat(timespec="seconds")

    def response_time(self, timestamp: float) -> str:
        return self.local(timestamp).isoformat(timespec="milliseconds")

    def table(self, entity: str) -> dict[str, JsonObject]:
        return self.objects.setdefault(entity, {})

    def get(self, entity: str, object_id: str) -> JsonObject | None:
        return self.table(entity).get(object_id)

    def holders(self, index: str, value: str) -> frozenset[tuple[str, str]]:
        """(entity, Id) of the records whose unique field equals `value`, ignoring case."""
        return frozenset(self._unique.get((index, value.casefold()), ()))

    def next_id(self, entity: str) -> str:
        sequence = _SEQUENCE.get(entity, entity)
        value = self.sequences.get(sequence, 0) + 1
        self.sequences[sequence] = value
        return str(value)

    def insert(
        self, entity: str, body: JsonObject, timestamp: float, object_id: str | None = None
    ) -> JsonObject:
        stamp = self.stamp(timestamp)
        stored = {
            **body,
            "domain": "QBO",
            "sparse": False,
            "Id": object_id or self.next_id(entity),
            "SyncToken": "0",
            "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
        }
        self._store(entity, stored, timestamp)
        return stored

    def replace(
        self, entity: str, previous: JsonObject, body: JsonObject, timestamp: float
    ) -> JsonObject:
        stored = {
            **body,
            "domain": "QBO",
            "sparse": False,
            "Id": previous["Id"],
            "SyncToken": str(int(previous["SyncToken"]) + 1),
            "MetaData": {
                "CreateTime": previous["MetaData"]["CreateTime"],
                "LastUpdatedTime": self.stamp(timestamp),
            },
        }
        if entity in _SERVER_BALANCES:
            stored["Balance"] = previous["Balance"]
        self._index(entity, previous, add=False)
        self._store(entity, stored, timestamp)
        return stored

    def remove(self, entity: str, object_id: str, timestamp: float) -> None:
        removed = self.table(entity).pop(object_id)
        self._follow_balance(entity, removed, None)
        self._index(entity, removed, add=False)
        self.changed_at.pop((entity, object_id), None)
        self.tombstones.setdefault(entity, {})[object_id] = Tombstone(
            timestamp, self.stamp(timestamp)
        )

    def line_mark(self, entity: str, object_id: str) -> int:
        return self.line_marks.get((entity, object_id), 0)

    def move_balance(self, entity: str, from_id: str, into_id: str) -> None:
        """What is left of one customer's or vendor's Balance once its transactions have moved
        (its opening balance) goes to another, as a merge moves the opening-balance entry."""
        merged_away = self.table(entity)[from_id]
        self.table(entity)[into_id]["Balance"] += merged_away["Balance"]
        merged_away["Balance"] = Decimal("0.00")

    def _follow_balance(self, entity: str, old: JsonObject | None, new: JsonObject | None) -> None:
        """A customer's Balance is what it owes: its opening balance, plus its invoices' open
        balances, less its payments' unapplied credit [U: QBO calls it the open balance]. Kept
        in place, without a new SyncToken, LastUpdatedTime or webhook for the customer [U:
        QBO does not say whether its invoices and payments change the customer's version]."""
        if entity not in ("Invoice", "Payment"):
            return
        for stored, sign in ((old, -1), (new, 1)):
            if stored is not None:
                owed = stored["Balance"] if entity == "Invoice" else -stored["UnappliedAmt"]
                self.table("Customer")[stored["CustomerRef"]["value"]]["Balance"] += sign * owed

    def _store(self, entity: str, stored: JsonObject, timestamp: float) -> None:
        self._follow_balance(entity, self.table(entity).get(stored["Id"]), stored)
        self.table(entity)[stored["Id"]] = stored
        self.changed_at[(entity, stored["Id"])] = timestamp
        self._index(entity, stored, add=True)
        line_ids = [
            int(line["Id"])
            for line in stored.get("Line") or []
            if isinstance(line, dict)
            and str(line.get("Id", "")).isascii()
            and str(line.get("Id", "")).isdigit()
        ]
        if line_ids:
            key = (entity, stored["Id"])
            self.line_marks[key] = max(self.line_marks.get(key, 0), *line_ids)

    def snapshot(self) -> JsonObject:
        """Everything needed to rebuild this company after a restart (see persistence.py)."""
        return {
            "spec": self.spec.model_dump(),
            "objects": self.objects,
            "changed_at": [[entity, oid, at] for (entity, oid), at in self.changed_at.items()],
            "tombstones": {
                entity: {oid: [stone.deleted_at, stone.last_updated] for oid, stone in rows.items()}
                for entity, rows in self.tombstones.items()
            },
            "sequences": self.sequences,
            "responses": {
                requestid: [stored.status_code, stored.body.decode(), stored.fingerprint]
                for requestid, stored in self.responses.items()
            },
            "applied": self.applied,
            "voided": [list(key) for key in sorted(self.voided)],
            "line_marks": [[entity, oid, mark] for (entity, oid), mark in self.line_marks.items()],
        }

    @classmethod
    def restore(cls, data: JsonObject) -> Company:
        company = cls(
            CompanySpec.model_validate(data["spec"]),
            objects=data["objects"],
            changed_at={(entity, oid): at for entity, oid, at in data["changed_at"]},
            tombstones={
                entity: {oid: Tombstone(at, stamp) for oid, (at, stamp) in rows.items()}
                for entity, rows in data["tombstones"].items()
            },
            sequences=data["sequences"],
            responses={
                requestid: StoredResponse(status, body.encode(), fingerprint)
                for requestid, (status, body, fingerprint) in data["responses"].items()
            },
            applied=data["applied"],
            voided={(entity, oid) for entity, oid in data["voided"]},
            line_marks={(entity, oid): mark for entity, oid, mark in data["line_marks"]},
        )
        for entity, rows in company.objects.items():
            for stored in rows.values():
                company._index(entity, stored, add=True)
        return company

    def _index(self, entity: str, stored: JsonObject, *, add: bool) -> None:
        unique = UNIQUE_FIELDS.get(entity)
        value = stored.get(unique[1]) if unique else None
        if unique is None or not isinstance(value, str):
            return
        holders = self._unique.setdefault((unique[0], value.casefold()), set())
        if add:
            holders.add((entity, stored["Id"]))
        else:
            holders.discard((entity, stored["Id"]))


def writable_copy(stored: JsonObject) -> JsonObject:
    """A stored object without the fields the server owns, ready to be edited."""
    body = copy.deepcopy(stored)
    for key in ("domain", "sparse", "Id", "SyncToken", "MetaData"):
        body.pop(key, None)
    return body
