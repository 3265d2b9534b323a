"""Building QuickBooks query statements safely.

Values always travel as single-quoted strings (QuickBooks compares numbers and dates that way
too); an apostrophe inside is escaped with a backslash, as Intuit documents. The backslash is the
escape character, so a backslash in a value is doubled first: otherwise a value ending in a
backslash leaves the literal unterminated, and one holding backslash-apostrophe ends it early and
lets the rest of the value add clauses to the query.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

MAX_RESULTS = 1000
# QuickBooks leaves inactive name-list records out of a query unless it asks about Active.
EVERY_STATUS = "Active IN (true, false)"

QueryValue = str | int | Decimal | date | datetime


def quote(value: QueryValue) -> str:
    if isinstance(value, bool):
        raise TypeError("write booleans as the bare words true / false")
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise ValueError("a datetime in a query must carry a UTC offset")
    if isinstance(value, date | datetime):
        text = value.isoformat()
    elif isinstance(value, Decimal):
        text = format(value, "f")  # never "1E+2"
    else:
        text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_list(values: Iterable[QueryValue]) -> str:
    """`('a', 'b')` for `WHERE Id IN …`."""
    quoted = [quote(value) for value in values]
    if not quoted:
        raise ValueError("IN needs at least one value")
    return "(" + ", ".join(quoted) + ")"


def select(
    entity_name: str,
    where: str | None = None,
    *,
    order_by: str | None = None,
    start_position: int = 1,
    max_results: int = MAX_RESULTS,
) -> str:
    if not 1 <= max_results <= MAX_RESULTS:
        raise ValueError(f"max_results must be between 1 and {MAX_RESULTS}")
    if start_position < 1:
        raise ValueError("start_position is 1-based")
    statement = _from("SELECT *", entity_name, where)
    if order_by:
        statement += f" ORDERBY {order_by}"
    return f"{statement} STARTPOSITION {start_position} MAXRESULTS {max_results}"


def count_statement(entity_name: str, where: str | None = None) -> str:
    return _from("SELECT COUNT(*)", entity_name, where)


def _from(head: str, entity_name: str, where: str | None) -> str:
    statement = f"{head} FROM {entity_name}"
    return f"{statement} WHERE {where}" if where else statement
