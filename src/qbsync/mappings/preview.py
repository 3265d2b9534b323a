"""The dry run: what a sync would do with these clients, services, tax rates and invoices.

It reads the company's cached lists, the org's mappings and, when the company takes the
platform's invoice numbers, the QuickBooks invoices holding them; it writes nothing, neither to
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
from qbsync.mappings.names import DISPLAY_NAME_LENGTH, name_key, quickbooks_name
from qbsync.mappings.preview_invoices import MAX_DOC_NUMBER, InvoicePlanner, NumbersTaken
from qbsync.mappings.preview_lines import LinePlanner
from qbsync.mappings.preview_references import item_plans, service_preview, tax_rate_preview
from qbsync.mappings.preview_schemas import (
    CandidateView,
    ClientPreview,
    CompanyView,
    PreviewBody,
    PreviewResult,
    PreviewSummary,
    QboRefView,
    customer_view,
)
from qbsync.mappings.preview_store import PreviewStore, ProposedLink
from qbsync.mappings.references import (
    INCOME_TYPES,
    References,
    account_kind,
    by_id,
    is_active,
)
from qbsync.mappings.schemas import SyncSettingsView
from qbsync.mappings.settings_service import read_settings
from qbsync.models import EntityMapping, MappingKind
from qbsync.qbo import Customer


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
    listed_ids = {customer.id for customer in customers}
    mapped = (mappings.clients.get(fact.platform_id) for fact in facts)
    if any(row is not None and row.qbo_id not in listed_ids for row in mapped):
        # A customer the push created since the shared list was cached is not in it yet: one
        # read settles whether the mapping points at a real customer.
        customers = await refs.reload(Customer)
    index = CustomerIndex(customers, taken=mappings.taken)
    # Fuzzy matching of a long list is CPU work: keep the event loop free for other requests.
    matches = await asyncio.to_thread(
        index.match_all, facts, {pid: row.qbo_id for pid, row in mappings.clients.items()}
    )
    creating = any(
        action_for(match, settings.customer_sync_mode) == "create" for match in matches.values()
    )
    # A customer's DisplayName is unique across customers, vendors and employees.
    names_in_use = await _names_in_use(refs, customers) if creating else {}
    needs_items = bool(body.services or body.invoices)
    items = await refs.items() if needs_items else []
    needs_codes = not company.tax_by_flag and bool(body.tax_rates or body.invoices)
    codes = await refs.tax_codes() if needs_codes else []
    rates = await refs.tax_rates() if needs_codes else []
    income_ref, income_problem = await _income_account(refs, settings, needs_items)
    listed = {client.id for client in body.clients}
    clients = [
        _client(fact, matches[fact.platform_id], settings, fact.platform_id in listed, names_in_use)
        for fact in facts
    ]
    _same_new_names(clients)
    plans = item_plans(body.services, mappings.services, items)
    services = [
        service_preview(
            service,
            mappings.services.get(service.id),
            plans.get(service.id),
            items,
            income_ref,
            income_problem,
        )
        for service in body.services
    ]
    tax_rates = [
        tax_rate_preview(r.id, r.name, r.rate, company, mappings.tax_rates.get(r.id), codes, rates)
        for r in body.tax_rates
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
        lines=LinePlanner(
            company=company,
            service_items={pid: by_id(items, row.qbo_id) for pid, row in mappings.services.items()},
            item_plans=plans,
            income_account=income_ref,
            income_problem=income_problem,
            tax_rate_codes={pid: row.qbo_id for pid, row in mappings.tax_rates.items()},
            # The rate a mapping was checked against stands in for a rate not listed.
            platform_rates={
                **{
                    pid: Decimal(row.details["rate"])
                    for pid, row in mappings.tax_rates.items()
                    if row.details.get("rate")
                },
                **{rate.id: rate.rate for rate in body.tax_rates},
            },
            codes=codes,
            rates=rates,
        ),
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
            services=_count((s.status for s in services), ("mapped", "missing")),
            tax_rates=_count((t.status for t in tax_rates), ("mapped", "missing", "not_needed")),
            invoices=_count((i.status for i in invoices), ("ready", "blocked", "skipped")),
        ),
    )


async def _names_in_use(refs: References, customers: Sequence[Customer]) -> dict[str, str]:
    """Display name (any case) → what already holds it in QuickBooks."""
    held = {
        name_key(row.display_name): "an employee"
        for row in await refs.employees()
        if row.display_name
    }
    held |= {
        name_key(row.display_name): "a vendor" for row in await refs.vendors() if row.display_name
    }
    for row in customers:
        if row.display_name:
            held[name_key(row.display_name)] = (
                "a customer" if is_active(row) else "an inactive customer"
            )
    return held


async def _numbers_taken(
    db: Database, refs: References, company: Company, body: PreviewBody
) -> NumbersTaken:
    """The numbers QuickBooks invoices already hold, and which QuickBooks invoice each platform
    invoice was pushed as (its own number is no clash). One query per 30 numbers, only when the
    company takes the platform's numbers."""
    if not company.custom_txn_numbers:
        return NumbersTaken({}, {})
    # QuickBooks trims a number before it compares it; so does the query.
    numbers = sorted(
        {
            invoice.number.strip()
            for invoice in body.invoices
            if invoice.number and len(invoice.number) <= MAX_DOC_NUMBER
        }
    )
    if not numbers:
        return NumbersTaken({}, {})
    pushed = await service.pushed_invoices(db, company, [invoice.id for invoice in body.invoices])
    held: dict[str, set[str]] = {}
    for invoice in await refs.invoices_numbered(numbers):
        if invoice.doc_number and invoice.id:
            held.setdefault(name_key(invoice.doc_number), set()).add(invoice.id)
    return NumbersTaken(held, pushed)


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
    kinds = (MappingKind.CLIENT, MappingKind.SERVICE, MappingKind.TAX_RATE)
    found = await service.active_mappings(db, company, kinds)
    clients = found[MappingKind.CLIENT]
    return Mappings(
        clients=clients,
        services=found[MappingKind.SERVICE],
        tax_rates=found[MappingKind.TAX_RATE],
        taken={row.qbo_id: pid for pid, row in clients.items()},
    )


async def _income_account(
    refs: References, settings: SyncSettingsView, needed: bool
) -> tuple[QboRefView | None, str]:
    """The account items created for unmapped services would post to, if it can take them."""
    account_id = settings.default_income_account_id
    if account_id is None:
        return None, "no default income account is set"
    if not needed:
        return None, ""
    account = by_id(await refs.accounts(), account_id)
    if account is None or not is_active(account) or account.account_type not in INCOME_TYPES:
        what = account_kind(account) if account is not None else "gone from QuickBooks"
        return None, f"the default income account ({account_id}) is {what}"
    return QboRefView(qbo_id=account_id, name=account.name), ""


def _same_new_names(clients: list[ClientPreview]) -> None:
    """Two clients of one preview that would be created under one name: the second is told."""
    first: dict[str, str] = {}
    for client in clients:
        if client.action != "create":
            continue
        key = name_key(quickbooks_name(client.name, DISPLAY_NAME_LENGTH))
        if key in first:
            said = (
                f"Client {first[key]!r} of this preview would be created under the same name: "
                "this one gets a distinguishing suffix."
            )
            client.note = f"{client.note} {said}" if client.note else said
        else:
            first[key] = client.platform_id


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
    created = quickbooks_name(fact.name, DISPLAY_NAME_LENGTH)
    holder = names_in_use.get(name_key(created))
    said = []
    if action == "create" and created != fact.name:
        said.append(
            "QuickBooks names can't hold a colon, a tab or a line break, or pass 500 "
            f'characters: the customer is created as "{created}".'
        )
    if action == "create" and holder is not None:
        said.append(
            f'QuickBooks already has {holder} named "{created}", and a customer\'s name must '
            "differ from every customer's, vendor's and employee's: the new customer gets a "
            "distinguishing suffix."
        )
    note = " ".join([note, *said] if note else said) or None
    candidates = [
        CandidateView(**customer_view(c).model_dump(), reason=c.reason, score=c.score)
        for c in match.candidates
    ]
    linked = match.customer if action == "link" else None
    if match.customer is not None and linked is None:
        # auto_create: the match is shown, but the push creates a customer instead.
        candidates.insert(
            0,
            CandidateView(
                **customer_view(match.customer).model_dump(),
                reason=f"matches by {match.rule}, but the sync mode creates a customer",
                score=match.confidence,
            ),
        )
    return ClientPreview(
        platform_id=fact.platform_id,
        name=fact.name,
        listed=listed,
        action=action,
        rule=match.rule,
        confidence=match.confidence,
        customer=customer_view(linked) if linked else None,
        candidates=candidates,
        note=note,
    )


def _count(values: Iterable[str], keys: tuple[str, ...]) -> dict[str, int]:
    counted = Counter(values)
    return {key: counted.get(key, 0) for key in keys}
