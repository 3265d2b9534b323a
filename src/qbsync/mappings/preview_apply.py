"""Confirming a preview's links: each client the user ticks is stored as a `matched` mapping.

Only links the preview proposed are accepted, each customer is checked again (it may have been
made inactive or linked to another client since), and the writes share one transaction on the
connection's share lock, as any mapping does. A link that can no longer be made is reported with
its reason; the others are stored.
"""

from __future__ import annotations

from qbsync.db import Database
from qbsync.errors import AppError, ConflictError
from qbsync.mappings import service
from qbsync.mappings.company import Company
from qbsync.mappings.preview_schemas import ApplyBody, ApplyResult, SkippedLink
from qbsync.mappings.preview_store import PreviewStore
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
    preview = await store.load(company.org_id, body.preview_id)
    if preview is None or preview.realm_id != company.realm_id:
        raise PreviewExpiredError(
            "This preview is unknown, older than an hour, or for another QuickBooks company: "
            "run the preview again.",
            field="preview_id",
        )
    errors = [
        {
            "field": f"client_ids[{position}]",
            "code": NotProposedError.code,
            "message": f"The preview did not propose a link for {platform_id!r}.",
        }
        for position, platform_id in enumerate(body.client_ids)
        if platform_id not in preview.links
    ]
    if len(set(body.client_ids)) != len(body.client_ids):
        raise AppError(
            "client_ids lists a client twice.", status=422, code="duplicate_id", field="client_ids"
        )
    if errors:
        raise NotProposedError(
            f"{len(errors)} of the client ids were not proposed as links by this preview.",
            extra={"errors": errors},
        )
    skipped: list[SkippedLink] = []
    usable: list[tuple[str, service.Resolved]] = []
    for platform_id in body.client_ids:
        link = preview.links[platform_id]
        customer = await refs.lookup(Customer, link.qbo_id)
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
            (platform_id, service.Resolved(qbo_id=link.qbo_id, qbo_name=customer.display_name))
        )
    applied = []
    async with db.sessions() as session, session.begin():
        await service.same_company(session, company)
        current = await service.client_mappings(session, company, [pid for pid, _ in usable])
        for platform_id, resolved in usable:
            existing = current.get(platform_id)
            if existing is not None:
                same = existing == resolved.qbo_id
                skipped.append(
                    SkippedLink(
                        platform_id=platform_id,
                        code="already_linked" if same else "already_mapped",
                        reason="Already linked to this customer."
                        if same
                        else f"Mapped meanwhile to QuickBooks customer {existing}; kept.",
                    )
                )
                continue
            try:
                row = await service.upsert(
                    session,
                    company,
                    MappingKind.CLIENT,
                    platform_id,
                    resolved,
                    MappingSource.MATCHED,
                )
            except service.ReferenceTakenError as taken:
                skipped.append(
                    SkippedLink(platform_id=platform_id, code=taken.code, reason=taken.detail)
                )
                continue
            applied.append(service.view(row))
    return ApplyResult(applied=applied, skipped=skipped)
