"""One line of a preview invoice: the item it would use (or create), its income account, and
its tax code with the rates QuickBooks will apply, or the blocker that stops it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from qbsync.mappings.company import Company
from qbsync.mappings.preview_references import ItemPlan
from qbsync.mappings.preview_schemas import Blocker, LinePreview, QboRefView
from qbsync.mappings.references import (
    by_id,
    is_active,
    rate_percents,
    us_default_code,
    usable_item,
)
from qbsync.mappings.snapshots import InvoiceLine, InvoiceSnapshot
from qbsync.mappings.totals import PlannedLine, QboRate, TaxMode, line_amount
from qbsync.qbo import Item, TaxCode, TaxRate


@dataclass(frozen=True)
class LinePlanner:
    company: Company
    service_items: Mapping[str, Item | None]
    item_plans: Mapping[str, ItemPlan]  # unmapped listed services
    income_account: QboRefView | None
    # Why there is no income account to create items under, when there is none.
    income_problem: str
    tax_rate_codes: Mapping[str, str]
    platform_rates: Mapping[str, Decimal]
    codes: Sequence[TaxCode]
    rates: Sequence[TaxRate]

    def plan(
        self,
        index: int,
        line: InvoiceLine,
        mode: TaxMode | None,
        invoice: InvoiceSnapshot,
        blockers: list[Blocker],
        notes: list[str],
    ) -> tuple[LinePreview, PlannedLine | None]:
        field = f"lines.{index}"
        item_ref, income = self._item(field, line, blockers, notes)
        amount = line_amount(line.quantity, line.unit_price)
        tax_ref, rates, taxable, known = self._tax(index, line, mode, invoice, blockers)
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
        self, field: str, line: InvoiceLine, blockers: list[Blocker], notes: list[str]
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
            if item is not None and usable_item(item):
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
                    "is gone, inactive or no longer a service: map it again.",
                )
            )
            return None, None
        if self.income_account is None:
            blockers.append(
                Blocker(
                    code="no_income_account",
                    field=f"{field}.service_id",
                    message=f"Service {line.service_id!r} is not mapped and "
                    f"{self.income_problem}: map it, or choose a default income account.",
                )
            )
            return None, None
        plan = self.item_plans.get(line.service_id)
        if plan is None:
            notes.append(
                f"Service {line.service_id!r} is neither mapped nor listed in services: the "
                "push creates an item under its name, which could not be checked here."
            )
        elif plan.problem is not None:
            blockers.append(
                Blocker(
                    code="item_name_taken",
                    field=f"{field}.service_id",
                    message=f"Service {line.service_id!r} is not mapped, and {plan.problem}, so "
                    "no item can be created for it: map the service to an item.",
                )
            )
            return None, None
        return None, self.income_account

    def _tax(
        self,
        index: int,
        line: InvoiceLine,
        mode: TaxMode | None,
        invoice: InvoiceSnapshot,
        blockers: list[Blocker],
    ) -> tuple[QboRefView | None, tuple[QboRate, ...], bool, bool]:
        """(code shown, rates, US taxable, whether the tax is known)."""
        field = f"lines.{index}"
        rate_id = line.tax_rate_id
        if self.company.tax_by_flag:
            if invoice.amounts_are == "tax_inclusive":
                if index == 0:
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
        platform = self.platform_rates.get(rate_id)
        if percents.sales_percent is None or (
            platform is not None and percents.sales_percent != platform
        ):
            found = (
                "an unknown rate"
                if percents.sales_percent is None
                else (f"{percents.sales_percent} %")
            )
            blockers.append(
                Blocker(
                    code="tax_rate_mismatch",
                    field=f"{field}.tax_rate_id",
                    message=f'Tax rate {rate_id!r} is mapped to "{code.name}", which charges '
                    f"{found} on sales, not the platform's rate: map it again.",
                )
            )
            return None, (), False, False
        rates = tuple(
            QboRate(rate_id=rid, name=name or rid, percent=percent)
            for rid, name, percent in percents.sales
            if percent is not None
        )
        return QboRefView(qbo_id=code.id or "", name=code.name), rates, False, True
