"""Tax arithmetic on its own: Decimal throughout, half-up to the cent, inclusive splits."""

from __future__ import annotations

from decimal import Decimal

from qbsync.simulator.tax import Rate, TaxedLine, us_automated_sales_tax, vat

D = Decimal
STATE = Rate("1", "State", D("10"))
CITY = Rate("2", "City", D("10"))
STANDARD = Rate("3", "20.0% S", D("20"))


def test_a_tax_inclusive_code_with_two_rates_splits_without_losing_a_cent() -> None:
    # 0.18 gross at 10% + 10%: 0.03 tax. Rounding each half (0.015) up would make 0.04.
    result = vat([TaxedLine(D("0.18"), (STATE, CITY))], "TaxInclusive")

    shares = [line["Amount"] for line in result.detail["TaxLine"]]
    assert sum(shares) == result.total_tax == D("0.03")
    assert result.total_amount == D("0.18")
    for line in result.detail["TaxLine"]:
        assert line["TaxLineDetail"]["NetAmountTaxable"] == D("0.15")


def test_tax_inclusive_net_plus_tax_is_the_gross_amount() -> None:
    result = vat(
        [TaxedLine(D("100.00"), (STANDARD,)), TaxedLine(D("0.01"), (STANDARD,))], "TaxInclusive"
    )

    [line] = result.detail["TaxLine"]
    assert line["Amount"] == D("16.67")  # 100.01 / 6 = 16.668…
    assert line["TaxLineDetail"]["NetAmountTaxable"] + line["Amount"] == D("100.01")
    assert result.total_amount == D("100.01")


def test_tax_exclusive_rounds_half_up_per_rate() -> None:
    # 0.025 is exactly half a cent: banker's rounding would give 0.02.
    result = vat([TaxedLine(D("0.25"), (STATE,))], "TaxExcluded")

    assert result.total_tax == D("0.03")
    assert result.total_amount == D("0.28")
    assert all(isinstance(value, Decimal) for value in (result.total_tax, result.total_amount))


def test_us_tax_rounds_the_taxable_total_half_up() -> None:
    rate = Rate("1", "California", D("8.25"))

    result = us_automated_sales_tax([D("150.00")], D("200.00"), rate, {"value": "2"}, None)

    assert result.total_tax == D("12.38")
    assert result.total_amount == D("212.38")
