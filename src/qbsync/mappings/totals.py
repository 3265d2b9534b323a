"""The totals QuickBooks will compute for an invoice, from the lines qbsync plans to send.

The dry-run preview shows these beside the platform's own totals, so a cent that QuickBooks rounds
differently is seen before anything is written. The rules mirror QuickBooks:

* Money is rounded half-up to the cent. A line's Amount is Qty x UnitPrice so rounded (QuickBooks
  refuses an Amount that differs).
* Non-US VAT, by the invoice's GlobalTaxCalculation:
  - TaxExcluded: line amounts are net. Tax is rounded once per rate, on the sum of the net
    amounts of every line carrying that rate (not line by line); total = subtotal + tax.
  - TaxInclusive: line amounts are gross. Per tax code (its tuple of rates) the tax is
    round(gross x combined% / (100 + combined%)) on the sum of the code's lines; a code with
    several rates shares that tax out by rate, the last rate taking what rounding leaves, so net
    plus tax is still the gross. Each rate's net is its codes' gross minus their tax;
    total = subtotal, the gross.
  - NotApplicable: no tax; total = subtotal.
* US: lines are only taxable or not, and qbsync sends the platform's tax total as
  TxnTaxDetail.TotalTax, which QuickBooks honours rounded to the cent (its automated sales tax
  spreads it over its own rates); an invoice with no tax sends none and owes none.

QuickBooks does not document which way it rounds half a cent, how it rounds tax-inclusive amounts
(per code, and which rate of a code gets the leftover cent), nor whether a TotalTax override
applies to a non-taxable customer; qbsync's QuickBooks simulator models the same choices as this
module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

TaxMode = Literal["TaxExcluded", "TaxInclusive", "NotApplicable"]

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class QboRate:
    rate_id: str
    name: str
    percent: Decimal  # 20 means 20 %


@dataclass(frozen=True)
class PlannedLine:
    quantity: Decimal
    unit_price: Decimal
    # Non-US: the SALES rates of the line's tax code (empty for a code without rates, or none
    # under NotApplicable).
    rates: tuple[QboRate, ...] = ()
    # US: whether the line is sent as TAX (True) or NON (False).
    taxable: bool = False


@dataclass(frozen=True)
class TaxLineTotal:
    rate_id: str
    name: str
    percent: Decimal
    net_amount_taxable: Decimal
    amount: Decimal


@dataclass(frozen=True)
class QboTotals:
    line_amounts: tuple[Decimal, ...]  # each Line.Amount as QuickBooks will store it
    subtotal: Decimal  # sum of the line amounts (gross under TaxInclusive): the SubTotalLine
    net_subtotal: Decimal  # before tax; differs from subtotal only under TaxInclusive
    tax_total: Decimal
    total: Decimal
    # One per rate, in the order the lines first use it. us_totals leaves it empty: AST
    # applies a rate of its own choosing, which the caller does not name.
    tax_lines: tuple[TaxLineTotal, ...]


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return round_cents(quantity * unit_price)


def vat_totals(lines: Sequence[PlannedLine], mode: TaxMode) -> QboTotals:
    """QuickBooks' totals for a non-US invoice whose GlobalTaxCalculation is `mode`."""
    amounts = tuple(line_amount(line.quantity, line.unit_price) for line in lines)
    subtotal = sum(amounts, ZERO)
    if mode == "NotApplicable":
        return QboTotals(amounts, subtotal, subtotal, ZERO, subtotal, ())
    rates: dict[str, QboRate] = {}
    net: dict[str, Decimal] = {}
    tax: dict[str, Decimal] = {}
    if mode == "TaxExcluded":
        for line, amount in zip(lines, amounts, strict=True):
            for rate in line.rates:
                rates.setdefault(rate.rate_id, rate)
                net[rate.rate_id] = net.get(rate.rate_id, ZERO) + amount
        tax = {
            rate_id: round_cents(rate_net * rates[rate_id].percent / HUNDRED)
            for rate_id, rate_net in net.items()
        }
    else:
        gross_by_code: dict[tuple[QboRate, ...], Decimal] = {}
        for line, amount in zip(lines, amounts, strict=True):
            gross_by_code[line.rates] = gross_by_code.get(line.rates, ZERO) + amount
        for code, gross in gross_by_code.items():
            code_tax, shares = _inclusive_tax(gross, code)
            for rate, share in zip(code, shares, strict=True):
                rates.setdefault(rate.rate_id, rate)
                net[rate.rate_id] = net.get(rate.rate_id, ZERO) + gross - code_tax
                tax[rate.rate_id] = tax.get(rate.rate_id, ZERO) + share
    tax_total = sum(tax.values(), ZERO)
    tax_lines = tuple(
        TaxLineTotal(rate.rate_id, rate.name, rate.percent, net[rate_id], tax[rate_id])
        for rate_id, rate in rates.items()
    )
    if mode == "TaxInclusive":
        return QboTotals(amounts, subtotal, subtotal - tax_total, tax_total, subtotal, tax_lines)
    return QboTotals(amounts, subtotal, subtotal, tax_total, subtotal + tax_total, tax_lines)


def _inclusive_tax(gross: Decimal, code: tuple[QboRate, ...]) -> tuple[Decimal, list[Decimal]]:
    """The tax inside `gross` for one code, and its share for each of the code's rates."""
    combined = sum((rate.percent for rate in code), Decimal(0))
    code_tax = round_cents(gross * combined / (HUNDRED + combined))
    shares: list[Decimal] = []
    left = code_tax
    for rate in code[:-1]:
        share = round_cents(code_tax * rate.percent / combined) if combined else ZERO
        shares.append(share)
        left -= share
    # The last rate takes what rounding left, so the shares add up to the code's tax.
    if code:
        shares.append(left)
    return code_tax, shares


def us_totals(lines: Sequence[PlannedLine], *, tax_override: Decimal | None) -> QboTotals:
    """QuickBooks' totals for a US invoice. `tax_override` is the TotalTax qbsync sends; without
    one (an invoice with no tax) every line is NON and no tax is due."""
    amounts = tuple(line_amount(line.quantity, line.unit_price) for line in lines)
    subtotal = sum(amounts, ZERO)
    tax = round_cents(tax_override) if tax_override is not None else ZERO
    return QboTotals(amounts, subtotal, subtotal, tax, subtotal + tax, ())
