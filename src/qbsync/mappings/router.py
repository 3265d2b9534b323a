"""Routes of the "Configure what syncs" page: settings, mappings, reference lists, preview."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from qbsync.deps import DatabaseDep, IntuitDep, QueueDep, ReferenceCacheDep, SettingsDep
from qbsync.errors import problem_responses
from qbsync.mappings import mapping_checks, reference_lists, service, settings_service
from qbsync.mappings.company import Company, connected_company, reader
from qbsync.mappings.preview import run_preview
from qbsync.mappings.preview_apply import apply_links
from qbsync.mappings.preview_schemas import ApplyBody, ApplyResult, PreviewBody, PreviewResult
from qbsync.mappings.preview_store import PreviewStore
from qbsync.mappings.qbo_problems import quickbooks_errors
from qbsync.mappings.references import ACCOUNT_TYPES, References, decode_cursor
from qbsync.mappings.schemas import (
    AccountView,
    ItemView,
    MappingBody,
    MappingKindPath,
    MappingView,
    Page,
    PartyView,
    SyncSettingsBody,
    SyncSettingsView,
    TaxCodeView,
)
from qbsync.mappings.snapshots import PLATFORM_ID_PATTERN
from qbsync.security import OrgDep

router = APIRouter(
    prefix="/v1/quickbooks",
    tags=["configuration"],
    responses=problem_responses(401, 403, 413, 422, 500, 503),
)
QBO_ERRORS = problem_responses(409, 502)
Limit = Annotated[int, Query(ge=1, le=200, description="At most this many items (default 50).")]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="The `next_cursor` of the previous page."),
]
Search = Annotated[str | None, Query(max_length=100, description="Part of a name (any case).")]
Inactive = Annotated[
    bool, Query(description="Also list records made inactive in QuickBooks (default false).")
]
PlatformIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=PLATFORM_ID_PATTERN,
        description="The platform id.",
    ),
]


def _references(
    db: DatabaseDep, queue: QueueDep, intuit: IntuitDep, cache: ReferenceCacheDep, company: Company
) -> References:
    return References(cache, company.realm_id, reader(db, queue, intuit, company))


@router.get(
    "/settings",
    response_model=SyncSettingsView,
    summary="What syncs and where it goes (defaults until saved)",
)
async def get_settings(org: OrgDep, db: DatabaseDep) -> SyncSettingsView:
    return await settings_service.read_settings(db, org.org_id)


@router.put(
    "/settings",
    response_model=SyncSettingsView,
    summary="Replace the sync settings",
    description="A full replace: a field left out takes its default. Each account id is checked "
    "in the connected company (it must exist, be active and be of the right type); account ids "
    "need a connection (409 `not_connected`).",
    responses=QBO_ERRORS,
)
async def put_settings(
    org: OrgDep,
    body: SyncSettingsBody,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    cache: ReferenceCacheDep,
) -> SyncSettingsView:
    company = None
    if settings_service.account_ids_given(body):
        company = await settings_service.company_for_accounts(db, org.org_id)
        refs = _references(db, queue, intuit, cache, company)
        async with quickbooks_errors():
            await settings_service.check_accounts(body, refs)
    return await settings_service.save_settings(db, org.org_id, body, company)


@router.get(
    "/mappings/{kind}",
    response_model=Page[MappingView],
    summary="The mappings of one kind in the current company",
)
async def list_mappings(
    org: OrgDep,
    kind: MappingKindPath,
    db: DatabaseDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MappingView]:
    return await service.list_mappings(db, org.org_id, kind, limit=limit, cursor=cursor)


@router.put(
    "/mappings/{kind}/{platform_id}",
    response_model=MappingView,
    summary="Map a platform id to a QuickBooks id",
    description="clients → Customer, services → Service or Non-inventory Item, tax-rates → "
    "TaxCode (`TAX`/`NON` on a US company with automated sales tax; elsewhere `rate` must equal "
    "the code's sales rate), expense-categories → Expense, Other Expense or Cost of Goods Sold "
    "account by `qbo_id` or `account_number`.",
    responses=QBO_ERRORS,
)
async def put_mapping(
    org: OrgDep,
    kind: MappingKindPath,
    platform_id: PlatformIdPath,
    body: MappingBody,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    cache: ReferenceCacheDep,
) -> MappingView:
    company = await connected_company(db, org.org_id, purpose="map to it")
    refs = _references(db, queue, intuit, cache, company)
    async with quickbooks_errors():
        resolved = await mapping_checks.resolve(refs, company, kind, body)
    return await service.store(db, company, kind, platform_id, resolved)


@router.delete(
    "/mappings/{kind}/{platform_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a mapping",
    responses=problem_responses(404),
)
async def delete_mapping(
    org: OrgDep, kind: MappingKindPath, platform_id: PlatformIdPath, db: DatabaseDep
) -> Response:
    await service.delete_mapping(db, org.org_id, kind, platform_id)
    return Response(status_code=204)


@router.post(
    "/preview",
    response_model=PreviewResult,
    summary="Dry run: what a sync would do, QuickBooks' own totals included",
    description="Give platform clients, services, tax rates and invoices in the shapes of the "
    "platform's events. Nothing is written to QuickBooks or to the mappings. The links proposed "
    "can be confirmed within an hour with `POST /v1/quickbooks/preview/apply`.",
    responses=QBO_ERRORS,
)
async def preview(
    org: OrgDep,
    body: PreviewBody,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    cache: ReferenceCacheDep,
    settings: SettingsDep,
) -> PreviewResult:
    company = await connected_company(db, org.org_id, purpose="preview a sync")
    refs = _references(db, queue, intuit, cache, company)
    async with quickbooks_errors():
        return await run_preview(db, refs, _previews(queue, settings), company, body)


@router.post(
    "/preview/apply",
    response_model=ApplyResult,
    summary="Store the links of a preview the user confirms",
    description="Each client id must be one the preview proposed to link; it is stored as a "
    "`matched` mapping. A link that can no longer be made is listed in `skipped` with why.",
    responses=QBO_ERRORS,
)
async def apply_preview(
    org: OrgDep,
    body: ApplyBody,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    cache: ReferenceCacheDep,
    settings: SettingsDep,
) -> ApplyResult:
    company = await connected_company(db, org.org_id, purpose="link its customers")
    refs = _references(db, queue, intuit, cache, company)
    async with quickbooks_errors():
        return await apply_links(db, refs, _previews(queue, settings), company, body)


def _previews(queue: QueueDep, settings: SettingsDep) -> PreviewStore:
    return PreviewStore(queue.redis, key_prefix=settings.redis.key_prefix)


@dataclass(frozen=True)
class ListRequest:
    """One page of a reference list: the company's lists, and the page asked for."""

    refs: References
    page: reference_lists.PageArgs


async def list_request(
    org: OrgDep,
    db: DatabaseDep,
    queue: QueueDep,
    intuit: IntuitDep,
    cache: ReferenceCacheDep,
    q: Search = None,
    include_inactive: Inactive = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListRequest:
    if cursor is not None:
        decode_cursor(cursor)  # a bad cursor is refused before anything is read
    company = await connected_company(db, org.org_id, purpose="list what it holds")
    return ListRequest(
        refs=_references(db, queue, intuit, cache, company),
        page=reference_lists.PageArgs(
            query=q, include_inactive=include_inactive, limit=limit, cursor=cursor
        ),
    )


ListDep = Annotated[ListRequest, Depends(list_request)]


def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


# The names reference_lists.account_types() accepts (any case, spaces around each), so that the
# contract refuses what the route refuses.
_ACCOUNT_TYPE = "(" + "|".join(_any_case(name) for name in sorted(ACCOUNT_TYPES)) + ")"
ACCOUNT_TYPES_PATTERN = rf"^(\s*{_ACCOUNT_TYPE}\s*(,\s*{_ACCOUNT_TYPE}\s*)*)?$"
AccountTypes = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=ACCOUNT_TYPES_PATTERN,
        description="QuickBooks account types, comma-separated (`Expense,Other Expense`).",
    ),
]


@router.get(
    "/accounts",
    response_model=Page[AccountView],
    summary="The company's chart of accounts",
    responses=QBO_ERRORS,
)
async def accounts(asked: ListDep, type: AccountTypes = None) -> Page[AccountView]:
    types = reference_lists.account_types(type)
    async with quickbooks_errors():
        return await reference_lists.accounts(asked.refs, asked.page, types=types)


@router.get(
    "/items",
    response_model=Page[ItemView],
    summary="The company's products and services",
    responses=QBO_ERRORS,
)
async def items(asked: ListDep) -> Page[ItemView]:
    async with quickbooks_errors():
        return await reference_lists.items(asked.refs, asked.page)


@router.get(
    "/tax-codes",
    response_model=Page[TaxCodeView],
    summary="The company's tax codes, with their sales and purchase rates",
    responses=QBO_ERRORS,
)
async def tax_codes(asked: ListDep) -> Page[TaxCodeView]:
    async with quickbooks_errors():
        return await reference_lists.tax_codes(asked.refs, asked.page)


@router.get(
    "/customers",
    response_model=Page[PartyView],
    summary="The company's customers (search by name or email)",
    responses=QBO_ERRORS,
)
async def customers(asked: ListDep) -> Page[PartyView]:
    async with quickbooks_errors():
        return await reference_lists.customers(asked.refs, asked.page)


@router.get(
    "/vendors",
    response_model=Page[PartyView],
    summary="The company's vendors (search by name or email)",
    responses=QBO_ERRORS,
)
async def vendors(asked: ListDep) -> Page[PartyView]:
    async with quickbooks_errors():
        return await reference_lists.vendors(asked.refs, asked.page)
