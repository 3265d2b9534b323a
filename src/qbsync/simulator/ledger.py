"""Writes to one company: SyncToken checks, sparse and full updates, delete, void, change events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from qbsync.simulator import schema
from qbsync.simulator.clock import SimClock
from qbsync.simulator.errors import (
    account_period_closed,
    business_rule,
    inactive_reference,
    invalid_reference,
    object_not_found,
    required,
    stale_object,
    unsupported,
)
from qbsync.simulator.fields import iso_date, mapping
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.store import NAME_LISTS, TRANSACTIONS, Company, writable_copy

_NAME_FIELD = {
    "Customer": "DisplayName",
    "Vendor": "DisplayName",
    "Employee": "DisplayName",
    "TaxCode": "Name",
}


@dataclass(frozen=True)
class ChangeEvent:
    realm_id: str
    entity: str
    entity_id: str
    operation: str  # Create | Update | Delete | Void | Merge, as Intuit's webhooks spell them
    timestamp: float
    # Merge only: the record merged into `entity_id` (legacy webhooks' deletedId).
    deleted_id: str | None = None


@dataclass(frozen=True)
class WriteRequest:
    sent: JsonObject  # the body the client sent, before a sparse merge
    allow_duplicate_doc_number: bool = False
    # Deactivating the record a merge takes away: what it is owed moves to the survivor.
    merging: bool = False


class Normalizer(Protocol):
    def __call__(
        self,
        ledger: Ledger,
        candidate: JsonObject,
        previous: JsonObject | None,
        request: WriteRequest,
    ) -> JsonObject: ...


@dataclass(frozen=True)
class EntityRules:
    """What one entity adds to the generic write path."""

    normalize: Normalizer
    after_write: Callable[[Ledger, JsonObject, JsonObject | None], None] | None = None
    check_delete: Callable[[Ledger, JsonObject], None] | None = None
    after_delete: Callable[[Ledger, JsonObject], None] | None = None
    # The voided body (checks first: nothing may change before the void is stored), then what
    # the void does to other objects once it is (stored, previous).
    void: Callable[[Ledger, JsonObject], JsonObject] | None = None
    after_void: Callable[[Ledger, JsonObject, JsonObject], None] | None = None
    # Merges (name lists): refuse a pair QBO would not merge (merged-away, survivor), then move
    # what must follow the survivor once the merged-away record is inactive.
    check_merge: Callable[[Ledger, JsonObject, JsonObject], None] | None = None
    after_merge: Callable[[Ledger, JsonObject, JsonObject], None] | None = None


class Ledger:
    def __init__(
        self,
        company: Company,
        clock: SimClock,
        rules: Mapping[str, EntityRules],
        on_change: Callable[[ChangeEvent], None],
        hidden: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.company = company
        self.clock = clock
        self._rules = rules
        self._on_change = on_change
        # Objects this view must not see: what earlier items of the same batch created.
        self.hidden = hidden
        self.created: list[tuple[str, str]] = []

    def without(self, hidden: frozenset[tuple[str, str]]) -> Ledger:
        """The same books, blind to `hidden` (batch items are independent of each other)."""
        return Ledger(self.company, self.clock, self._rules, self._on_change, hidden)

    def lookup(self, entity: str, object_id: str) -> JsonObject | None:
        if (entity, object_id) in self.hidden:
            return None
        return self.company.get(entity, object_id)

    def read(self, entity: str, object_id: str) -> JsonObject:
        stored = self.lookup(entity, object_id)
        if stored is None:
            raise object_not_found(entity, object_id)
        return stored

    def resolve(self, entity: str, object_id: str, element: str) -> JsonObject:
        """The active object a reference points to."""
        target = self.lookup(entity, object_id)
        if target is None:
            raise invalid_reference(element, object_id)
        if target.get("Active") is False:
            raise inactive_reference(element)
        return target

    def named_ref(self, entity: str, target: JsonObject) -> JsonObject:
        name = target.get(_NAME_FIELD.get(entity, "FullyQualifiedName"), target.get("Name"))
        return {"value": target["Id"], "name": name}

    def write(
        self, entity: str, operation: str | None, body: Any, include: frozenset[str] = frozenset()
    ) -> JsonObject:
        """Dispatch one API write; the result is what the response carries under the entity."""
        body = mapping(body, entity)
        schema.check(entity, body)
        schema.empty_as_absent(body, entity)
        request = WriteRequest(body, "allowduplicatedocnum" in include)
        if operation == "delete":
            return self.delete(entity, body)
        if operation == "void" or (operation == "update" and "void" in include):
            return self.void(entity, body)
        if operation == "create" or (operation is None and "Id" not in body):
            return self.create(entity, request)
        if operation in (None, "update"):
            return self.update(entity, request)
        raise unsupported(f"Operation {operation} is not supported for {entity}")

    def create(self, entity: str, request: WriteRequest) -> JsonObject:
        rules = self._rules[entity]
        self.check_period(entity, self._new_txn_date(entity, request.sent))
        normalized = rules.normalize(self, writable_copy(request.sent), None, request)
        timestamp = self.clock.timestamp()
        stored = self.company.insert(entity, normalized, timestamp)
        self.created.append((entity, stored["Id"]))
        self._notify(entity, stored["Id"], "Create", timestamp)
        if rules.after_write:
            rules.after_write(self, stored, None)
        return stored

    def update(self, entity: str, request: WriteRequest) -> JsonObject:
        previous = self._current(entity, request.sent)
        if (entity, previous["Id"]) in self.company.voided:
            raise business_rule("A voided transaction can't be changed.")
        candidate = writable_copy(request.sent)
        if request.sent.get("sparse") is True:
            candidate = {**writable_copy(previous), **candidate}
        # Moving a transaction out of a closed period changes that period as much as moving
        # one into it does: both dates must be open.
        self.check_period(entity, previous.get("TxnDate"), self._new_txn_date(entity, candidate))
        return self._replace(entity, previous, candidate, request, "Update")

    def delete(self, entity: str, body: JsonObject) -> JsonObject:
        previous = self._current(entity, body)
        if entity in NAME_LISTS:
            # Lists can't be deleted in QBO; "delete" makes the record inactive.
            candidate = {**writable_copy(previous), "Active": False}
            return self._replace(entity, previous, candidate, WriteRequest(candidate), "Delete")
        rules = self._rules[entity]
        self.check_period(entity, previous.get("TxnDate"))
        if rules.check_delete:
            rules.check_delete(self, previous)
        timestamp = self.clock.timestamp()
        self.company.remove(entity, previous["Id"], timestamp)
        self.company.voided.discard((entity, previous["Id"]))
        self._notify(entity, previous["Id"], "Delete", timestamp)
        if rules.after_delete:
            rules.after_delete(self, previous)
        return {"status": "Deleted", "domain": "QBO", "Id": previous["Id"]}

    def void(self, entity: str, body: JsonObject) -> JsonObject:
        previous = self._current(entity, body)
        rules = self._rules[entity]
        void = rules.void
        if void is None:
            raise unsupported(f"Operation void is not supported for {entity}")
        if (entity, previous["Id"]) in self.company.voided:
            # Whether QuickBooks voids a voided document again is not documented [stricter].
            raise business_rule("A voided transaction can't be changed.")
        self.check_period(entity, previous.get("TxnDate"))
        voided = void(self, previous)
        timestamp = self.clock.timestamp()
        stored = self.company.replace(entity, previous, voided, timestamp)
        self.company.voided.add((entity, stored["Id"]))
        # The void is notified before what it changes elsewhere (the invoices a payment paid,
        # the payments an invoice had), as a create or a delete is.
        self._notify(entity, stored["Id"], "Void", timestamp)
        if rules.after_void:
            rules.after_void(self, stored, previous)
        return stored

    def merge(self, entity: str, from_id: str, into_id: str) -> JsonObject:
        """A person merges one list record into another in QuickBooks; the survivor comes back.

        The merged-away record is made inactive as a deactivation would make it (a customer or
        vendor gets " (deleted)" after its name, which frees the name), and what it had moves to
        the survivor (see the entity's rules). Both get a new SyncToken [U: QBO does not say;
        a stale token is the stricter outcome]. One Merge event names the survivor and the
        merged-away Id; the merged-away record has no event of its own (Intuit's legacy sample).
        """
        rules = self._rules.get(entity)
        if rules is None or rules.check_merge is None:
            raise unsupported(f"Operation merge is not supported for {entity}")
        if from_id == into_id:
            raise business_rule(f"{entity} {from_id} can't be merged into itself.")
        merged_away = self.read(entity, from_id)
        survivor = self.read(entity, into_id)
        for record in (merged_away, survivor):
            if record.get("Active") is False:
                # Whether QBO merges inactive records is not documented [stricter].
                raise business_rule(f"{entity} {record['Id']} is inactive and can't be merged.")
        rules.check_merge(self, merged_away, survivor)
        # Normalised before anything moves, so that a refusal (a name already taken) changes
        # nothing.
        candidate = {**writable_copy(merged_away), "Active": False}
        deactivated = rules.normalize(
            self, candidate, merged_away, WriteRequest(candidate, merging=True)
        )
        timestamp = self.clock.timestamp()
        merged_away = self.company.replace(entity, merged_away, deactivated, timestamp)
        if rules.after_merge:
            rules.after_merge(self, merged_away, survivor)
        survivor = self.read(entity, into_id)
        timestamp = self.clock.timestamp()
        stored = self.company.replace(entity, survivor, writable_copy(survivor), timestamp)
        self._on_change(
            ChangeEvent(self.company.realm_id, entity, into_id, "Merge", timestamp, from_id)
        )
        return stored

    def touch(self, entity: str, previous: JsonObject, body: JsonObject) -> JsonObject:
        """A server-side change to another object (an invoice's balance after a payment)."""
        timestamp = self.clock.timestamp()
        stored = self.company.replace(entity, previous, body, timestamp)
        self._notify(entity, stored["Id"], "Update", timestamp)
        return stored

    def _new_txn_date(self, entity: str, candidate: JsonObject) -> str | None:
        """The TxnDate a write gives a transaction: the one sent, else the company's today."""
        if entity not in TRANSACTIONS:
            return None
        return iso_date(candidate, "TxnDate") or self.company.today(self.clock.timestamp())

    def check_period(self, entity: str, *txn_dates: str | None) -> None:
        """Refuse a write to a transaction dated on or before the books' closing date.

        Checked before the entity's own rules so that a refused write has no side effects
        (an invoice number taken, an account created). An invoice whose balance moves because
        of a payment is not checked: its own postings do not change. Payments a void unapplies
        are (see invoices.py): their lines are rewritten.
        """
        closed = self.company.book_close_date
        if closed is None or entity not in TRANSACTIONS:
            return
        # ISO dates compare as strings.
        if any(txn_date is not None and txn_date <= closed for txn_date in txn_dates):
            raise account_period_closed(closed)

    def _current(self, entity: str, body: JsonObject) -> JsonObject:
        object_id = body.get("Id")
        if object_id is None:
            raise required("Id")
        previous = self.read(entity, str(object_id))
        sync_token = body.get("SyncToken")
        if sync_token is None:
            raise required("SyncToken")
        if str(sync_token) != previous["SyncToken"]:
            raise stale_object(entity)
        return previous

    def _replace(
        self,
        entity: str,
        previous: JsonObject,
        candidate: JsonObject,
        request: WriteRequest,
        operation: str,
    ) -> JsonObject:
        rules = self._rules[entity]
        normalized = rules.normalize(self, candidate, previous, request)
        timestamp = self.clock.timestamp()
        stored = self.company.replace(entity, previous, normalized, timestamp)
        self._notify(entity, stored["Id"], operation, timestamp)
        if rules.after_write:
            rules.after_write(self, stored, previous)
        return stored

    def _notify(self, entity: str, entity_id: str, operation: str, timestamp: float) -> None:
        self._on_change(ChangeEvent(self.company.realm_id, entity, entity_id, operation, timestamp))
