"""Intuit's query language: one entity, AND-ed filters, ordering and paging, no projections."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, NoReturn

from qbsync.simulator.errors import query_parse_error, query_validation_error
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.schema import ENTITY_FIELDS
from qbsync.simulator.store import BY_LOWER_NAME, Company

_META = ("MetaData.CreateTime", "MetaData.LastUpdatedTime")
# What Intuit's entity reference marks filterable, per entity; a filter on anything else is
# refused with 4001, as QBO does (PrivateNote, Vendor.PrimaryEmailAddr, AcctNum, Line.*, ...).
# Where the reference was unclear the list leaves the property out (stricter than QBO).
# Customer.PrimaryEmailAddr is not marked filterable but works on QBO and is widely used.
FILTERABLE: dict[str, frozenset[str]] = {
    entity: frozenset(name.lower() for name in ("Id", *_META, *names))
    for entity, names in {
        "Customer": (
            "DisplayName",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "CompanyName",
            "FullyQualifiedName",
            "PrintOnCheckName",
            "PrimaryEmailAddr",
            "Active",
            "Job",
            "ParentRef",
            "Balance",
        ),
        "Vendor": (
            "DisplayName",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "CompanyName",
            "PrintOnCheckName",
            "Active",
            "Balance",
        ),
        "Employee": (
            "DisplayName",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "PrintOnCheckName",
            "Active",
        ),
        "Item": ("Name", "Type", "Taxable", "Active", "FullyQualifiedName", "SubItem"),
        "Account": (
            "Name",
            "SubAccount",
            "ParentRef",
            "FullyQualifiedName",
            "Active",
            "Classification",
            "AccountType",
            "CurrentBalance",
            "CurrentBalanceWithSubAccounts",
        ),
        "Invoice": ("DocNumber", "TxnDate", "DueDate", "CustomerRef", "Balance", "TotalAmt"),
        "Payment": ("TxnDate", "CustomerRef", "TotalAmt"),
        "Bill": ("DocNumber", "TxnDate", "DueDate", "VendorRef", "Balance", "TotalAmt"),
        "Purchase": ("DocNumber", "TxnDate", "TotalAmt", "PaymentType"),
        "TaxCode": ("Name", "Active", "Taxable", "TaxGroup"),
        "TaxRate": ("Name", "Active", "RateValue"),
        "CompanyInfo": (),
        "Preferences": (),
    }.items()
}
MAX_RESULTS = 1000
DEFAULT_MAX_RESULTS = 100
Literal_ = str | Decimal | bool

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
      | (?P<op><=|>=|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)
_OPERATORS = frozenset({"=", "<", ">", "<=", ">=", "in", "like"})
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]  # lower-case segments of a dotted field name
    operator: str
    values: tuple[Literal_, ...]


@dataclass(frozen=True)
class Query:
    entity: str
    count: bool
    conditions: tuple[Condition, ...]
    order: tuple[tuple[tuple[str, ...], bool], ...]  # (path, descending)
    start_position: int
    max_results: int


def parse(statement: str) -> Query:
    return _Parser(_tokenize(statement)).query()


def run(
    company: Company, statement: str, hidden: frozenset[tuple[str, str]] = frozenset()
) -> JsonObject:
    """The `QueryResponse` body for a statement against one company, blind to `hidden`."""
    query = parse(statement)
    rows = [
        row
        for row in _candidates(company.table(query.entity), query.conditions)
        if (query.entity, row["Id"]) not in hidden
        and all(_matches(row, condition, company.tz) for condition in query.conditions)
    ]
    if not any(condition.path == ("active",) for condition in query.conditions):
        # Inactive list records are hidden unless the query asks about Active itself.
        rows = [row for row in rows if row.get("Active") is not False]
    if query.count:
        return {"totalCount": len(rows)}
    for path, descending in reversed(query.order):
        rows.sort(key=_sorter(path), reverse=descending)
    page = rows[query.start_position - 1 : query.start_position - 1 + query.max_results]
    if not page:
        return {}
    return {query.entity: page, "startPosition": query.start_position, "maxResults": len(page)}


def _tokenize(statement: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    statement = statement.rstrip()
    while position < len(statement):
        match = _TOKEN.match(statement, position)
        if match is None or match.end() == position:
            raise query_parse_error(
                f'Encountered "{statement[position:].strip()[:20]}" '
                f"at line 1, column {position + 1}."
            )
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def query(self) -> Query:
        self._expect("SELECT")
        count = self._accept("COUNT")
        if count:
            self._expect("(")
            self._expect("*")
            self._expect(")")
        else:
            self._expect("*")
        # `SELECT *, Sku FROM Item` (python-quickbooks' Item.all) asks for properties QBO leaves
        # out by default; the simulator always returns whole objects.
        extras: list[str] = []
        while not count and self._accept(","):
            extras.append(self._take("word").text)
        self._expect("FROM")
        entity = BY_LOWER_NAME.get(self._take("word").text.lower())
        if entity is None:
            raise query_validation_error(
                f"Invalid entity name: {self._tokens[self._index - 1].text}"
            )
        for extra in extras:
            if not _known(entity, extra):
                raise query_validation_error(f"Property {extra} not found for Entity {entity}")
        conditions: list[Condition] = []
        if self._accept("WHERE"):
            conditions.append(self._filter(entity))
            while self._accept("AND"):
                conditions.append(self._filter(entity))
        order: list[tuple[tuple[str, ...], bool]] = []
        if self._accept("ORDERBY") or (self._accept("ORDER") and self._expect("BY")):
            order.append(self._order_term())
            while self._accept(","):
                order.append(self._order_term())
        start, max_results = 1, DEFAULT_MAX_RESULTS
        while self._index < len(self._tokens):
            if self._accept("STARTPOSITION"):
                start = self._integer()
            elif self._accept("MAXRESULTS"):
                max_results = self._integer()
            else:
                self._fail()
        if max_results > MAX_RESULTS:
            raise query_validation_error(
                f"value {max_results} is too large. Max allowed value is: {MAX_RESULTS}"
            )
        if start < 1 or max_results < 1:
            raise query_validation_error("STARTPOSITION and MAXRESULTS must be at least 1")
        return Query(entity, count, tuple(conditions), tuple(order), start, max_results)

    def _filter(self, entity: str) -> Condition:
        token = self._peek()
        condition = self._condition()
        field = token.text if token else ""
        if ".".join(condition.path) not in FILTERABLE[entity]:
            if not _known(entity, field):
                raise query_validation_error(f"Property {field} not found for Entity {entity}")
            raise query_validation_error(f"property '{field}' is not queryable")
        return condition

    def _condition(self) -> Condition:
        path = _path(self._take("word").text)
        token = self._peek()
        operator = token.keyword.lower() if token else ""
        if operator not in _OPERATORS:
            self._fail()
        self._index += 1
        if operator != "in":
            return Condition(path, operator, (self._literal(),))
        self._expect("(")
        values = [self._literal()]
        while self._accept(","):
            values.append(self._literal())
        self._expect(")")
        return Condition(path, operator, tuple(values))

    def _order_term(self) -> tuple[tuple[str, ...], bool]:
        path = _path(self._take("word").text)
        if self._accept("DESC"):
            return path, True
        self._accept("ASC")
        return path, False

    def _literal(self) -> Literal_:
        token = self._peek()
        if token is None:
            self._fail()
        self._index += 1
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "number":
            return Decimal(token.text)
        if token.keyword in ("TRUE", "FALSE"):
            return token.keyword == "TRUE"
        self._index -= 1
        self._fail()

    def _integer(self) -> int:
        token = self._take("number")
        if "." in token.text:
            self._index -= 1
            self._fail()
        return int(token.text)

    def _peek(self) -> Token | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _accept(self, keyword: str) -> bool:
        token = self._peek()
        if token is not None and token.keyword == keyword:
            self._index += 1
            return True
        return False

    def _expect(self, keyword: str) -> bool:
        if not self._accept(keyword):
            self._fail()
        return True

    def _take(self, kind: str) -> Token:
        token = self._peek()
        if token is None or token.kind != kind:
            self._fail()
        self._index += 1
        return token

    def _fail(self) -> NoReturn:
        token = self._peek()
        if token is None:
            raise query_parse_error('Encountered "<EOF>" at end of statement.')
        raise query_parse_error(f'Encountered "{token.text}" at line 1, column {token.position}.')


def _known(entity: str, field: str) -> bool:
    """Whether `field` (dotted for sub-properties) names a property of the entity at all."""
    head = field.split(".", 1)[0].lower()
    properties = ENTITY_FIELDS.get(entity)
    if properties is None:
        return ".".join(_path(field)) in FILTERABLE[entity]
    return any(name.lower() == head for name in properties)


def _path(field: str) -> tuple[str, ...]:
    return tuple(segment.lower() for segment in field.split("."))


def _lookup(row: JsonObject, path: tuple[str, ...]) -> Any:
    value: Any = row
    for segment in path:
        if not isinstance(value, dict):
            return None
        value = next((item for key, item in value.items() if key.lower() == segment), None)
    if isinstance(value, dict):
        # `CustomerRef = '12'` compares the reference's id, `PrimaryEmailAddr = 'a@b.test'`
        # the address.
        return value.get("value", value.get("Address"))
    return value


def _candidates(
    table: dict[str, JsonObject], conditions: tuple[Condition, ...]
) -> list[JsonObject]:
    """The rows worth matching: those an `Id =` or `Id IN` names, looked up by id rather than
    compared one by one (a reconciliation's `Id IN` of 100 ids over 10,000 invoices). Every
    condition is still checked on them, so the answer is the same."""
    for condition in conditions:
        if (
            condition.path == ("id",)
            and condition.operator in ("=", "in")
            and all(isinstance(value, str) for value in condition.values)
        ):
            wanted = {_id_key(str(value)) for value in condition.values}
            # In the table's own order, as a scan would give them.
            return [row for object_id, row in table.items() if _id_key(object_id) in wanted]
    return list(table.values())


def _id_key(text: str) -> int | str:
    """An id as `_comparable_text` compares it: digits as a number, else ignoring case."""
    return int(text) if _ascii_digits(text) else text.casefold()


def _matches(row: JsonObject, condition: Condition, tz: timezone) -> bool:
    value = _lookup(row, condition.path)
    if value is None:
        return False
    if condition.operator == "like":
        pattern = condition.values[0]
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        regex = ".*".join(re.escape(part) for part in pattern.split("%"))
        return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None
    results = (_compare(value, literal, tz) for literal in condition.values)
    if condition.operator == "in":
        return any(result == 0 for result in results)
    result = next(results)
    if result is None:
        return False
    return {
        "=": result == 0,
        "<": result < 0,
        ">": result > 0,
        "<=": result <= 0,
        ">=": result >= 0,
    }[condition.operator]


def _compare(value: Any, literal: Literal_, tz: timezone) -> int | None:
    """-1, 0 or 1 comparing a field to a literal the way QBO does (values ignore case)."""
    left: Any
    right: Any
    if isinstance(value, bool):
        if isinstance(literal, str) and literal.lower() in ("true", "false"):
            literal = literal.lower() == "true"
        left, right = value, literal if isinstance(literal, bool) else None
    elif isinstance(value, int | Decimal):
        left, right = Decimal(value), _number(literal)
    else:
        text = literal if isinstance(literal, str) else _literal_text(literal)
        left, right = _comparable_text(str(value), text, tz)
    if right is None or left is None:
        return None
    return int(left > right) - int(left < right)


def _literal_text(literal: Decimal | bool) -> str:
    return str(literal).lower() if isinstance(literal, bool) else format(literal, "f")


def _number(literal: Literal_) -> Decimal | None:
    if isinstance(literal, bool):
        return None
    if isinstance(literal, Decimal):
        return literal
    try:
        return Decimal(literal)
    except ArithmeticError:
        return None


def _ascii_digits(text: str) -> bool:
    # str.isdigit() also takes "²", which int() refuses.
    return text.isascii() and text.isdigit()


def _comparable_text(value: str, literal: str, tz: timezone) -> tuple[Any, Any]:
    if _ascii_digits(value) and _ascii_digits(literal):
        return int(value), int(literal)  # Ids are digit strings and compare as numbers
    if _DATETIME.match(value) and (_DATETIME.match(literal) or _DATE.match(literal)):
        return _datetime(value, tz), _datetime(literal, tz)
    return value.casefold(), literal.casefold()


def _datetime(text: str, tz: timezone) -> datetime | None:
    if _DATE.match(text):
        text += "T00:00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _sorter(path: tuple[str, ...]) -> Callable[[JsonObject], tuple[int, Any]]:
    return lambda row: _sort_key(_lookup(row, path))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (3, "")
    if isinstance(value, bool | int | Decimal):
        return (0, Decimal(value))
    text = str(value)
    if _ascii_digits(text):
        return (1, int(text))
    return (2, text.casefold())
