"""Confirming a preview's links: each client the user ticks is stored as a `matched` mapping.

Only links the preview proposed are accepted, and each customer is checked again in a customer
read afresh (it may have been made inactive since). A link never overwrites a mapping the
client got meanwhile: the insert keeps a current mapping atomically, so a manual mapping made in
the same instant wins. A link that can no longer be made is reported with its reason; the others
are stored, in one transaction on the connection's share lock, as any mapping is.
"""

from __future__ import annotations

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.db import Database
from qbsync.errors import AppError, ConflictError, ServiceUnavailableError
from qbsync.mappings import mapping_checks, service
from qbsync.mappings.company import Company, same_company
from qbsync.mappings.preview_schemas import ApplyBody, ApplyResult, SkippedLink
from qbsync.mappings.preview_store import LoadedPreview, PreviewStore
from qbsync.mappings.references import References, is_active
from qbsync.models import MappingKind, MappingSource
from qbsync.qbo import Customer


class PreviewExpiredError(ConflictError):
    code = "preview_expired"


class NotProposedError(AppError):
    status = 422
    code = "not_a_proposed_link"


async def apply_links(
    db: Database, refs: References, store: PreviewStore, company: Company, body: ApplyBody
) -> ApplyResult:
    if len(set(body.client_ids)) != len(body.client_ids):
        raise AppError(
            "client_ids lists a client twice.", status=422, code="duplicate_id", field="client_ids"
        )
    preview = await _load(store, company, body.preview_id)
    errors = [
        {
            "field": f"client_ids.{position}",
            "code": NotProposedError.code,
            "message": f"The preview did not propose a link for {platform_id!r}.",
        }
        for position, platform_id in enumerate(body.client_ids)
        if platform_id not in preview.links
    ]
    if errors:
        raise NotProposedError(
            f"{len(errors)} of the client ids were not proposed as links by this preview.",
            extra={"errors": errors},
        )
    customers = await refs.current(Customer, [preview.links[pid].qbo_id for pid in body.client_ids])
    skipped: list[SkippedLink] = []
    usable: list[tuple[str, mapping_checks.Resolved]] = []
    for platform_id in body.client_ids:
        link = preview.links[platform_id]
        customer = customers.get(link.qbo_id)
        if customer is None or not is_active(customer):
            skipped.append(
                SkippedLink(
                    platform_id=platform_id,
                    code="qbo_reference_wrong_type" if customer else "qbo_reference_not_found",
                    reason=f'QuickBooks customer "{link.display_name}" is no longer active.',
                )
            )
            continue
        usable.append(
            (
                platform_id,
                mapping_checks.Resolved(qbo_id=link.qbo_id, qbo_name=customer.display_name),
            )
        )
    applied = []
    async with db.sessions() as session, session.begin():
        await same_company(session, company)
        # One order for every apply, so that two applies of overlapping links can't deadlock.
        for platform_id, resolved in sorted(usable, key=lambda pair: pair[0]):
            try:
                row = await service.upsert(
                    session,
                    company,
                    MappingKind.CLIENT,
                    platform_id,
                    resolved,
                    MappingSource.MATCHED,
                    replace=False,
                )
            except service.ReferenceTakenError as taken:
                skipped.append(
                    SkippedLink(platform_id=platform_id, code=taken.code, reason=taken.detail)
                )
                continue
            if row is None:
                skipped.append(await _kept(session, company, platform_id, resolved.qbo_id))
                continue
            applied.append(service.view(row))
    return ApplyResult(applied=applied, skipped=skipped)


async def _load(store: PreviewStore, company: Company, preview_id: str) -> LoadedPreview:
    try:
        preview = await store.load(company.org_id, preview_id)
    except RedisError as error:
        raise ServiceUnavailableError(
            "qbsync's queue service (Redis), which keeps previews, is unavailable. Try again "
            "in a minute.",
            code="service_unavailable",
            headers={"Retry-After": "5"},
        ) from error
    if preview is None or preview.realm_id != company.realm_id:
        raise PreviewExpiredError(
            "This preview is unknown, older than an hour, or for another QuickBooks company: "
            "run the preview again.",
            field="preview_id",
        )
    return preview


async def _kept(
    session: AsyncSession, company: Company, platform_id: str, qbo_id: str
) -> SkippedLink:
    current = (await service.client_mappings(session, company, [platform_id])).get(platform_id)
    if current == qbo_id:
        return SkippedLink(
            platform_id=platform_id,
            code="already_linked",
            reason="Already linked to this customer.",
        )
    return SkippedLink(
        platform_id=platform_id,
        code="already_mapped",
        reason=f"Mapped meanwhile to QuickBooks customer {current}; that mapping is kept.",
    )
