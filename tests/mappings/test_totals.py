"""QuickBooks' totals as the preview predicts them: worked examples, then agreement with the
simulator (our model of QuickBooks) on generated invoices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qbsync.mappings.totals import (
    PlannedLine,
    QboRate,
    QboTotals,
    TaxLineTotal,
    TaxMode,
    line_amount,
    round_cents,
    us_totals,
    vat_totals,
)
from qbsync.simulator import SimulatorConfig, create_simulator_app
from qbsync.simulator.config import LimitsConfig
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.tax import Rate, TaxedLine, vat
from tests.simulator.conftest import BASE_URL, GB, US, Api, company_api, sales_line

D = Decimal
STANDARD = QboRate("1", "20.0% S (sales)", D("20"))
REDUCED = QboRate("3", "5.0% R (sales)", D("5"))
ZERO_RATED = QboRate("5", "0.0% Z (sales)", D("0"))
GST = QboRate("11", "GST", D("5"))
PST = QboRate("12", "PST", D("7"))
STATE_TAX = QboRate("21", "State", D("10"))
CITY_TAX = QboRate("22", "City", D("10"))


def one(price: str, *rates: QboRate, quantity: str = "1") -> PlannedLine:
    return PlannedLine(D(quantity), D(price), rates)


def taxed(price: str, *, quantity: str = "1", taxable: bool = True) -> PlannedLine:
    return PlannedLine(D(quantity), D(price), taxable=taxable)


# Worked examples.


def test_a_line_amount_is_qty_times_unit_price_rounded_half_up() -> None:
    assert line_amount(D("3.333"), D("0.15")) == D("0.50")  # 0.49995
    assert line_amount(D("2.5"), D("0.01")) == D("0.03")  # 0.025: half-even would give 0.02
    assert line_amount(D("0.5"), D("0.01")) == D("0.01")


def test_tax_excluded_rounds_once_per_rate_not_per_line() -> None:
    lines = [one("0.33", STANDARD)] * 3
    platform_tax = sum((round_cents(line.unit_price * D("0.2")) for line in lines), D(0))

    totals = vat_totals(lines, "TaxExcluded")

    assert platform_tax == D("0.21")  # 3 x round(0.066)
    assert totals.tax_total == D("0.20")  # round(0.99 x 20 %) = round(0.198)
    assert totals.total == D("1.19")
    assert totals.subtotal == totals.net_subtotal == D("0.99")
    assert totals.tax_lines == (
        TaxLineTotal("1", "20.0% S (sales)", D("20"), D("0.99"), D("0.20")),
    )


def test_tax_excluded_with_mixed_rates_gives_a_tax_line_per_rate_in_first_seen_order() -> None:
    lines = [
        one("100.00", STANDARD),
        one("12.345", REDUCED, quantity="2"),  # 24.69
        one("30.00", ZERO_RATED),
        one("0.99", STANDARD, quantity="0.5"),  # 0.495, half-up to 0.50
    ]

    totals = vat_totals(lines, "TaxExcluded")

    assert totals.line_amounts == (D("100.00"), D("24.69"), D("30.00"), D("0.50"))
    assert [(line.rate_id, line.net_amount_taxable, line.amount) for line in totals.tax_lines] == [
        ("1", D("100.50"), D("20.10")),
        ("3", D("24.69"), D("1.23")),  # 1.2345
        ("5", D("30.00"), D("0.00")),
    ]
    assert totals.tax_total == D("21.33")
    assert totals.subtotal == D("155.19")
    assert totals.total == D("176.52")


def test_tax_excluded_taxes_a_line_once_for_each_rate_of_its_code() -> None:
    totals = vat_totals([one("10.10", GST, PST)], "TaxExcluded")

    assert [line.amount for line in totals.tax_lines] == [D("0.51"), D("0.71")]  # 0.505, 0.707
    assert totals.total == D("11.32")


def test_tax_inclusive_takes_the_tax_out_of_the_gross() -> None:
    totals = vat_totals([one("120.00", STANDARD)], "TaxInclusive")

    assert totals == QboTotals(
        line_amounts=(D("120.00"),),
        subtotal=D("120.00"),
        net_subtotal=D("100.00"),
        tax_total=D("20.00"),
        total=D("120.00"),
        tax_lines=(TaxLineTotal("1", "20.0% S (sales)", D("20"), D("100.00"), D("20.00")),),
    )


def test_tax_inclusive_with_an_awkward_gross_keeps_net_plus_tax_equal_to_it() -> None:
    totals = vat_totals([one("10.01", STANDARD)], "TaxInclusive")

    assert totals.tax_total == D("1.67")  # 10.01 / 6 = 1.6683
    assert totals.net_subtotal == D("8.34")
    assert totals.total == D("10.01")


def test_tax_inclusive_rounds_once_per_code_not_per_line() -> None:
    # Per line each 0.10 holds round(0.0167) = 0.02, 0.06 in all; the code's 0.30 holds 0.05.
    totals = vat_totals([one("0.10", STANDARD)] * 3, "TaxInclusive")

    assert totals.tax_total == D("0.05")
    assert totals.net_subtotal == D("0.25")


def test_tax_inclusive_with_mixed_rates() -> None:
    lines = [one("120.00", STANDARD), one("105.00", REDUCED), one("7.00", ZERO_RATED)]

    totals = vat_totals(lines, "TaxInclusive")

    assert [(line.net_amount_taxable, line.amount) for line in totals.tax_lines] == [
        (D("100.00"), D("20.00")),
        (D("100.00"), D("5.00")),
        (D("7.00"), D("0.00")),
    ]
    assert totals.tax_total == D("25.00")
    assert totals.net_subtotal == D("207.00")
    assert totals.total == totals.subtotal == D("232.00")


def test_a_tax_inclusive_code_with_two_rates_gives_the_last_rate_the_leftover_cent() -> None:
    totals = vat_totals([one("0.18", STATE_TAX, CITY_TAX)], "TaxInclusive")

    # 0.18 x 20/120 = 0.03; the first rate's half (0.015) rounds up to 0.02, the last gets 0.01.
    assert [(line.net_amount_taxable, line.amount) for line in totals.tax_lines] == [
        (D("0.15"), D("0.02")),
        (D("0.15"), D("0.01")),
    ]
    assert totals.tax_total == D("0.03")


def test_not_applicable_charges_no_tax_whatever_the_rates() -> None:
    totals = vat_totals([one("80.00", STANDARD), one("0.5", quantity="3")], "NotApplicable")

    assert totals == QboTotals(
        (D("80.00"), D("1.50")), D("81.50"), D("81.50"), D(0), D("81.50"), ()
    )


def test_us_tax_override_is_honoured_rounded_to_the_cent() -> None:
    lines = [taxed("150.00"), taxed("50.00", taxable=False)]

    totals = us_totals(lines, tax_override=D("10.005"))

    assert totals.tax_total == D("10.01")
    assert totals.total == D("210.01")
    assert totals.subtotal == totals.net_subtotal == D("200.00")
    assert totals.tax_lines == ()


def test_a_us_invoice_without_tax_owes_none() -> None:
    totals = us_totals([taxed("100.00", taxable=False)], tax_override=None)

    assert (totals.tax_total, totals.total) == (D(0), D("100.00"))


def test_an_override_stands_for_a_non_taxable_us_customer_too() -> None:
    overridden = us_totals([taxed("100.00")], tax_override=D("5"))

    assert (overridden.tax_total, overridden.total) == (D("5.00"), D("105.00"))


# Agreement with the simulator.

GB_CODES = ("3", "4", "5")  # 20 %, 5 %, 0 %
quantities = st.one_of(
    st.sampled_from(["1", "2", "0.5", "3.333", "12", "0.125"]).map(Decimal),
    st.decimals(min_value=D("0.001"), max_value=D(100), places=3),
)
# Small prices as well as large: with a few pence per line the per-line and per-rate roundings
# part more often.
unit_prices = st.one_of(
    st.decimals(min_value=D(0), max_value=D(1), places=2),
    st.integers(min_value=2, max_value=4).flatmap(
        lambda places: st.decimals(min_value=D(0), max_value=D(5000), places=places)
    ),
)
money = st.decimals(min_value=D(0), max_value=D(500), places=3)
EXAMPLES = settings(max_examples=60, deadline=None)
US_CUSTOMERS = ("Cool Cars", "Red Rock Diner")  # taxable, not taxable


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    # One simulator for every generated example, unthrottled: hypothesis shrinking a failure
    # sends more requests than a minute's allowance.
    return SimulatorState(SimulatorConfig(limits=LimitsConfig(enabled=False)))


@pytest.fixture(scope="module")
def transport(state: SimulatorState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_simulator_app(state.config, state=state))


@dataclass(frozen=True)
class GbCompany:
    api: Api
    customer: str
    item: str
    rates: dict[str, tuple[QboRate, ...]]  # by VAT code id


@dataclass(frozen=True)
class UsCompany:
    api: Api
    customers: dict[str, str]  # display name: id
    item: str


@pytest.fixture(scope="module")
async def gb(transport: httpx.ASGITransport, state: SimulatorState) -> AsyncIterator[GbCompany]:
    async with company_api(transport, state, GB, BASE_URL) as api:
        customer = await entity(api, "Customer", "DisplayName = 'Acme Ltd'")
        item = await entity(api, "Item", "Name = 'Consulting'")
        rates = {code: await sales_rates(api, code) for code in GB_CODES}
        yield GbCompany(api, customer["Id"], item["Id"], rates)


@pytest.fixture(scope="module")
async def us(transport: httpx.ASGITransport, state: SimulatorState) -> AsyncIterator[UsCompany]:
    async with company_api(transport, state, US, BASE_URL) as api:
        customers = {}
        for name in US_CUSTOMERS:
            customer = await entity(api, "Customer", f"DisplayName = '{name}'")
            customers[name] = customer["Id"]
        item = await entity(api, "Item", "Name = 'Design'")
        yield UsCompany(api, customers, item["Id"])


async def entity(api: Api, name: str, where: str) -> dict[str, Any]:
    [found] = (await api.query(f"select * from {name} where {where}"))[name]
    return dict(found)


async def sales_rates(api: Api, code_id: str) -> tuple[QboRate, ...]:
    """A code's SALES rates read from QuickBooks, as the mapping stores them."""
    code = await api.read("TaxCode", code_id)
    rates = []
    for detail in code["SalesTaxRateList"]["TaxRateDetail"]:
        rate = await api.read("TaxRate", detail["TaxRateRef"]["value"])
        rates.append(QboRate(rate["Id"], rate["Name"], D(rate["RateValue"])))
    return tuple(rates)


def invoice_lines(planned: list[PlannedLine], item: str, codes: list[str]) -> list[dict[str, Any]]:
    return [
        sales_line(
            str(line_amount(line.quantity, line.unit_price)),
            item,
            qty=str(line.quantity),
            price=str(line.unit_price),
            code=code,
        )
        for line, code in zip(planned, codes, strict=True)
    ]


def tax_lines(detail: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (
            line["TaxLineDetail"]["TaxRateRef"]["value"],
            line["TaxLineDetail"]["NetAmountTaxable"],
            line["Amount"],
        )
        for line in detail["TaxLine"]
    ]


def assert_agrees(created: dict[str, Any], totals: QboTotals) -> None:
    *sales, subtotal_line = created["Line"]
    assert tuple(line["Amount"] for line in sales) == totals.line_amounts
    assert subtotal_line["Amount"] == totals.subtotal
    assert created["TotalAmt"] == totals.total
    assert created["TxnTaxDetail"]["TotalTax"] == totals.tax_total


@given(
    lines=st.lists(
        st.tuples(quantities, unit_prices, st.sampled_from(GB_CODES)), min_size=1, max_size=6
    ),
    mode=st.sampled_from(["TaxExcluded", "TaxInclusive", "NotApplicable"]),
)
# The one-cent cases, always tried: per rate, not per line, both ways; half a penny rounds up.
@example(lines=[(D(1), D("0.33"), "3")] * 3, mode="TaxExcluded")
@example(lines=[(D(1), D("0.10"), "3")] * 3, mode="TaxInclusive")
@example(lines=[(D("0.5"), D("0.01"), "4"), (D(1), D("0.10"), "4")], mode="TaxExcluded")
@EXAMPLES
async def test_gb_totals_agree_with_the_simulator(
    gb: GbCompany, lines: list[tuple[Decimal, Decimal, str]], mode: TaxMode
) -> None:
    codes = [code for _, _, code in lines]
    planned = [PlannedLine(quantity, price, gb.rates[code]) for quantity, price, code in lines]

    totals = vat_totals(planned, mode)
    created = await gb.api.create(
        "Invoice",
        {
            "CustomerRef": {"value": gb.customer},
            "GlobalTaxCalculation": mode,
            "Line": invoice_lines(planned, gb.item, codes),
        },
    )

    assert_agrees(created, totals)
    assert tax_lines(created["TxnTaxDetail"]) == [
        (line.rate_id, line.net_amount_taxable, line.amount) for line in totals.tax_lines
    ]


@given(
    codes=st.lists(
        st.lists(
            st.sampled_from([STANDARD, REDUCED, ZERO_RATED, GST, PST, STATE_TAX, CITY_TAX]),
            min_size=1,
            max_size=3,
            unique=True,
        ),
        min_size=1,
        max_size=3,
    ),
    lines=st.lists(st.tuples(quantities, unit_prices, st.integers(0, 2)), min_size=1, max_size=6),
    mode=st.sampled_from(["TaxExcluded", "TaxInclusive"]),
)
@example(codes=[[STATE_TAX, CITY_TAX]], lines=[(D(1), D("0.18"), 0)], mode="TaxInclusive")
@EXAMPLES
def test_codes_with_several_rates_agree_with_the_simulators_arithmetic(
    codes: list[list[QboRate]], lines: list[tuple[Decimal, Decimal, int]], mode: TaxMode
) -> None:
    # The seeded GB codes each have one rate, so codes with several are checked against the
    # simulator's tax arithmetic directly.
    planned = [
        PlannedLine(quantity, price, tuple(codes[index % len(codes)]))
        for quantity, price, index in lines
    ]

    ours = vat_totals(planned, mode)
    theirs = vat(
        [
            TaxedLine(
                line_amount(line.quantity, line.unit_price),
                tuple(Rate(r.rate_id, r.name, r.percent) for r in line.rates),
            )
            for line in planned
        ],
        mode,
    )

    assert ours.total == theirs.total_amount
    assert ours.tax_total == theirs.total_tax
    assert tax_lines(theirs.detail) == [
        (line.rate_id, line.net_amount_taxable, line.amount) for line in ours.tax_lines
    ]


us_lines = st.lists(st.tuples(quantities, unit_prices, st.booleans()), min_size=1, max_size=6)


async def us_case(
    us: UsCompany, lines: list[tuple[Decimal, Decimal, bool]], name: str, override: Decimal
) -> None:
    customer = us.customers[name]
    planned = [PlannedLine(quantity, price, taxable=taxable) for quantity, price, taxable in lines]
    codes = ["TAX" if line.taxable else "NON" for line in planned]
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "Line": invoice_lines(planned, us.item, codes),
    }
    body["TxnTaxDetail"] = {"TotalTax": override}

    totals = us_totals(planned, tax_override=override)
    created = await us.api.create("Invoice", body)

    assert_agrees(created, totals)


@given(lines=us_lines, customer=st.sampled_from(US_CUSTOMERS), override=money)
@example(lines=[(D(1), D("150.00"), True)], customer="Red Rock Diner", override=D("10.005"))
@EXAMPLES
async def test_us_totals_with_an_override_agree_with_the_simulator(
    us: UsCompany, lines: list[tuple[Decimal, Decimal, bool]], customer: str, override: Decimal
) -> None:
    await us_case(us, lines, customer, override)
