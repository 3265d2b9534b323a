"""One invoice of the preview: the customer, item, account and tax code of each line, the totals
QuickBooks will compute beside the platform's, every difference, and what would block the push.

Tax follows the company: a US company with automated sales tax gets TAX/NON lines and the
platform's tax total as `TxnTaxDetail.TotalTax` (QuickBooks honours it and spreads it over its
own rates), so its total is the platform's; elsewhere each line carries the mapped tax code and
QuickBooks computes VAT/GST itself, rounding once per rate (`totals`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from qbsync.mappings.company import Company
from qbsync.mappings.matching import Action, Candidate, ClientFacts, MatchResult
from qbsync.mappings.preview_schemas import (
    Blocker,
    CustomerView,
    Difference,
    InvoiceCustomer,
    InvoicePreview,
    LinePreview,
    QboRefView,
    QuickBooksTotals,
    TaxLineView,
    Totals,
)
from qbsync.mappings.references import by_id, is_active, rate_percents, us_default_code
from qbsync.mappings.schemas import SyncSettingsView
from qbsync.mappings.snapshots import InvoiceLine, InvoiceSnapshot
from qbsync.mappings.totals import (
    PlannedLine,
    QboRate,
    QboTotals,
    TaxMode,
    line_amount,
    us_totals,
    vat_totals,
)
from qbsync.qbo import Item, TaxCode, TaxRate

MAX_DOC_NUMBER = 21
MODES: dict[str, TaxMode] = {
    "tax_exclusive": "TaxExcluded",
    "tax_inclusive": "TaxInclusive",
    "no_tax": "NotApplicable",
}


@dataclass(frozen=True)
class InvoicePlanner:
    company: Company
    settings: SyncSettingsView
    matches: Mapping[str, tuple[MatchResult, Action]]
    customer_currencies: Mapping[str, str]
    service_items: Mapping[str, Item | None]
    service_names: Mapping[str, str]
    item_names: Mapping[str, Item]  # by name, any case
    income_account: QboRefView | None
    tax_rate_codes: Mapping[str, str]
    platform_rates: Mapping[str, Decimal]
    codes: Sequence[TaxCode]
    rates: Sequence[TaxRate]
    numbers_taken: Mapping[str, str]  # invoice number, any case → QuickBooks invoice id
    first_clients: Mapping[str, ClientFacts]

    def plan_all(self, invoices: Sequence[InvoiceSnapshot]) -> list[InvoicePreview]:
        """Each invoice; a number used twice in this list blocks the later ones."""
        planned = []
        seen: dict[str, str] = {}
        for invoice in invoices:
            preview = self.plan(invoice)
            key = _number_key(invoice.number) if self.company.custom_txn_numbers else None
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
            elif key:
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
            preview, plan = self._line(index, line, mode, invoice, blockers)
            lines.append(preview)
            planned.append(plan)
        self._currency(invoice, customer, blockers)
        self._amounts(invoice, blockers)
        doc_number = self._doc_number(invoice, blockers, notes)
        platform = Totals(
            subtotal=invoice.subtotal, tax_total=invoice.tax_total, total=invoice.total
        )
        totals = None
        differences: list[Difference] = []
        if all(plan is not None for plan in planned):
            computed = self._totals([plan for plan in planned if plan is not None], mode, invoice)
            totals = _view(computed)
            differences = _differences(platform, computed, mode, invoice)
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
            differences=differences,
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
            customer=customer_view(match.customer) if match.customer else None,
        )

    def _line(
        self,
        index: int,
        line: InvoiceLine,
        mode: TaxMode | None,
        invoice: InvoiceSnapshot,
        blockers: list[Blocker],
    ) -> tuple[LinePreview, PlannedLine | None]:
        field = f"lines.{index}"
        item_ref, income = self._item(field, line, blockers)
        amount = line_amount(line.quantity, line.unit_price)
        tax_ref, rates, taxable, known = self._tax(field, line, mode, invoice, blockers)
        preview = LinePreview(
            index=index,
            service_id=line.service_id,
            item=item_ref,
            income_account=income,
            tax_code=tax_ref,
            amount=amount,
        )
        if not known:
            return preview, None
        return preview, PlannedLine(
            quantity=line.quantity, unit_price=line.unit_price, rates=rates, taxable=taxable
        )

    def _item(
        self, field: str, line: InvoiceLine, blockers: list[Blocker]
    ) -> tuple[QboRefView | None, QboRefView | None]:
        if line.service_id is None:
            blockers.append(
                Blocker(
                    code="line_without_service",
                    field=f"{field}.service_id",
                    message="QuickBooks needs a product or service on every line: give the "
                    "line a service.",
                )
            )
            return None, None
        if line.service_id in self.service_items:
            item = self.service_items[line.service_id]
            if item is not None and is_active(item):
                income = item.income_account_ref
                return (
                    QboRefView(qbo_id=item.id or "", name=item.name),
                    QboRefView(qbo_id=income.value, name=income.name) if income else None,
                )
            blockers.append(
                Blocker(
                    code="mapped_item_unusable",
                    field=f"{field}.service_id",
                    message=f"Service {line.service_id!r} is mapped to a QuickBooks item that "
                    "is gone or inactive: map it again.",
                )
            )
            return None, None
        if self.income_account is None:
            blockers.append(
                Blocker(
                    code="no_income_account",
                    field=f"{field}.service_id",
                    message=f"Service {line.service_id!r} is not mapped and no default income "
                    "account is set: map it, or choose a default income account.",
                )
            )
            return None, None
        name = self.service_names.get(line.service_id)
        holder = self.item_names.get(_number_key(name) or "") if name else None
        if holder is not None:
            blockers.append(
                Blocker(
                    code="item_name_taken",
                    field=f"{field}.service_id",
                    message=f"Service {line.service_id!r} is not mapped, and QuickBooks already "
                    f'has an item named "{holder.name}", so one can\'t be created for it: map '
                    "the service to that item.",
                )
            )
            return None, None
        return None, self.income_account

    def _tax(
        self,
        field: str,
        line: InvoiceLine,
        mode: TaxMode | None,
        invoice: InvoiceSnapshot,
        blockers: list[Blocker],
    ) -> tuple[QboRefView | None, tuple[QboRate, ...], bool, bool]:
        """(code shown, rates, US taxable, whether the tax is known)."""
        rate_id = line.tax_rate_id
        if self.company.tax_by_flag:
            if invoice.amounts_are == "tax_inclusive":
                if index_of(field) == 0:
                    blockers.append(
                        Blocker(
                            code="tax_inclusive_not_supported",
                            field="amounts_are",
                            message="QuickBooks' US companies take amounts before tax only: "
                            "send this invoice with tax-exclusive amounts.",
                        )
                    )
                return None, (), False, False
            if invoice.amounts_are == "no_tax" or rate_id is None:
                return QboRefView(qbo_id="NON", name="NON"), (), False, True
            flag = self.tax_rate_codes.get(rate_id)
            if flag is None and rate_id in self.platform_rates:
                flag = us_default_code(self.platform_rates[rate_id])
            if flag is None:
                blockers.append(
                    Blocker(
                        code="unmapped_tax_rate",
                        field=f"{field}.tax_rate_id",
                        message=f"Tax rate {rate_id!r} is neither mapped nor listed in "
                        "tax_rates: map it to TAX or NON.",
                    )
                )
                return None, (), False, False
            return QboRefView(qbo_id=flag, name=flag), (), flag == "TAX", True
        if mode == "NotApplicable":
            return None, (), False, True
        if rate_id is None:
            blockers.append(
                Blocker(
                    code="untaxed_line_needs_tax_code",
                    field=f"{field}.tax_rate_id",
                    message="QuickBooks needs a VAT/GST code on every line of a taxed invoice: "
                    "give this line a tax rate (a 0 % or exempt one where no tax is due).",
                )
            )
            return None, (), False, False
        code_id = self.tax_rate_codes.get(rate_id)
        code = by_id(self.codes, code_id) if code_id else None
        if code is None or not is_active(code):
            what = (
                "is not mapped"
                if code_id is None
                else "is mapped to a tax code that is gone or inactive"
            )
            blockers.append(
                Blocker(
                    code="unmapped_tax_rate",
                    field=f"{field}.tax_rate_id",
                    message=f"Tax rate {rate_id!r} {what}: map it to a QuickBooks tax code "
                    "so the VAT/GST is right.",
                )
            )
            return None, (), False, False
        percents = rate_percents(code, self.rates)
        rates = tuple(
            QboRate(rate_id=rid, name=name or rid, percent=percent)
            for rid, name, percent in percents.sales
            if percent is not None
        )
        return QboRefView(qbo_id=code.id or "", name=code.name), rates, False, True

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
        linked = customer.customer
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

    def _amounts(self, invoice: InvoiceSnapshot, blockers: list[Blocker]) -> None:
        if invoice.total < 0:
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
        taken = self.numbers_taken.get(_number_key(number) or "")
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


def index_of(field: str) -> int:
    return int(field.rsplit(".", 1)[1])


def _number_key(number: str | None) -> str | None:
    return " ".join(number.split()).casefold() if number else None


def customer_view(candidate: Candidate) -> CustomerView:
    return CustomerView(
        qbo_id=candidate.qbo_id,
        display_name=candidate.display_name,
        email=candidate.email,
        active=candidate.active,
    )


def _view(totals: QboTotals) -> QuickBooksTotals:
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


def _differences(
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
