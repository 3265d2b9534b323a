"""Customer matching: mapping, then email, then name; never a guess, never an inactive customer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbsync.mappings.matching import (
    Action,
    ClientFacts,
    CustomerIndex,
    MatchResult,
    action_for,
    normalise_name,
)
from qbsync.models import CustomerSyncMode
from qbsync.qbo import Customer


def customer(
    qbo_id: str,
    name: str,
    email: str | None = None,
    *,
    active: bool | None = None,
    company: str | None = None,
) -> Customer:
    """A customer as QuickBooks sends it, so the wire names are exercised too."""
    wire: dict[str, object] = {"Id": qbo_id, "DisplayName": name}
    if email is not None:
        wire["PrimaryEmailAddr"] = {"Address": email}
    if active is not None:
        wire["Active"] = active
    if company is not None:
        wire["CompanyName"] = company
    return Customer.model_validate(wire)


def client(
    name: str, email: str | None = None, *, pid: str = "cl_1", company: str | None = None
) -> ClientFacts:
    return ClientFacts(platform_id=pid, name=name, email=email, company_name=company)


def ids(result: MatchResult) -> list[str]:
    return [c.qbo_id for c in result.candidates]


# --- rule 1: an existing mapping ---------------------------------------------------------------


def test_an_existing_mapping_matches_with_full_confidence() -> None:
    index = CustomerIndex([customer("7", "Someone Else", "other@x.test")])

    result = index.match(client("Acme", "ap@acme.test"), mapped_qbo_id="7")

    assert result.outcome == "matched"
    assert result.rule == "mapping"
    assert result.confidence == 1.0
    assert result.customer is not None
    assert result.customer.qbo_id == "7"
    assert result.note is None


def test_a_mapping_to_an_inactive_customer_asks_a_person() -> None:
    index = CustomerIndex(
        [customer("7", "Acme Old", active=False), customer("8", "Acme", "ap@acme.test")]
    )

    result = index.match(client("Acme", "ap@acme.test"), mapped_qbo_id="7")

    assert result.outcome == "ambiguous"
    assert result.rule == "mapping"
    assert result.customer is None
    assert result.confidence == 0.0
    assert result.note is not None
    assert '"Acme Old", which is inactive' in result.note
    assert "reactivate" in result.note
    # The inactive mapped customer first, then what the other rules would have found.
    assert ids(result) == ["7", "8"]
    assert not result.candidates[0].active
    assert "inactive" in result.candidates[0].reason


def test_a_mapping_to_a_customer_no_longer_in_quickbooks_asks_a_person() -> None:
    index = CustomerIndex([customer("8", "Acme")])

    result = index.match(client("Acme"), mapped_qbo_id="99")

    assert result.outcome == "ambiguous"
    assert result.rule == "mapping"
    assert result.customer is None
    assert result.note is not None
    assert "99" in result.note
    assert "map this client to another customer" in result.note
    assert ids(result) == ["8"]


# --- rule 2: email ------------------------------------------------------------------------------


def test_a_unique_email_matches_case_insensitively_and_trimmed() -> None:
    index = CustomerIndex([customer("1", "Acme Trading", "  AP@Acme.Test ")])

    result = index.match(client("Acme Holdings", "ap@acme.test"))

    assert result.outcome == "matched"
    assert result.rule == "email"
    assert result.confidence == 0.95
    assert result.customer is not None
    assert result.customer.qbo_id == "1"
    assert result.customer.reason == "same email"
    assert result.customer.email == "AP@Acme.Test"


def test_an_email_match_whose_name_also_agrees_is_more_confident() -> None:
    index = CustomerIndex([customer("1", "Acme Ltd", "ap@acme.test")])

    result = index.match(client("ACME", "ap@acme.test"))

    assert result.outcome == "matched"
    assert result.confidence == 0.98


@pytest.mark.parametrize("field", ["a@x.test, ap@acme.test", "a@x.test;ap@acme.test ; b@y.test"])
def test_every_address_in_a_multi_address_email_field_counts(field: str) -> None:
    index = CustomerIndex([customer("1", "Acme", field)])

    result = index.match(client("Someone", "AP@acme.test"))

    assert result.outcome == "matched"
    assert result.rule == "email"
    assert result.customer is not None
    assert result.customer.qbo_id == "1"


def test_a_placeholder_email_is_no_evidence() -> None:
    index = CustomerIndex([customer("1", "Acme", "n/a")])

    assert index.match(client("Someone", "N/A")).outcome == "none"


def test_an_email_shared_by_two_active_customers_is_never_a_guess() -> None:
    index = CustomerIndex(
        [
            customer("1", "Acme North", "books@acme.test"),
            customer("2", "Acme South", "Books@Acme.test"),
        ]
    )

    result = index.match(client("Acme North", "books@acme.test"))

    assert result.outcome == "ambiguous"
    assert result.rule == "email"
    assert result.customer is None
    assert result.confidence == 0.0
    assert set(ids(result)) == {"1", "2"}
    assert result.note is not None
    assert "2 active QuickBooks customers have the same email" in result.note


def test_a_shared_email_where_one_is_inactive_matches_the_active_one() -> None:
    index = CustomerIndex(
        [
            customer("1", "Acme (old)", "books@acme.test", active=False),
            customer("2", "Acme", "books@acme.test", active=True),
        ]
    )

    result = index.match(client("Acme Group", "books@acme.test"))

    assert result.outcome == "matched"
    assert result.customer is not None
    assert result.customer.qbo_id == "2"
    # The inactive one is only ever shown, flagged as inactive.
    inactive = [c for c in result.candidates if c.qbo_id == "1"]
    assert len(inactive) == 1
    assert not inactive[0].active
    assert "inactive in QuickBooks" in inactive[0].reason


def test_the_only_email_match_being_inactive_asks_a_person() -> None:
    index = CustomerIndex([customer("1", "Acme", "books@acme.test", active=False)])

    result = index.match(client("Acme", "books@acme.test"))

    assert result.outcome == "ambiguous"
    assert result.rule == "email"
    assert result.customer is None
    assert ids(result) == ["1"]
    assert not result.candidates[0].active
    assert "inactive" in result.candidates[0].reason
    assert result.note == (
        "The only match is inactive in QuickBooks: reactivate it or choose another"
    )


def test_several_inactive_email_matches_ask_a_person() -> None:
    index = CustomerIndex(
        [
            customer("1", "Acme A", "books@acme.test", active=False),
            customer("2", "Acme B", "books@acme.test", active=False),
        ]
    )

    result = index.match(client("Acme", "books@acme.test"))

    assert result.outcome == "ambiguous"
    assert result.note is not None
    assert "All 2 customers with the same email are inactive" in result.note


def test_email_beats_a_name_that_points_elsewhere_which_is_still_shown() -> None:
    index = CustomerIndex([customer("1", "Acme"), customer("2", "Bob Jones", "ap@acme.test")])

    result = index.match(client("Acme", "ap@acme.test"))

    assert result.outcome == "matched"
    assert result.rule == "email"
    assert result.customer is not None
    assert result.customer.qbo_id == "2"
    assert [(c.qbo_id, c.reason) for c in result.candidates] == [("1", "same name")]


# --- rule 3: name -------------------------------------------------------------------------------


def test_a_display_name_equal_but_for_case_and_spaces_matches_at_0_9() -> None:
    index = CustomerIndex([customer("1", "  Acme Trading ")])

    result = index.match(client("ACME trading"))

    assert result.outcome == "matched"
    assert result.rule == "name"
    assert result.confidence == 0.9
    assert result.customer is not None
    assert result.customer.reason == "same name"


def test_a_name_equal_only_after_normalisation_matches_at_0_8() -> None:
    index = CustomerIndex([customer("1", "Café Noël Ltd")])

    result = index.match(client("Cafe Noel"))

    assert result.outcome == "matched"
    assert result.rule == "name"
    assert result.confidence == 0.8


def test_company_names_count_on_both_sides() -> None:
    index = CustomerIndex([customer("1", "Jane Smith", company="Smith Plumbing Pty Ltd")])

    result = index.match(client("J. Smith", company="Smith Plumbing"))

    assert result.outcome == "matched"
    assert result.rule == "name"
    assert result.customer is not None
    assert result.customer.qbo_id == "1"


def test_two_customers_whose_names_normalise_alike_are_ambiguous() -> None:
    index = CustomerIndex([customer("1", "Acme Ltd"), customer("2", "ACME, Inc.")])

    result = index.match(client("Acme"))

    assert result.outcome == "ambiguous"
    assert result.rule == "name"
    assert result.customer is None
    assert set(ids(result)) == {"1", "2"}
    assert result.note is not None
    assert "same name" in result.note


def test_the_only_name_match_being_inactive_asks_a_person() -> None:
    index = CustomerIndex([customer("1", "Acme", active=False)])

    result = index.match(client("Acme"))

    assert result.outcome == "ambiguous"
    assert result.rule == "name"
    assert ids(result) == ["1"]
    assert not result.candidates[0].active


@pytest.mark.parametrize("name", ["!!!", "  ", "- / -", "..."])
def test_a_name_empty_after_normalisation_never_matches(name: str) -> None:
    index = CustomerIndex([customer("1", name), customer("2", "Acme")])

    result = index.match(client(name))

    assert normalise_name(name) == ""
    assert result.outcome == "none"
    assert result.candidates == ()


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Café Noël Ltd", "Cafe Noel"),
        ("Smith & Sons", "smith and sons"),
        ("Salt + Pepper", "Salt and Pepper"),
        ("Acme Pty Ltd", "Acme"),
        ("Acme Pty. Ltd.", "Acme"),
        ("Acme L.L.C.", "Acme"),
        ("Acme, Inc.", "acme"),
        ("Acme Corporation", "Acme"),
        ("Müller GmbH", "Muller"),
        ("Nokia Oy", "Nokia"),
        ("Amy's Bakery", "Amys Bakery"),
        ("Amy\u2019s Bakery", "Amys Bakery"),
        ("O'Brien-Smith", "obrien smith"),
        ("  ACME \t  Trading\n", "acme trading"),
        ("Smith Co", "Smith"),
        ("Smith Co Ltd", "Smith"),
        ("Straße", "STRASSE"),
    ],
)
def test_names_that_normalise_alike(left: str, right: str) -> None:
    assert normalise_name(left) == normalise_name(right)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Café Noël Ltd", "cafe noel"),
        ("Acme Pty Ltd", "acme"),
        ("Smith & Co", "smith and"),
        # A suffix only counts after another word, so such a name is never emptied.
        ("Co", "co"),
        ("AB", "ab"),
        # Only a trailing suffix goes.
        ("Co-operative Bakers", "co operative bakers"),
        ("Inc Magazine", "inc magazine"),
    ],
)
def test_normal_forms(name: str, expected: str) -> None:
    assert normalise_name(name) == expected


@given(st.text())
def test_normalising_twice_changes_nothing(name: str) -> None:
    once = normalise_name(name)
    assert normalise_name(once) == once


# --- near misses --------------------------------------------------------------------------------


def test_a_near_miss_is_offered_as_a_candidate_and_never_linked() -> None:
    index = CustomerIndex([customer("1", "Acme Ltd")])

    result = index.match(client("Acmee Limited"))

    assert result.outcome == "none"
    assert result.rule == "none"
    assert result.customer is None
    assert ids(result) == ["1"]
    assert result.candidates[0].reason == "similar name (89%)"
    assert result.candidates[0].score == pytest.approx(0.889, abs=0.001)
    assert action_for(result, CustomerSyncMode.MATCH_ONLY) == "skip"


def test_near_misses_are_at_most_five_best_first() -> None:
    # Seven names within reach (91..96%), one just out of it (83%).
    similar = ["Acme Tradin", "Acme Tradings", "Acme Tradinggg", "Acme Tradingg", "Acne Trading"]
    similar += ["Acme Tradng", "Acme Trding"]
    index = CustomerIndex(
        [customer(str(n), name) for n, name in enumerate([*similar, "Acmx Tradinx"])]
    )

    result = index.match(client("Acme Trading"))

    assert result.outcome == "none"
    assert len(result.candidates) == 5
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(0.96)
    assert all(score >= 0.85 for score in scores)
    assert "Acme Tradinggg" not in [c.display_name for c in result.candidates]


def test_an_unrelated_name_offers_nothing() -> None:
    index = CustomerIndex([customer("1", "Acme Ltd")])

    assert index.match(client("Globex")).candidates == ()


# --- taken customers and batches ---------------------------------------------------------------


def test_a_customer_taken_by_another_client_is_not_matched() -> None:
    index = CustomerIndex([customer("1", "Acme", "ap@acme.test")], taken={"1": "cl_9"})

    result = index.match(client("Acme", "ap@acme.test", pid="cl_1"))

    assert result.outcome == "ambiguous"
    assert result.rule == "email"
    assert result.customer is None
    assert ids(result) == ["1"]
    assert "already linked to client cl_9" in result.candidates[0].reason
    assert result.note is not None
    assert "cl_9" in result.note


def test_a_customer_taken_by_this_client_still_matches() -> None:
    index = CustomerIndex([customer("1", "Acme")], taken={"1": "cl_1"})

    result = index.match(client("Acme", pid="cl_1"))

    assert result.outcome == "matched"
    assert result.customer is not None
    assert result.customer.reason == "same name"


def test_two_clients_of_one_batch_matching_one_customer_are_both_ambiguous() -> None:
    index = CustomerIndex([customer("1", "Acme", "ap@acme.test"), customer("2", "Globex")])
    clients = [
        client("Acme", pid="cl_1"),
        client("Acme Pty Ltd", "ap@acme.test", pid="cl_2"),
        client("Globex", pid="cl_3"),
    ]

    results = index.match_all(clients, {})

    for pid, other in [("cl_1", "cl_2"), ("cl_2", "cl_1")]:
        result = results[pid]
        assert result.outcome == "ambiguous"
        assert result.customer is None
        assert ids(result)[0] == "1"
        assert result.note is not None
        assert f"also matched to client {other}" in result.note
    assert results["cl_3"].outcome == "matched"


def test_a_mapping_match_is_never_downgraded_in_a_batch() -> None:
    index = CustomerIndex([customer("1", "Acme")])
    clients = [client("Acme Holdings", pid="cl_1"), client("Acme", pid="cl_2")]

    results = index.match_all(clients, {"cl_1": "1"})

    assert results["cl_1"].outcome == "matched"
    assert results["cl_1"].rule == "mapping"
    assert results["cl_2"].outcome == "ambiguous"
    assert results["cl_2"].rule == "name"
    assert results["cl_2"].note is not None
    assert "cl_1" in results["cl_2"].note


# --- action_for ---------------------------------------------------------------------------------

MODES = list(CustomerSyncMode)
_INDEX = CustomerIndex(
    [
        customer("1", "Acme", "ap@acme.test"),
        customer("2", "Twin"),
        customer("3", "Twin Ltd"),
        customer("4", "Gone", active=False),
    ]
)
RESULTS = {
    "mapped": _INDEX.match(client("Acme"), mapped_qbo_id="1"),
    "mapped to inactive": _INDEX.match(client("Gone"), mapped_qbo_id="4"),
    "matched": _INDEX.match(client("Someone", "ap@acme.test")),
    "ambiguous": _INDEX.match(client("Twin")),
    "none": _INDEX.match(client("Nobody")),
}


@pytest.mark.parametrize(
    ("case", "mode", "expected"),
    [
        ("mapped", CustomerSyncMode.AUTO_CREATE, "link"),
        ("mapped", CustomerSyncMode.MATCH_THEN_CREATE, "link"),
        ("mapped", CustomerSyncMode.MATCH_ONLY, "link"),
        ("mapped to inactive", CustomerSyncMode.AUTO_CREATE, "ambiguous"),
        ("mapped to inactive", CustomerSyncMode.MATCH_THEN_CREATE, "ambiguous"),
        ("mapped to inactive", CustomerSyncMode.MATCH_ONLY, "ambiguous"),
        ("matched", CustomerSyncMode.AUTO_CREATE, "create"),
        ("matched", CustomerSyncMode.MATCH_THEN_CREATE, "link"),
        ("matched", CustomerSyncMode.MATCH_ONLY, "link"),
        ("ambiguous", CustomerSyncMode.AUTO_CREATE, "create"),
        ("ambiguous", CustomerSyncMode.MATCH_THEN_CREATE, "ambiguous"),
        ("ambiguous", CustomerSyncMode.MATCH_ONLY, "ambiguous"),
        ("none", CustomerSyncMode.AUTO_CREATE, "create"),
        ("none", CustomerSyncMode.MATCH_THEN_CREATE, "create"),
        ("none", CustomerSyncMode.MATCH_ONLY, "skip"),
    ],
)
def test_action_for(case: str, mode: CustomerSyncMode, expected: Action) -> None:
    assert action_for(RESULTS[case], mode) == expected


def test_the_action_cases_are_what_they_say() -> None:
    assert [(r.outcome, r.rule) for r in RESULTS.values()] == [
        ("matched", "mapping"),
        ("ambiguous", "mapping"),
        ("matched", "email"),
        ("ambiguous", "name"),
        ("none", "none"),
    ]


# --- properties ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["Acme", "ACME Ltd", "Acmee", "Globex", "Café", "Cafe Inc", "!!"])
EMAILS = st.sampled_from([None, "a@x.test", "A@x.test; b@x.test", "b@x.test", "n/a"])
CUSTOMERS = st.lists(
    st.builds(
        lambda n, name, email, active: customer(str(n), name, email, active=active),
        st.integers(0, 6),
        NAMES,
        EMAILS,
        st.sampled_from([None, True, False]),
    ),
    max_size=8,
)
CLIENTS = st.lists(
    st.builds(
        lambda n, name, email: client(name, email, pid=f"cl_{n}"),
        st.integers(0, 4),
        NAMES,
        EMAILS,
    ),
    max_size=5,
    unique_by=lambda c: c.platform_id,
)


@given(
    CUSTOMERS,
    CLIENTS,
    st.dictionaries(st.sampled_from([f"cl_{n}" for n in range(5)]), st.integers(0, 7).map(str)),
    st.dictionaries(st.integers(0, 7).map(str), st.sampled_from(["cl_0", "cl_1", "cl_8"])),
)
def test_a_match_is_always_an_active_untaken_customer_and_linked_once(
    customers: list[Customer],
    clients: list[ClientFacts],
    mappings: dict[str, str],
    taken: dict[str, str],
) -> None:
    index = CustomerIndex(customers, taken=taken)

    results = index.match_all(clients, mappings)

    by_rules: list[str] = []
    by_mapping: list[str] = []
    for pid, result in results.items():
        assert (result.customer is not None) == (result.outcome == "matched")
        assert (result.confidence > 0) == (result.outcome == "matched")
        assert (result.note is not None) == (result.outcome == "ambiguous")
        if result.customer is None:
            continue
        # The index keeps the last record of an id it was given twice.
        matched = [row for row in customers if row.id == result.customer.qbo_id][-1]
        assert matched.active is not False
        assert result.customer.active
        if result.rule == "mapping":
            assert mappings[pid] == result.customer.qbo_id
            by_mapping.append(result.customer.qbo_id)
        else:
            assert taken.get(result.customer.qbo_id, pid) == pid
            by_rules.append(result.customer.qbo_id)
    # One customer, one client: email and name never link a customer twice, nor one a
    # mapping already links in this batch.
    assert len(set(by_rules)) == len(by_rules)
    assert set(by_rules).isdisjoint(by_mapping)


def test_emails_differing_only_by_a_casefold_are_different_mailboxes() -> None:
    """lower(), not casefold(): straße@ and strasse@ are two addresses."""
    index = CustomerIndex(
        [
            Customer(
                id="1", display_name="Strasse GmbH", primary_email_addr={"Address": "strasse@x.de"}
            )
        ]
    )
    result = index.match(ClientFacts("c", "Someone", "straße@x.de"))
    assert (result.outcome, result.rule) == ("none", "none")


def test_an_inactive_customer_renamed_by_quickbooks_still_blocks_a_silent_match() -> None:
    """QuickBooks renames an inactive customer "John Smith (deleted)": a client named John
    Smith must still meet it as an inactive candidate, never get a duplicate created."""
    index = CustomerIndex([Customer(id="1", display_name="John Smith (deleted)", active=False)])
    result = index.match(ClientFacts("c", "John Smith"))
    assert (result.outcome, result.rule) == ("ambiguous", "name")
    assert [candidate.qbo_id for candidate in result.candidates] == ["1"]
