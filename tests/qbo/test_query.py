"""Query statements: quoting and paging clauses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from qbsync.qbo import in_list, quote
from qbsync.qbo.query import select


def test_quote_escapes_apostrophes() -> None:
    assert quote("Adam's Candy Shop") == "'Adam\\'s Candy Shop'"
    assert quote("''") == "'\\'\\''"


def test_quote_formats_numbers_and_dates_as_strings() -> None:
    assert quote(Decimal("0")) == "'0'"
    assert quote(42) == "'42'"
    assert quote(date(2026, 1, 15)) == "'2026-01-15'"
    with pytest.raises(TypeError):
        quote(True)


def test_in_list() -> None:
    assert in_list(["1", "O'Brien"]) == "('1', 'O\\'Brien')"
    with pytest.raises(ValueError, match="at least one"):
        in_list([])


def test_select_bounds() -> None:
    assert select("Item", "Active = true", start_position=1001, max_results=1000) == (
        "SELECT * FROM Item WHERE Active = true STARTPOSITION 1001 MAXRESULTS 1000"
    )
    with pytest.raises(ValueError, match="max_results"):
        select("Item", max_results=1001)
    with pytest.raises(ValueError, match="1-based"):
        select("Item", start_position=0)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("C:\\Temp", "'C:\\\\Temp'"),
        # A trailing backslash must not escape the closing quote.
        ("ends with \\", "'ends with \\\\'"),
        # Nor may a backslash before an apostrophe un-escape it and end the string early.
        ("x\\' OR Id > '0", "'x\\\\\\' OR Id > \\'0'"),
    ],
)
def test_quote_escapes_backslashes_before_apostrophes(value: str, quoted: str) -> None:
    assert quote(value) == quoted
    # Read back as QuickBooks' lexer would: the literal ends at the last character, once.
    body, index, unescaped = quoted[1:], 0, []
    while body[index] != "'":
        if body[index] == "\\":
            index += 1
        unescaped.append(body[index])
        index += 1
    assert index == len(body) - 1
    assert "".join(unescaped) == value


def test_quote_writes_decimals_without_an_exponent_and_refuses_naive_times() -> None:
    assert quote(Decimal("1E+2")) == "'100'"
    assert quote(Decimal("0.10")) == "'0.10'"
    assert quote(datetime(2026, 1, 1, tzinfo=UTC)) == "'2026-01-01T00:00:00+00:00'"
    with pytest.raises(ValueError, match="UTC offset"):
        quote(datetime(2026, 1, 1))  # noqa: DTZ001
