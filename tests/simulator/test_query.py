"""The query language: filters, operators, ordering, paging, quoting, case, inactive rows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.errors import QboError
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
    assert names(run(company, "SELECT * FROM Item WHERE UnitPrice > '20'"), "Item") == ["Design"]
    assert names(
        run(company, "SELECT * FROM Item WHERE UnitPrice <= 15 AND Taxable = true"), "Item"
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


def test_ordering_both_spellings_and_directions(company: Company) -> None:
    descending = names(run(company, "SELECT * FROM Customer ORDERBY DisplayName DESC"))
    ascending = names(run(company, "SELECT * FROM Customer ORDER BY DisplayName ASC"))

    assert ascending == sorted(ascending)
    assert descending == list(reversed(ascending))


def test_paging_is_one_based(company: Company) -> None:
    first = run(company, "SELECT * FROM Customer ORDERBY Id STARTPOSITION 1 MAXRESULTS 3")
    second = run(company, "SELECT * FROM Customer ORDERBY Id STARTPOSITION 4 MAXRESULTS 3")

    assert first["startPosition"] == 1
    assert first["maxResults"] == 3
    assert second["startPosition"] == 4
    assert second["maxResults"] == 1
    assert run(company, "SELECT * FROM Customer STARTPOSITION 10") == {}


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


async def test_a_bad_query_over_http_is_a_400_fault(us: Api, client: httpx.AsyncClient) -> None:
    response = await us.client.get(us.url("query"), params={"query": "SELECT * FROM"})

    assert response.status_code == 400
    assert first_error(response)["code"] == "4000"
    assert first_error(response)["Message"] == "Error parsing query"
