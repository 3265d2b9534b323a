"""The dry run: what a sync would do with these clients, services, tax rates and invoices.

It reads the company's cached lists and the org's mappings and writes nothing, neither to
QuickBooks nor to the mappings. The links it proposes are remembered for an hour under a preview
id, so that the user can confirm the ones they agree with (`preview_apply`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from qbsync.db import Database
from qbsync.errors import AppError
from qbsync.mappings import service
from qbsync.mappings.company import Company
from qbsync.mappings.matching import (
    ClientFacts,
    CustomerIndex,
    MatchResult,
    action_for,
)
from qbsync.mappings.preview_invoices import InvoicePlanner, customer_view
from qbsync.mappings.preview_schemas import (
    CandidateView,
    ClientPreview,
    CompanyView,
    PreviewBody,
    PreviewResult,
    PreviewSummary,
    QboRefView,
    ServicePreview,
    TaxRatePreview,
)
from qbsync.mappings.preview_store import PreviewStore, ProposedLink
from qbsync.mappings.references import (
    ITEM_TYPES_FOR_SERVICES,
    References,
    by_id,
    is_active,
    rate_percents,
    us_default_code,
)
from qbsync.mappings.schemas import SyncSettingsView
from qbsync.mappings.settings_service import read_settings
from qbsync.models import EntityMapping, MappingKind
from qbsync.qbo import Customer, Item, TaxCode, TaxRate


class DuplicateIdError(AppError):
    status = 422
    code = "duplicate_id"


@dataclass(frozen=True)
class Mappings:
    clients: dict[str, EntityMapping]
    services: dict[str, EntityMapping]
    tax_rates: dict[str, EntityMapping]
    taken: dict[str, str]  # QuickBooks customer id → the client it stands for


async def run_preview(
    db: Database, refs: References, store: PreviewStore, company: Company, body: PreviewBody
) -> PreviewResult:
    _refuse_duplicates(body)
    settings = await read_settings(db, company.org_id)
    mappings = await _mappings(db, company)
    facts = _client_facts(body)
    customers = await refs.customers() if facts else []
    # A customer's DisplayName is unique across customers, vendors and employees.
    names_in_use = await _names_in_use(refs, customers) if facts else {}
    index = CustomerIndex(customers, taken=mappings.taken)
    # Fuzzy matching of a long list is CPU work: keep the event loop free for other requests.
    matches = await asyncio.to_thread(
        index.match_all, facts, {pid: row.qbo_id for pid, row in mappings.clients.items()}
    )
    needs_items = bool(body.services or body.invoices)
    items = await refs.items() if needs_items else []
    needs_codes = not company.tax_by_flag and bool(body.tax_rates or body.invoices)
    codes = await refs.tax_codes() if needs_codes else []
    rates = await refs.tax_rates() if needs_codes else []
    accounts = await refs.accounts() if needs_items and settings.default_income_account_id else []
    income = by_id(accounts, settings.default_income_account_id or "")
    income_ref = (
        QboRefView(qbo_id=income.id or "", name=income.name) if income is not None else None
    )
    listed = {client.id for client in body.clients}
    clients = [
        _client(fact, matches[fact.platform_id], settings, fact.platform_id in listed, names_in_use)
        for fact in facts
    ]
    services = [_service(s.id, s.name, mappings, items, income_ref) for s in body.services]
    tax_rates = [
        _tax_rate(r.id, r.name, r.rate, company, mappings, codes, rates) for r in body.tax_rates
    ]
    planner = InvoicePlanner(
        company=company,
        settings=settings,
        matches={
            pid: (match, action_for(match, settings.customer_sync_mode))
            for pid, match in matches.items()
        },
        customer_currencies={
            row.id or "": row.currency_ref.value for row in customers if row.currency_ref
        },
        service_items={pid: by_id(items, row.qbo_id) for pid, row in mappings.services.items()},
        service_names={service.id: service.name for service in body.services},
        item_names={_item_key(item.name): item for item in items if item.name},
        income_account=income_ref,
        tax_rate_codes={pid: row.qbo_id for pid, row in mappings.tax_rates.items()},
        platform_rates={rate.id: rate.rate for rate in body.tax_rates},
        codes=codes,
        rates=rates,
        numbers_taken=await _numbers_taken(db, refs, company, body),
        first_clients={fact.platform_id: fact for fact in facts},
    )
    invoices = planner.plan_all(body.invoices)
    links = {
        preview.platform_id: ProposedLink(
            qbo_id=preview.customer.qbo_id, display_name=preview.customer.display_name
        )
        for preview in clients
        if preview.action == "link" and preview.rule != "mapping" and preview.customer
    }
    stored = await store.save(company, links)
    return PreviewResult(
        preview_id=stored.preview_id if stored else None,
        expires_at=stored.expires_at if stored else None,
        company=CompanyView(
            realm_id=company.realm_id,
            company_name=company.company_name,
            country=company.country,
            automated_sales_tax=company.automated_sales_tax,
            customer_sync_mode=settings.customer_sync_mode,
        ),
        clients=clients,
        services=services,
        tax_rates=tax_rates,
        invoices=invoices,
        summary=PreviewSummary(
            clients=_count((c.action for c in clients), ("link", "create", "ambiguous", "skip")),
            services=_count((s.status for s in services), ("mapped", "missing", "not_needed")),
            tax_rates=_count((t.status for t in tax_rates), ("mapped", "missing", "not_needed")),
            invoices=_count((i.status for i in invoices), ("ready", "blocked", "skipped")),
        ),
    )


async def _names_in_use(refs: References, customers: Sequence[Customer]) -> dict[str, str]:
    """Display name (any case) → what already holds it in QuickBooks."""
    held = {
        _name_key(row.display_name): "an employee"
        for row in await refs.employees()
        if row.display_name
    }
    held |= {
        _name_key(row.display_name): "a vendor" for row in await refs.vendors() if row.display_name
    }
    for row in customers:
        if row.display_name:
            held[_name_key(row.display_name)] = (
                "a customer" if is_active(row) else "an inactive customer"
            )
    return held


async def _numbers_taken(
    db: Database, refs: References, company: Company, body: PreviewBody
) -> dict[str, str]:
    """Invoice number (any case) → the QuickBooks invoice holding it, unless it is the very
    invoice this platform invoice was pushed as. One query, only when the company takes our
    numbers."""
    if not company.custom_txn_numbers:
        return {}
    numbers = sorted({invoice.number for invoice in body.invoices if invoice.number})
    if not numbers:
        return {}
    pushed = await service.pushed_invoices(db, company, [invoice.id for invoice in body.invoices])
    ours = set(pushed.values())
    return {
        _name_key(invoice.doc_number or ""): invoice.id or ""
        for invoice in await refs.invoices_numbered(numbers)
        if invoice.id not in ours
    }


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


_item_key = _name_key


def _refuse_duplicates(body: PreviewBody) -> None:
    for name, ids in (
        ("clients", [client.id for client in body.clients]),
        ("services", [item.id for item in body.services]),
        ("tax_rates", [rate.id for rate in body.tax_rates]),
        ("invoices", [invoice.id for invoice in body.invoices]),
    ):
        seen: set[str] = set()
        for position, platform_id in enumerate(ids):
            if platform_id in seen:
                raise DuplicateIdError(
                    f"{name} lists {platform_id!r} twice; each entity appears once.",
                    field=f"{name}.{position}.id",
                )
            seen.add(platform_id)


async def _mappings(db: Database, company: Company) -> Mappings:
    clients = await service.active_mappings(db, company, MappingKind.CLIENT)
    return Mappings(
        clients=clients,
        services=await service.active_mappings(db, company, MappingKind.SERVICE),
        tax_rates=await service.active_mappings(db, company, MappingKind.TAX_RATE),
        taken={row.qbo_id: pid for pid, row in clients.items()},
    )


def _client_facts(body: PreviewBody) -> list[ClientFacts]:
    """The clients listed, then those only named on an invoice (they are matched too)."""
    facts = {
        client.id: ClientFacts(client.id, client.name, client.email, client.company_name)
        for client in body.clients
    }
    for invoice in body.invoices:
        client = invoice.client
        facts.setdefault(client.id, ClientFacts(client.id, client.name, client.email))
    return list(facts.values())


def _client(
    fact: ClientFacts,
    match: MatchResult,
    settings: SyncSettingsView,
    listed: bool,
    names_in_use: dict[str, str],
) -> ClientPreview:
    action = action_for(match, settings.customer_sync_mode)
    note = match.note
    holder = names_in_use.get(_name_key(fact.name))
    if action == "create" and holder is not None:
        clash = (
            f'QuickBooks already has {holder} named "{fact.name}", and a customer\'s name must '
            "differ from every customer's, vendor's and employee's: the new customer gets a "
            "distinguishing suffix."
        )
        note = f"{note} {clash}" if note else clash
    return ClientPreview(
        platform_id=fact.platform_id,
        name=fact.name,
        listed=listed,
        action=action,
        rule=match.rule,
        confidence=match.confidence,
        customer=customer_view(match.customer) if match.customer else None,
        candidates=[
            CandidateView(**customer_view(c).model_dump(), reason=c.reason, score=c.score)
            for c in match.candidates
        ],
        note=note,
    )


def _service(
    platform_id: str,
    name: str,
    mappings: Mappings,
    items: Sequence[Item],
    income: QboRefView | None,
) -> ServicePreview:
    mapped = mappings.services.get(platform_id)
    # QuickBooks compares item names as written, ignoring case only.
    same_name = [
        QboRefView(qbo_id=item.id or "", name=item.name)
        for item in items
        if item.name and _item_key(item.name) == _item_key(name)
    ]
    if mapped is not None:
        item = by_id(items, mapped.qbo_id)
        if item is not None and is_active(item) and item.type in ITEM_TYPES_FOR_SERVICES:
            return ServicePreview(
                platform_id=platform_id,
                name=name,
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
    elif income is None:
        note = (
            "Not mapped, and no default income account is set: map it to an item, or choose "
            "a default income account so the push can create one."
        )
    elif same_name:
        note = (
            "Not mapped. QuickBooks already has an item of this name, so creating one would be "
            "refused: map the service to it."
        )
    else:
        note = f'Not mapped: the push will create a Service item under "{income.name}".'
    return ServicePreview(
        platform_id=platform_id,
        name=name,
        status="missing",
        item=None,
        would_create=mapped is None and income is not None and not same_name,
        income_account=income if mapped is None else None,
        candidates=same_name,
        note=note,
    )


def _tax_rate(
    platform_id: str,
    name: str,
    rate: Decimal,
    company: Company,
    mappings: Mappings,
    codes: Sequence[TaxCode],
    rates: Sequence[TaxRate],
) -> TaxRatePreview:
    mapped = mappings.tax_rates.get(platform_id)
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
            else f"Automated sales tax computes the tax; lines at this rate are sent as {flag}.",
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


def _count(values: Iterable[str], keys: tuple[str, ...]) -> dict[str, int]:
    counted = Counter(values)
    return {key: counted.get(key, 0) for key in keys}
