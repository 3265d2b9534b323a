"""Customer matching: which QuickBooks customer is each platform client? Never a guess.

Pure code. `CustomerIndex` is built once from the company's whole customer list (inactive
customers included) and then matches many clients without reading QuickBooks again.

Rules, first that applies wins:

1. mapping: the client is already mapped. Matched (confidence 1.0) if that customer is in the
   list and active; otherwise ambiguous, with a note saying what a person should do.
2. email: customers sharing one of the client's addresses, case-insensitive. QuickBooks' email
   field may hold several addresses separated by commas or semicolons; each counts.
3. name: the client's name and company name against each customer's DisplayName and
   CompanyName, compared as `normalise_name` leaves them.
4. none.

For the email and name rules, the client is matched only when exactly one ACTIVE customer
qualifies and no other client is linked to it. Several active customers, an inactive-only match
or a customer taken by another client make the result ambiguous, with every customer concerned
as a candidate: an inactive customer is never the match, whatever the rule. Similar names (fuzzy
score of at least 85/100) are offered as candidates, never linked. `match_all` also makes two
clients of one batch that the email or name rule matched to the same customer both ambiguous.

`action_for` turns a result and the organisation's customer sync mode into what a sync does.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from rapidfuzz import fuzz, process

from qbsync.models import CustomerSyncMode
from qbsync.qbo import Customer

INACTIVE_SUFFIX = " (deleted)"
Rule = Literal["mapping", "email", "name", "none"]
Outcome = Literal["matched", "ambiguous", "none"]
Action = Literal["link", "create", "ambiguous", "skip"]

MAPPING_CONFIDENCE = 1.0
EMAIL_CONFIDENCE = 0.95
EMAIL_AND_NAME_CONFIDENCE = 0.98
DISPLAY_NAME_CONFIDENCE = 0.9
NORMALISED_NAME_CONFIDENCE = 0.8
NEAR_MISS_CUTOFF = 85.0
MAX_NEAR_MISSES = 5

# Stripped from the end of a name, repeatedly, but only after another word: so "Pty Ltd" goes
# from "Acme Pty Ltd", while a name made only of a suffix ("AB", "Co") keeps it and is not
# emptied. "co" is the risky one: it also abbreviates "County" or "Colorado", so "Denver Co"
# becomes "denver". That is accepted because a name links only when exactly one active, untaken
# customer has it; anything else is shown to a person. "Smith & Co" keeps its "and"
# ("smith and"), so it still differs from plain "Smith".
_SUFFIXES = frozenset(
    {
        "ltd",
        "limited",
        "llc",
        "llp",
        "lp",
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "gmbh",
        "ag",
        "plc",
        "pty",
        "sa",
        "sarl",
        "bv",
        "nv",
        "ab",
        "oy",
    }
)
# Removed without leaving a space, so "Amy's" == "Amys" and "L.L.C." == "LLC".
_JOINED = str.maketrans("", "", "'\u2019\u2018\u02bc`.")
_NON_WORD = re.compile(r"[\W_]+")
_EMAIL_SEPARATORS = re.compile(r"[,;]")


def normalise_name(name: str) -> str:
    """The form names are compared in; "" (for example from "!!!") never matches anything."""
    # NFKD before and after casefolding: casefolding can produce characters that decompose.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("&", " and ").replace("+", " and ").translate(_JOINED)
    words = _NON_WORD.sub(" ", text).split()
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return " ".join(words)


@dataclass(frozen=True)
class ClientFacts:
    platform_id: str
    name: str
    email: str | None = None
    company_name: str | None = None


@dataclass(frozen=True)
class Candidate:
    qbo_id: str
    display_name: str
    email: str | None
    active: bool
    reason: str
    score: float


@dataclass(frozen=True)
class MatchResult:
    outcome: Outcome
    rule: Rule
    confidence: float
    customer: Candidate | None
    candidates: tuple[Candidate, ...]
    note: str | None = None


@dataclass(frozen=True)
class _Entry:
    customer: Customer
    qbo_id: str
    active: bool
    names: frozenset[str]
    display_key: str


def _emails(raw: str | None) -> tuple[str, ...]:
    # An entry without "@" is a placeholder ("n/a", "-"), and two placeholders are no evidence.
    # lower(), not casefold(): casefolding makes straße@ and strasse@ one mailbox, which they
    # are not.
    found = (part.strip().lower() for part in _EMAIL_SEPARATORS.split(raw or ""))
    return tuple(dict.fromkeys(email for email in found if "@" in email))


def _names(*names: str | None) -> tuple[str, ...]:
    normalised = (normalise_name(name) for name in names if name)
    return tuple(dict.fromkeys(name for name in normalised if name))


def _address(customer: Customer) -> str | None:
    return customer.primary_email_addr.address if customer.primary_email_addr else None


def _lookup(index: Mapping[str, list[str]], keys: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for key in keys for i in index.get(key, ())))


class CustomerIndex:
    """Built once per customer list (inactive included); matches many clients without rereading.

    `taken` maps QuickBooks ids to the platform client already linked to each.
    """

    def __init__(
        self, customers: Sequence[Customer], *, taken: Mapping[str, str] | None = None
    ) -> None:
        self._taken = dict(taken or {})
        self._entries: dict[str, _Entry] = {}
        self._by_email: dict[str, list[str]] = defaultdict(list)
        self._by_name: dict[str, list[str]] = defaultdict(list)
        for customer in customers:
            if customer.id is None:
                continue
            active = customer.active is not False
            # QuickBooks renames a customer made inactive to "Name (deleted)"; the name it was
            # known by is what a client still carries.
            display = customer.display_name or ""
            if not active and display.endswith(INACTIVE_SUFFIX):
                display = display.removesuffix(INACTIVE_SUFFIX)
            entry = _Entry(
                customer=customer,
                qbo_id=customer.id,
                active=active,
                names=frozenset(_names(display, customer.company_name)),
                display_key=display.strip().casefold(),
            )
            self._entries[entry.qbo_id] = entry
            for email in _emails(_address(customer)):
                self._by_email[email].append(entry.qbo_id)
            for name in entry.names:
                self._by_name[name].append(entry.qbo_id)
        self._choices = list(self._by_name)

    def match(self, client: ClientFacts, mapped_qbo_id: str | None = None) -> MatchResult:
        if mapped_qbo_id is not None:
            return self._match_mapped(client, mapped_qbo_id)
        return self._match_unmapped(client)

    def match_all(
        self, clients: Sequence[ClientFacts], mappings: Mapping[str, str]
    ) -> dict[str, MatchResult]:
        """Match every client; `mappings` is platform id -> QuickBooks id, results by platform id.

        A customer can be linked to one client only, so clients of this batch that the email or
        name rule matched to the same customer all become ambiguous. Mapping matches stay.
        """
        results = {c.platform_id: self.match(c, mappings.get(c.platform_id)) for c in clients}
        claims: dict[str, list[str]] = defaultdict(list)
        for platform_id, result in results.items():
            if result.customer is not None:
                claims[result.customer.qbo_id].append(platform_id)
        for platform_ids in claims.values():
            if len(platform_ids) > 1:
                for platform_id in platform_ids:
                    others = [other for other in platform_ids if other != platform_id]
                    results[platform_id] = _shared(results[platform_id], others)
        return results

    def _match_mapped(self, client: ClientFacts, qbo_id: str) -> MatchResult:
        entry = self._entries.get(qbo_id)
        mapped: tuple[Candidate, ...] = ()
        if entry is None:
            note = (
                f"Mapped to QuickBooks customer id {qbo_id}, which is not in QuickBooks' customer "
                "list; map this client to another customer"
            )
        else:
            mapped = (self._candidate(entry, "mapped to this client", MAPPING_CONFIDENCE, client),)
            if entry.active:
                return MatchResult("matched", "mapping", MAPPING_CONFIDENCE, mapped[0], ())
            note = (
                f'Mapped to QuickBooks customer "{mapped[0].display_name}", which is inactive; '
                "reactivate it in QuickBooks or map this client to another customer"
            )
        # What the other rules find helps the person choose the replacement.
        found = self._match_unmapped(client)
        others = ((found.customer,) if found.customer else ()) + found.candidates
        candidates = mapped + tuple(c for c in others if c.qbo_id != qbo_id)
        return MatchResult("ambiguous", "mapping", 0.0, None, candidates, note)

    def _match_unmapped(self, client: ClientFacts) -> MatchResult:
        keys = _names(client.name, client.company_name)
        exact = {client.name.strip().casefold(), (client.company_name or "").strip().casefold()}
        email_ids = _lookup(self._by_email, _emails(client.email))
        name_ids = [i for i in _lookup(self._by_name, keys) if i not in email_ids]
        by_email = [
            self._candidate(entry, "same email", _email_score(entry, keys), client)
            for entry in map(self._entries.__getitem__, email_ids)
        ]
        by_name = [
            self._candidate(entry, "same name", _name_score(entry, exact), client)
            for entry in map(self._entries.__getitem__, name_ids)
        ]
        near = self._near_misses(client, keys, exclude={*email_ids, *name_ids})
        pool = _best_first(by_email) + _best_first(by_name) + near
        if by_email:
            return self._decide("email", by_email, pool, client)
        if by_name:
            return self._decide("name", by_name, pool, client)
        return MatchResult("none", "none", 0.0, None, tuple(near))

    def _decide(
        self, rule: Rule, found: list[Candidate], pool: list[Candidate], client: ClientFacts
    ) -> MatchResult:
        """Matched when exactly one active customer qualifies and no other client has it."""
        active = [c for c in found if c.active]
        if len(active) == 1:
            other = self._taken_by_other(active[0].qbo_id, client)
            if other is None:
                rest = tuple(c for c in pool if c is not active[0])
                return MatchResult("matched", rule, active[0].score, active[0], rest)
            note = (
                f'QuickBooks customer "{active[0].display_name}" has the same {rule} but is '
                f"already linked to client {other}; choose another customer or change that link"
            )
        elif active:
            note = (
                f"{len(active)} active QuickBooks customers have the same {rule}; "
                "choose the right one"
            )
        elif len(found) == 1:
            note = "The only match is inactive in QuickBooks: reactivate it or choose another"
        else:
            note = (
                f"All {len(found)} customers with the same {rule} are inactive in QuickBooks: "
                "reactivate one or choose another"
            )
        return MatchResult("ambiguous", rule, 0.0, None, tuple(pool), note)

    def _near_misses(
        self, client: ClientFacts, keys: Iterable[str], exclude: set[str]
    ) -> list[Candidate]:
        # token_sort_ratio rather than WRatio: word order does not count ("Smith John" is
        # "John Smith"), but an extra or missing word does, where WRatio's partial matching
        # would score "Acme" against "Acme Plumbing Holdings" at 90 and flood people with noise.
        best: dict[str, float] = {}
        for key in keys:
            hits = process.extract(
                key,
                self._choices,
                scorer=fuzz.token_sort_ratio,
                processor=None,
                score_cutoff=NEAR_MISS_CUTOFF,
                limit=None,
            )
            for name, score, _ in hits:
                for qbo_id in self._by_name[name]:
                    if qbo_id not in exclude and score > best.get(qbo_id, 0.0):
                        best[qbo_id] = score
        ranked = sorted(best.items(), key=lambda item: -item[1])[:MAX_NEAR_MISSES]
        return [
            self._candidate(self._entries[i], f"similar name ({score:.0f}%)", score / 100, client)
            for i, score in ranked
        ]

    def _taken_by_other(self, qbo_id: str, client: ClientFacts) -> str | None:
        other = self._taken.get(qbo_id)
        return other if other != client.platform_id else None

    def _candidate(
        self, entry: _Entry, reason: str, score: float, client: ClientFacts
    ) -> Candidate:
        reasons = [reason]
        if not entry.active:
            reasons.append("inactive in QuickBooks")
        other = self._taken_by_other(entry.qbo_id, client)
        if other is not None:
            reasons.append(f"already linked to client {other}")
        return Candidate(
            qbo_id=entry.qbo_id,
            display_name=entry.customer.display_name or "",
            email=(_address(entry.customer) or "").strip() or None,
            active=entry.active,
            reason=", ".join(reasons),
            score=score,
        )


def _email_score(entry: _Entry, keys: Iterable[str]) -> float:
    same_name = not entry.names.isdisjoint(keys)
    return EMAIL_AND_NAME_CONFIDENCE if same_name else EMAIL_CONFIDENCE


def _name_score(entry: _Entry, exact: set[str]) -> float:
    if entry.display_key and entry.display_key in exact:
        return DISPLAY_NAME_CONFIDENCE
    return NORMALISED_NAME_CONFIDENCE


def _best_first(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: -c.score)


def _shared(result: MatchResult, others: list[str]) -> MatchResult:
    """A batch matched this result's customer to other clients too; mapping matches stay."""
    if result.customer is None or result.rule == "mapping":
        return result
    clients = ", ".join(others)
    shared = replace(result.customer, reason=f"{result.customer.reason}, also matched to {clients}")
    note = (
        f'QuickBooks customer "{shared.display_name}" is also matched to client {clients} in '
        "this batch; a customer can be linked to one client only, so choose which"
    )
    return MatchResult("ambiguous", result.rule, 0.0, None, (shared, *result.candidates), note)


def action_for(result: MatchResult, mode: CustomerSyncMode) -> Action:
    """What a sync does with this client: link, create, leave for a person, or skip."""
    if result.rule == "mapping":
        return "link" if result.outcome == "matched" else "ambiguous"
    if mode == CustomerSyncMode.AUTO_CREATE:
        # Matching still ran: its candidates are shown to the user as warnings.
        return "create"
    if result.outcome == "matched":
        return "link"
    if result.outcome == "ambiguous":
        return "ambiguous"
    return "create" if mode == CustomerSyncMode.MATCH_THEN_CREATE else "skip"
