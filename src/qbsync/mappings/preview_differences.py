"""The preview's comparison of the platform's totals with QuickBooks', in words a person can
act on."""

from __future__ import annotations

from decimal import Decimal

from qbsync.mappings.preview_schemas import (
    Difference,
    QuickBooksTotals,
    TaxLineView,
    Totals,
)
from qbsync.mappings.snapshots import InvoiceSnapshot
from qbsync.mappings.totals import QboTotals, TaxMode


def quickbooks_view(totals: QboTotals) -> QuickBooksTotals:
    return QuickBooksTotals(
        subtotal=totals.net_subtotal,
        tax_total=totals.tax_total,
        total=totals.total,
        tax_lines=[
            TaxLineView(
                rate_id=line.rate_id,
                name=line.name,
                percent=line.percent,
                net_amount_taxable=line.net_amount_taxable,
                amount=line.amount,
            )
            for line in totals.tax_lines
        ],
    )


def differences(
    platform: Totals, quickbooks: QboTotals, mode: TaxMode | None, invoice: InvoiceSnapshot
) -> list[Difference]:
    found: list[Difference] = []
    sub_gap = platform.subtotal - quickbooks.net_subtotal
    tax_gap = platform.tax_total - quickbooks.tax_total
    if sub_gap:
        found.append(
            Difference(
                field="subtotal",
                platform=str(platform.subtotal),
                quickbooks=str(quickbooks.net_subtotal),
                reason=_subtotal_reason(mode),
            )
        )
    if tax_gap:
        found.append(
            Difference(
                field="tax_total",
                platform=str(platform.tax_total),
                quickbooks=str(quickbooks.tax_total),
                reason=_tax_reason(tax_gap, mode, invoice),
            )
        )
    if platform.total != quickbooks.total:
        found.append(
            Difference(
                field="total",
                platform=str(platform.total),
                quickbooks=str(quickbooks.total),
                reason="Follows from the differences above."
                if found
                else "The platform's total is not its subtotal plus its tax.",
            )
        )
    return found


def _subtotal_reason(mode: TaxMode | None) -> str:
    if mode == "TaxInclusive":
        return (
            "QuickBooks takes the tax out of each tax code's gross amount and rounds once per "
            "code; the platform's amount before tax differs."
        )
    return (
        "QuickBooks rounds each line's quantity times unit price to the cent; the platform's "
        "subtotal is not the sum of those amounts."
    )


def _tax_reason(gap: Decimal, mode: TaxMode | None, invoice: InvoiceSnapshot) -> str:
    if invoice.amounts_are == "no_tax":
        return "The invoice says no tax applies (no_tax), yet the platform's tax total is not zero."
    if mode is not None and abs(gap) <= Decimal("0.01") * len(invoice.lines):
        return (
            "Rounding: QuickBooks rounds VAT/GST once per rate on the invoice's total, the "
            "platform rounded line by line. QuickBooks' figure is what the customer will owe "
            "there."
        )
    return (
        "The tax codes mapped in QuickBooks charge a different amount than the platform: check "
        "the tax-rate mappings."
    )
