"""The preview's services and tax rates: what each maps to, or what the push would do about it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from qbsync.mappings.company import Company
from qbsync.mappings.names import ITEM_NAME_LENGTH, name_key, quickbooks_name
from qbsync.mappings.preview_schemas import QboRefView, ServicePreview, TaxRatePreview
from qbsync.mappings.references import (
    by_id,
    is_active,
    rate_percents,
    us_default_code,
    usable_item,
)
from qbsync.mappings.snapshots import ServiceSnapshot
from qbsync.models import EntityMapping
from qbsync.qbo import Item, TaxCode, TaxRate


@dataclass(frozen=True)
class ItemPlan:
    """The item the push would create for an unmapped service, or why it can't."""

    name: str
    problem: str | None


def item_plans(
    services: Sequence[ServiceSnapshot],
    mapped: Mapping[str, EntityMapping],
    items: Sequence[Item],
) -> dict[str, ItemPlan]:
    """Per unmapped service: QuickBooks keeps item names unique, inactive items included, so a
    name an item holds, or one an earlier service of this preview would take, can't be used."""
    existing = {name_key(item.name): item.name for item in items if item.name}
    claimed: dict[str, str] = {}
    plans: dict[str, ItemPlan] = {}
    for service in services:
        if service.id in mapped:
            continue
        name = quickbooks_name(service.name, ITEM_NAME_LENGTH)
        key = name_key(name)
        problem = None
        if key in existing:
            problem = f'QuickBooks already has an item named "{existing[key]}"'
        elif key in claimed:
            problem = f"service {claimed[key]!r} of this preview would create an item of that name"
        else:
            claimed[key] = service.id
        plans[service.id] = ItemPlan(name, problem)
    return plans


def service_preview(
    service: ServiceSnapshot,
    mapped: EntityMapping | None,
    plan: ItemPlan | None,
    items: Sequence[Item],
    income: QboRefView | None,
    income_problem: str,
) -> ServicePreview:
    if mapped is not None:
        item = by_id(items, mapped.qbo_id)
        if item is not None and usable_item(item):
            return ServicePreview(
                platform_id=service.id,
                name=service.name,
                status="mapped",
                item=QboRefView(qbo_id=item.id or "", name=item.name),
                would_create=False,
                income_account=None,
                candidates=[],
                note=None,
            )
        note = (
            f'Mapped to QuickBooks item {mapped.qbo_id} ("{mapped.qbo_name}"), which is gone, '
            "inactive or no longer a service: map it again."
        )
        return _missing(service, note, False, None, [])
    assert plan is not None
    same_name = [
        QboRefView(qbo_id=item.id or "", name=item.name)
        for item in items
        if item.name and name_key(item.name) == name_key(plan.name)
    ]
    if income is None:
        note = (
            f"Not mapped, and {income_problem}: map it to an item, or choose a default income "
            "account so the push can create one."
        )
    elif plan.problem is not None:
        note = (
            f"Not mapped, and {plan.problem}, so none can be created: map the service to an item."
        )
    else:
        note = (
            f'Not mapped: the push will create the Service item "{plan.name}" under '
            f'"{income.name}".'
        )
    creates = income is not None and plan.problem is None
    return _missing(service, note, creates, income, same_name)


def _missing(
    service: ServiceSnapshot,
    note: str,
    creates: bool,
    income: QboRefView | None,
    same_name: list[QboRefView],
) -> ServicePreview:
    return ServicePreview(
        platform_id=service.id,
        name=service.name,
        status="missing",
        item=None,
        would_create=creates,
        income_account=income,
        candidates=same_name,
        note=note,
    )


def tax_rate_preview(
    platform_id: str,
    name: str,
    rate: Decimal,
    company: Company,
    mapped: EntityMapping | None,
    codes: Sequence[TaxCode],
    rates: Sequence[TaxRate],
) -> TaxRatePreview:
    if company.tax_by_flag:
        flag = mapped.qbo_id if mapped is not None else us_default_code(rate)
        return TaxRatePreview(
            platform_id=platform_id,
            name=name,
            rate=rate,
            status="mapped" if mapped is not None else "not_needed",
            tax_code=QboRefView(qbo_id=flag, name=flag),
            candidates=[],
            note=None
            if mapped is not None
            else f"A US company's lines are only taxable or not: lines at this rate are sent as "
            f"{flag}, with the platform's tax total.",
        )
    matching = [
        QboRefView(qbo_id=code.id or "", name=code.name)
        for code in codes
        if is_active(code) and rate_percents(code, rates).sales_percent == rate
    ]
    if mapped is not None:
        code = by_id(codes, mapped.qbo_id)
        percent = rate_percents(code, rates).sales_percent if code is not None else None
        if code is not None and is_active(code) and percent == rate:
            return TaxRatePreview(
                platform_id=platform_id,
                name=name,
                rate=rate,
                status="mapped",
                tax_code=QboRefView(qbo_id=code.id or "", name=code.name),
                candidates=[],
                note=None,
            )
        note = (
            f'Mapped to tax code {mapped.qbo_id} ("{mapped.qbo_name}"), which is gone, '
            f"inactive, or no longer charges {rate} %: map it again."
        )
    else:
        note = "Not mapped: invoices using it can't be pushed until it is mapped to a tax code."
    return TaxRatePreview(
        platform_id=platform_id,
        name=name,
        rate=rate,
        status="missing",
        tax_code=None,
        candidates=matching,
        note=note,
    )
