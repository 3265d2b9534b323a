"""One invoice of the preview: the customer, item, account and tax code of each line, the totals
QuickBooks will compute beside the platform's, every difference, and what would block the push.

Tax follows the company: a US company gets TAX/NON lines and the platform's tax total as
`TxnTaxDetail.TotalTax` (QuickBooks honours it and spreads it over its own rates), so its total
is the platform's; elsewhere each line carries the mapped tax code and QuickBooks computes
VAT/GST itself, rounding once per rate (`totals`). The lines are planned in `preview_lines`, the
differences worded in `preview_differences`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qbsync.mappings.company import Company
from qbsync.mappings.matching import Action, ClientFacts, MatchResult
from qbsync.mappings.names import name_key
from qbsync.mappings.preview_differences import differences, quickbooks_view
from qbsync.mappings.preview_lines import LinePlanner
from qbsync.mappings.preview_schemas import (
    Blocker,
    Difference,
    InvoiceCustomer,
    InvoicePreview,
    LinePreview,
    Totals,
    customer_view,
)
from qbsync.mappings.schemas import SyncSettingsView
from qbsync.mappings.snapshots import InvoiceSnapshot
from qbsync.mappings.totals import PlannedLine, QboTotals, TaxMode, us_totals, vat_totals

MAX_DOC_NUMBER = 21
MODES: dict[str, TaxMode] = {
    "tax_exclusive": "TaxExcluded",
    "tax_inclusive": "TaxInclusive",
    "no_tax": "NotApplicable",
}


@dataclass(frozen=True)
class NumbersTaken:
    held: Mapping[str, set[str]]  # invoice number, any case → QuickBooks invoices holding it
    pushed: Mapping[str, str]  # platform invoice id → the QuickBooks invoice it was pushed as

    def holder(self, invoice: InvoiceSnapshot) -> str | None:
        """Another QuickBooks invoice holding this invoice's number, if one does."""
        if not invoice.number:
            return None
        others = self.held.get(name_key(invoice.number), set()) - {self.pushed.get(invoice.id)}
        return min(others) if others else None


@dataclass(frozen=True)
class InvoicePlanner:
    company: Company
    settings: SyncSettingsView
    lines: LinePlanner
    matches: Mapping[str, tuple[MatchResult, Action]]
    customer_currencies: Mapping[str, str]
    numbers_taken: NumbersTaken
    first_clients: Mapping[str, ClientFacts]

    def plan_all(self, invoices: Sequence[InvoiceSnapshot]) -> list[InvoicePreview]:
        """Each invoice; a number used twice in this list blocks the later ones."""
        planned = []
        seen: dict[str, str] = {}
        for invoice in invoices:
            preview = self.plan(invoice)
            key = (
                name_key(invoice.number)
                if invoice.number and self.company.custom_txn_numbers
                else None
            )
            if key and key in seen:
                preview.blocked_by.append(
                    Blocker(
                        code="duplicate_doc_number",
                        field="number",
                        message=f"Invoice {seen[key]!r} of this preview has the same number; "
                        "QuickBooks refuses a second invoice with it.",
                    )
                )
                if preview.status == "ready":
                    preview.status = "blocked"
            elif key and preview.status != "skipped":
                seen[key] = invoice.id
            planned.append(preview)
        return planned

    def plan(self, invoice: InvoiceSnapshot) -> InvoicePreview:
        blockers: list[Blocker] = []
        notes: list[str] = []
        customer = self._customer(invoice, blockers, notes)
        mode = None if self.company.is_us else MODES[invoice.amounts_are]
        lines: list[LinePreview] = []
        planned: list[PlannedLine | None] = []
        for index, line in enumerate(invoice.lines):
            preview, plan = self.lines.plan(index, line, mode, invoice, blockers, notes)
            lines.append(preview)
            planned.append(plan)
        self._currency(invoice, customer, blockers)
        doc_number = self._doc_number(invoice, blockers, notes)
        platform = Totals(
            subtotal=invoice.subtotal, tax_total=invoice.tax_total, total=invoice.total
        )
        totals = None
        computed = None
        found: list[Difference] = []
        if all(plan is not None for plan in planned):
            computed = self._totals([plan for plan in planned if plan is not None], mode, invoice)
            totals = quickbooks_view(computed)
            found = differences(platform, computed, mode, invoice)
            if self.company.is_us and invoice.amounts_are == "tax_exclusive":
                notes.append(
                    "QuickBooks' automated sales tax is given the platform's tax total, so the "
                    "invoice's total in QuickBooks is the platform's."
                )
                if invoice.tax_total and not any(plan.taxable for plan in planned if plan):
                    notes.append(
                        "The platform charges tax, but no line is taxable (TAX) in QuickBooks: "
                        "check the tax-rate mappings, or QuickBooks may not accept the tax."
                    )
        self._amounts(invoice, computed, blockers)
        status = "blocked" if blockers else "ready"
        start = self.settings.sync_start_date
        if start is not None and invoice.issue_date < start:
            status = "skipped"
            notes.append(f"Issued before the sync start date ({start}): it is not pushed.")
        return InvoicePreview(
            platform_id=invoice.id,
            number=invoice.number,
            status=status,
            doc_number=doc_number,
            global_tax_calculation=mode,
            customer=customer,
            lines=lines,
            platform_totals=platform,
            quickbooks_totals=totals,
            differences=found,
            blocked_by=blockers,
            notes=notes,
        )

    def _customer(
        self, invoice: InvoiceSnapshot, blockers: list[Blocker], notes: list[str]
    ) -> InvoiceCustomer:
        match, action = self.matches[invoice.client.id]
        matched_as = self.first_clients[invoice.client.id]
        named = invoice.client
        if (named.name, named.email) != (matched_as.name, matched_as.email):
            notes.append(
                f'This invoice names client {named.id!r} as "{named.name}"'
                f"{f' <{named.email}>' if named.email else ''}; it was matched as "
                f'"{matched_as.name}"{f" <{matched_as.email}>" if matched_as.email else ""}, '
                "as listed first."
            )
        if action == "ambiguous":
            blockers.append(
                Blocker(
                    code="ambiguous_customer",
                    field="client",
                    message=match.note
                    or "Several QuickBooks customers could be this client: map it to one.",
                )
            )
        elif action == "skip":
            blockers.append(
                Blocker(
                    code="customer_not_matched",
                    field="client",
                    message="No QuickBooks customer matches this client and the sync mode is "
                    "match only: map the client to a customer, or allow creating customers.",
                )
            )
        return InvoiceCustomer(
            platform_id=invoice.client.id,
            action=action,
            customer=customer_view(match.customer) if match.customer and action == "link" else None,
        )

    def _currency(
        self, invoice: InvoiceSnapshot, customer: InvoiceCustomer, blockers: list[Blocker]
    ) -> None:
        home = self.company.home_currency
        if home and invoice.currency != home and not self.company.multi_currency:
            blockers.append(
                Blocker(
                    code="currency_not_enabled",
                    field="currency",
                    message=f"The invoice is in {invoice.currency} but the QuickBooks company "
                    f"works in {home} only: turn on multicurrency in QuickBooks.",
                )
            )
            return
        linked = customer.customer if customer.action == "link" else None
        held = self.customer_currencies.get(linked.qbo_id) if linked else None
        if linked is not None and held and held != invoice.currency:
            blockers.append(
                Blocker(
                    code="customer_currency_mismatch",
                    field="currency",
                    message=f"The invoice is in {invoice.currency}, but QuickBooks customer "
                    f'"{linked.display_name}" is billed in {held}, which QuickBooks can\'t '
                    "change.",
                )
            )

    def _amounts(
        self, invoice: InvoiceSnapshot, computed: QboTotals | None, blockers: list[Blocker]
    ) -> None:
        if invoice.total < 0 or (computed is not None and computed.total < 0):
            blockers.append(
                Blocker(
                    code="negative_total",
                    field="total",
                    message="QuickBooks can't hold an invoice whose total is below zero: "
                    "record it as a credit note instead.",
                )
            )

    def _doc_number(
        self, invoice: InvoiceSnapshot, blockers: list[Blocker], notes: list[str]
    ) -> str | None:
        if not self.company.custom_txn_numbers:
            notes.append("QuickBooks numbers invoices itself in this company.")
            return None
        number = invoice.number
        if number is not None and len(number) > MAX_DOC_NUMBER:
            blockers.append(
                Blocker(
                    code="doc_number_too_long",
                    field="number",
                    message=f"QuickBooks keeps invoice numbers of at most {MAX_DOC_NUMBER} "
                    f"characters; {number!r} has {len(number)}.",
                )
            )
        taken = self.numbers_taken.holder(invoice)
        if taken is not None:
            blockers.append(
                Blocker(
                    code="duplicate_doc_number",
                    field="number",
                    message=f"QuickBooks invoice {taken} already has the number {number!r}, "
                    "and QuickBooks refuses a second invoice with it.",
                )
            )
        return number

    def _totals(
        self, lines: Sequence[PlannedLine], mode: TaxMode | None, invoice: InvoiceSnapshot
    ) -> QboTotals:
        if mode is None:
            taxed = invoice.amounts_are != "no_tax"
            return us_totals(lines, tax_override=invoice.tax_total if taxed else None)
        return vat_totals(lines, mode)
