"""Sales tax as QBO computes it: US automated sales tax on TAX lines, per-line VAT codes in GB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from qbsync.simulator.fields import round_money
from qbsync.simulator.jsonio import JsonObject

GlobalTaxCalculation = Literal["TaxExcluded", "TaxInclusive", "NotApplicable"]
GLOBAL_TAX_CALCULATIONS: tuple[GlobalTaxCalculation, ...] = (
    "TaxExcluded",
    "TaxInclusive",
    "NotApplicable",
)
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Rate:
    rate_id: str
    name: str
    percent: Decimal


@dataclass(frozen=True)
class TaxedLine:
    amount: Decimal
    rates: tuple[Rate, ...]


@dataclass(frozen=True)
class TaxResult:
    total_tax: Decimal
    total_amount: Decimal
    detail: JsonObject


def us_automated_sales_tax(
    taxable_amounts: Sequence[Decimal],
    subtotal: Decimal,
    rate: Rate,
    code_ref: JsonObject,
    override: Decimal | None,
) -> TaxResult:
    """AST uses the company's code; an explicit TotalTax is honoured instead of computed tax."""
    net = sum(taxable_amounts, Decimal(0))
    tax = (
        round_money(override) if override is not None else round_money(net * rate.percent / HUNDRED)
    )
    tax_lines = [_tax_line(rate, net, tax)] if net or tax else []
    detail = {"TxnTaxCodeRef": code_ref, "TotalTax": tax, "TaxLine": tax_lines}
    return TaxResult(tax, subtotal + tax, detail)


def vat(lines: Sequence[TaxedLine], mode: GlobalTaxCalculation) -> TaxResult:
    """One TaxLine per rate; tax is rounded once per rate, on the rate's total."""
    subtotal = sum((line.amount for line in lines), Decimal(0))
    if mode == "NotApplicable":
        return TaxResult(Decimal("0.00"), subtotal, {"TotalTax": Decimal("0.00"), "TaxLine": []})
    net_by_rate: dict[str, Decimal] = {}
    tax_by_rate: dict[str, Decimal] = {}
    rates: dict[str, Rate] = {}
    for rate, net, tax in _split(lines, mode):
        rates[rate.rate_id] = rate
        net_by_rate[rate.rate_id] = net_by_rate.get(rate.rate_id, Decimal(0)) + net
        tax_by_rate[rate.rate_id] = tax_by_rate.get(rate.rate_id, Decimal(0)) + tax
    if mode == "TaxExcluded":
        tax_by_rate = {
            rate_id: round_money(net * rates[rate_id].percent / HUNDRED)
            for rate_id, net in net_by_rate.items()
        }
    total_tax = round_money(sum(tax_by_rate.values(), Decimal(0)))
    tax_lines = [
        _tax_line(rates[rate_id], round_money(net_by_rate[rate_id]), tax_by_rate[rate_id])
        for rate_id in rates
    ]
    total = subtotal if mode == "TaxInclusive" else subtotal + total_tax
    return TaxResult(total_tax, total, {"TotalTax": total_tax, "TaxLine": tax_lines})


def _split(
    lines: Sequence[TaxedLine], mode: GlobalTaxCalculation
) -> list[tuple[Rate, Decimal, Decimal]]:
    """(rate, net, tax) per tax code; tax-inclusive totals are split into net and tax."""
    amount_by_code: dict[tuple[Rate, ...], Decimal] = {}
    for line in lines:
        amount_by_code[line.rates] = amount_by_code.get(line.rates, Decimal(0)) + line.amount
    parts: list[tuple[Rate, Decimal, Decimal]] = []
    for rates, amount in amount_by_code.items():
        if mode == "TaxExcluded":
            parts.extend((rate, amount, Decimal(0)) for rate in rates)
            continue
        combined = sum((rate.percent for rate in rates), Decimal(0))
        code_tax = round_money(amount * combined / (HUNDRED + combined))
        # The code's tax is split across its rates; the last takes what rounding leaves, so
        # that net plus tax is still the gross amount the line carried.
        left = code_tax
        for index, rate in enumerate(rates):
            if index == len(rates) - 1:
                share = left
            else:
                share = round_money(code_tax * rate.percent / combined) if combined else ZERO
            left -= share
            parts.append((rate, amount - code_tax, share))
    return parts


def _tax_line(rate: Rate, net: Decimal, tax: Decimal) -> JsonObject:
    return {
        "Amount": tax,
        "DetailType": "TaxLineDetail",
        "TaxLineDetail": {
            "TaxRateRef": {"value": rate.rate_id, "name": rate.name},
            "PercentBased": True,
            "TaxPercent": rate.percent,
            "NetAmountTaxable": net,
        },
    }
