"""The query language: filters, operators, ordering, paging, quoting, case, inactive rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.errors import QboError
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.query import run
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.store import Company
from tests.simulator.conftest import US, Api, decode, first_error, sales_line


@pytest.fixture(scope="module")
def company() -> Company:
    return SimulatorState(SimulatorConfig()).companies[US]


def names(result: dict[str, Any], entity: str = "Customer") -> list[str]:
    return [row.get("DisplayName") or row["Name"] for row in result.get(entity, [])]


def test_inactive_list_rows_are_hidden_unless_active_is_filtered(company: Company) -> None:
    assert "Kookies by Kathy (deleted)" not in names(run(company, "SELECT * FROM Customer"))
    everyone = names(run(company, "SELECT * FROM Customer WHERE Active IN (true, false)"))
    assert "Kookies by Kathy (deleted)" in everyone
    assert names(run(company, "select * from Customer where Active = false")) == [
        "Kookies by Kathy (deleted)"
    ]


def test_count(company: Company) -> None:
    assert run(company, "SELECT COUNT(*) FROM Customer") == {"totalCount": 4}
    assert run(company, "SELECT count(*) FROM Customer WHERE Active IN (true,false)") == {
        "totalCount": 5
    }


def test_keywords_entities_fields_and_values_ignore_case_and_quotes_escape(
    company: Company,
) -> None:
    result = run(company, r"select * from CUSTOMER where displayname = 'AMY\'S BIRD SANCTUARY'")
    assert names(result) == ["Amy's Bird Sanctuary"]


def test_an_email_address_filter_compares_the_address(company: Company) -> None:
    # Emails are not unique in QBO: two seeded customers share one (the second is inactive).
    statement = "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'QBWebSampleCompany@yahoo.com'"

    assert names(run(company, statement)) == ["Red Rock Diner"]
    assert names(run(company, statement + " AND Active IN (true, false)")) == [
        "Red Rock Diner",
        "Kookies by Kathy (deleted)",
    ]


def test_like_with_percent(company: Company) -> None:
    assert names(run(company, "SELECT * FROM Customer WHERE DisplayName LIKE 'cool%'")) == [
        "Cool Cars"
    ]
    assert names(run(company, "SELECT * FROM Customer WHERE DisplayName LIKE '%shop'")) == [
        "Bill's Windsurf Shop"
    ]
    assert names(run(company, "SELECT * FROM Customer WHERE DisplayName LIKE '%AR%'")) == [
        "Amy's Bird Sanctuary",
        "Cool Cars",
    ]


def test_in_and_comparisons_on_ids_numbers_and_dotted_fields(company: Company) -> None:
    assert names(run(company, "SELECT * FROM Customer WHERE Id IN ('1', '3')")) == [
        "Amy's Bird Sanctuary",
        "Cool Cars",
    ]
    assert len(run(company, "SELECT * FROM Customer WHERE Id >= '2' AND Id < '4'")["Customer"]) == 2
    assert names(run(company, "SELECT * FROM Customer WHERE Balance > '20'")) == []
    assert names(
        run(company, "SELECT * FROM Item WHERE Type = 'NonInventory' AND Taxable = true"), "Item"
    ) == ["Gardening Supplies"]
    created = run(company, "SELECT * FROM Customer")["Customer"][0]["MetaData"]["CreateTime"]
    since = f"SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '{created}'"
    assert len(run(company, since)["Customer"]) == 4
    assert run(company, f"SELECT * FROM Customer WHERE MetaData.CreateTime > '{created}'") == {}
    assert (
        len(
            run(company, "SELECT * FROM Customer WHERE MetaData.CreateTime > '2020-01-01'")[
                "Customer"
            ]
        )
        == 4
    )


@pytest.fixture(scope="module")
def unordered() -> Company:
    """A company whose customers were not created in name order (the seeded ones were)."""
    state = SimulatorState(SimulatorConfig())
    ledger = state.ledger(US)
    for name in ("Zebra Zoo", "Mango Mart", "Aardvark Ales", "mango market", "Beta Books"):
        ledger.create("Customer", WriteRequest({"DisplayName": name}))
    return state.companies[US]


def test_ordering_both_spellings_and_directions(unordered: Company) -> None:
    inserted = names(run(unordered, "SELECT * FROM Customer"))
    ascending = names(run(unordered, "SELECT * FROM Customer ORDER BY DisplayName ASC"))
    default = names(run(unordered, "select * from Customer orderby displayname"))
    descending = names(run(unordered, "SELECT * FROM Customer ORDERBY DisplayName DESC"))

    assert ascending != inserted
    assert ascending == sorted(inserted, key=str.casefold)
    assert default == ascending
    assert descending == list(reversed(ascending))
    by_id = run(unordered, "SELECT * FROM Customer ORDER BY Id DESC MAXRESULTS 3")["Customer"]
    assert [row["Id"] for row in by_id] == ["10", "9", "8"]  # numerically, not "9" > "10"


def test_paging_is_one_based_and_pages_neither_overlap_nor_skip(unordered: Company) -> None:
    everyone = run(unordered, "SELECT * FROM Customer ORDERBY DisplayName")["Customer"]
    pages = [
        run(
            unordered,
            f"SELECT * FROM Customer ORDERBY DisplayName STARTPOSITION {start} MAXRESULTS 3",
        )
        for start in (1, 4, 7, 10)
    ]

    assert [(page["startPosition"], page["maxResults"]) for page in pages[:3]] == [
        (1, 3),
        (4, 3),
        (7, 3),
    ]
    assert [row for page in pages[:3] for row in page["Customer"]] == everyone
    assert pages[3] == {}
    unordered_pages = [
        run(unordered, f"SELECT * FROM Customer STARTPOSITION {start} MAXRESULTS 4")["Customer"]
        for start in (1, 5, 9)
    ]
    assert [row["Id"] for page in unordered_pages for row in page] == [
        row["Id"] for row in run(unordered, "SELECT * FROM Customer")["Customer"]
    ]


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("SELECT * FROM Customer MAXRESULTS 1001", "4001"),
        ("SELECT * FROM Nothing", "4001"),
        ("SELECT * FROM Customer WHERE Id = '1' OR Id = '2'", "4000"),
        ("SELECT DisplayName FROM Customer", "4000"),
        ("SELECT * FROM Customer WHERE DisplayName != 'x'", "4000"),
        ("SELECT * FROM Customer WHERE", "4000"),
    ],
)
def test_what_intuit_refuses(company: Company, statement: str, code: str) -> None:
    with pytest.raises(QboError) as refused:
        run(company, statement)

    assert refused.value.errors[0].code == code


async def test_queries_by_get_and_post_and_ref_fields(us: Api) -> None:
    invoice = await us.create(
        "Invoice", {"CustomerRef": {"value": "2"}, "Line": [sales_line("10")]}
    )
    await us.create("Invoice", {"CustomerRef": {"value": "3"}, "Line": [sales_line("20")]})

    by_get = await us.query("SELECT * FROM Invoice WHERE CustomerRef = '2'")
    by_post = await us.client.post(
        us.url("query"),
        content="select * from invoice where customerref = '2'",
        headers={"Content-Type": "application/text"},
    )

    assert [row["Id"] for row in by_get["Invoice"]] == [invoice["Id"]]
    assert decode(by_post)["QueryResponse"] == by_get


async def test_a_body_that_is_not_utf8_is_an_unsupported_operation(us: Api) -> None:
    latin1 = "SELECT * FROM Customer WHERE DisplayName = 'Caf\u00e9'".encode("latin-1")

    query = await us.client.post(
        us.url("query"), content=latin1, headers={"Content-Type": "application/text"}
    )
    write = await us.client.post(
        us.url("customer"),
        content='{"DisplayName": "Caf\u00e9"}'.encode("latin-1"),
        headers={"Content-Type": "application/json"},
    )

    for response in (query, write):
        assert response.status_code == 400
        assert first_error(response)["code"] == "500"
        assert first_error(response)["Message"] == "Unsupported Operation"


async def test_a_bad_query_over_http_is_a_400_fault(us: Api, client: httpx.AsyncClient) -> None:
    response = await us.client.get(us.url("query"), params={"query": "SELECT * FROM"})

    assert response.status_code == 400
    assert first_error(response)["code"] == "4000"
    assert first_error(response)["Message"] == "Error parsing query"


def test_digits_of_other_scripts_compare_and_sort_as_text() -> None:
    """ "²" is a digit to str.isdigit() but not a number: no crash, just no match."""
    books = SimulatorState(SimulatorConfig()).companies[US]
    # The store keeps the customer's Balance, so a stored invoice names one and has a balance.
    owed = {"CustomerRef": {"value": "1"}, "Balance": Decimal("0.00"), "TxnDate": "2026-01-01"}
    books.insert("Invoice", {**owed, "DocNumber": "12"}, 0.0, "900")
    books.insert("Invoice", {**owed, "DocNumber": "²"}, 0.0, "901")
    assert run(books, "SELECT * FROM Invoice WHERE DocNumber = '²'")["Invoice"][0]["Id"] == "901"
    ordered = run(books, "SELECT * FROM Invoice ORDERBY DocNumber")["Invoice"]
    assert [row["DocNumber"] for row in ordered] == ["12", "²"]


def test_an_id_lookup_answers_as_a_scan_would(company: Company) -> None:
    """`Id IN` and `Id =` are looked up by id (fast over a big company) with the scan's
    answer: ids compare as numbers, each row once, in the table's order, other conditions
    still apply."""
    everyone = run(company, "SELECT * FROM Customer WHERE Active IN (true, false)")["Customer"]
    first, second = everyone[0]["Id"], everyone[1]["Id"]
    found = run(
        company,
        f"SELECT * FROM Customer WHERE Id IN ('{second}', '0{first}', '{second}', '99999')",
    )["Customer"]
    assert [row["Id"] for row in found] == [first, second]
    rich = f"SELECT * FROM Customer WHERE Id = '{first}' AND Balance > '999999'"
    assert not run(company, rich).get("Customer")
    inactive = next(row["Id"] for row in everyone if row.get("Active") is False)
    hidden = run(company, f"SELECT * FROM Customer WHERE Id IN ('{inactive}')")
    assert not hidden.get("Customer"), "inactive rows stay hidden unless Active is asked about"
