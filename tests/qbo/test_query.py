"""Query statements: quoting and paging clauses."""

from __future__ import annotations

from datetime import date
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
