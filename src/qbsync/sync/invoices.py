"""An invoice as QuickBooks takes it, planned with the preview's own line rules, so a push does
what the preview showed: each line's item (mapped, or created for an unmapped service under the
default income account), its tax code, and the document's number, currency and tax.

Tax follows the company. A US company gets TAX/NON lines and the platform's tax total as
`TxnTaxDetail.TotalTax`, so the books match the invoice the client received; elsewhere each line
carries its mapped tax code and `GlobalTaxCalculation` says how the amounts are given.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from qbsync.mappings.matching import ClientFacts
from qbsync.mappings.names import ITEM_NAME_LENGTH, name_key, quickbooks_name
from qbsync.mappings.preview_invoices import MAX_DOC_NUMBER, MODES
from qbsync.mappings.preview_lines import LinePlanner
from qbsync.mappings.preview_references import ItemPlan
from qbsync.mappings.preview_schemas import Blocker, QboRefView
from qbsync.mappings.references import INCOME_TYPES, account_kind, by_id, is_active
from qbsync.mappings.snapshots import ClientSnapshot, InvoiceSnapshot
from qbsync.models import MappingKind, MappingSource, RecordKind, SyncRecord
from qbsync.qbo import (
    Invoice,
    Item,
    Line,
    QboDuplicateNameError,
    QboEntity,
    QboError,
    Ref,
    TxnTaxDetail,
    quote,
)
from qbsync.qbo.entities import EmailAddress, SalesItemLineDetail
from qbsync.sync.context import PushContext
from qbsync.sync.customers import customer_for, request_id
from qbsync.sync.failures import NotPushedError, PushFailedError, failure_for
from qbsync.sync.plans import Done, Plan, Warning, Write, in_quickbooks, removal

# Blockers of the preview under the names the push fails with.
FAILURE_CODES = {"no_income_account": "unmapped_service"}


def document_marker(record: SyncRecord) -> str:
    """Written on every document qbsync creates: the record it came from, so a create whose
    answer was lost is found again (`PrivateNote` can't be queried, but it is returned)."""
    return f"Sent by qbsync (record {record.id})."


async def plan_invoice(ctx: PushContext, record: SyncRecord) -> Plan:
    if record.removed_in_quickbooks is not None:
        return _removed_in_quickbooks(record)
    if record.operation == "delete":
        what = f"Deleting invoice {record.qbo_doc_number or record.qbo_id}"
        return removal(ctx, record, Invoice, "delete", what)
    invoice = InvoiceSnapshot.model_validate(record.snapshot)
    label = f"Invoice {invoice.number or invoice.id!r}"
    if record.operation == "void" or invoice.status == "void":
        return removal(ctx, record, Invoice, "void", f"Voiding {label}")
    in_qbo = in_quickbooks(ctx, record)
    if not in_qbo:
        _check_pushable(ctx, record, invoice)
    check_currency(ctx, invoice.currency, "invoice")
    facts, client = await _client_of(ctx, record, invoice)
    customer_id = await customer_for(ctx, facts, client)
    lines = await _lines(ctx, invoice)
    body = Invoice(
        customer_ref=Ref(value=customer_id),
        txn_date=invoice.issue_date,
        line=lines,
        private_note=document_marker(record),
    )
    if invoice.due_date is not None:
        body.due_date = invoice.due_date
    number = _doc_number(ctx, invoice)
    if number is not None:
        body.doc_number = number
    if invoice.client.email:
        body.bill_email = EmailAddress(address=invoice.client.email)
    if ctx.company.multi_currency:
        body.currency_ref = Ref(value=invoice.currency)
    if ctx.company.tax_by_flag:
        if invoice.amounts_are == "tax_exclusive" and invoice.tax_total:
            body.txn_tax_detail = TxnTaxDetail(total_tax=invoice.tax_total)
    else:
        body.global_tax_calculation = MODES[invoice.amounts_are]

    def check(written: QboEntity) -> list[Warning]:
        return _total_differs(invoice, written)

    if in_qbo:
        assert record.qbo_id is not None
        body.id = record.qbo_id
        body.sync_token = record.qbo_sync_token or "0"
        return Write(
            "update",
            body,
            f"Updating {label}",
            check=check,
            reread=lambda: ctx.client.get(Invoice, record.qbo_id or ""),
        )
    return Write(
        "create",
        body,
        f"Creating {label}",
        check=check,
        duplicate=lambda error: _number_taken(ctx, body, error),
    )


def _removed_in_quickbooks(record: SyncRecord) -> Plan:
    """QuickBooks voided or deleted it on its own: a platform void or delete has nothing left
    to do, and a platform change must not silently create the invoice again."""
    if record.operation in ("void", "delete"):
        return Done(record.qbo_id, record.qbo_doc_number, record.qbo_sync_token)
    how = "voided" if record.removed_in_quickbooks == "voided" else "deleted"
    when = record.removed_in_quickbooks_at
    on = f" on {when.date().isoformat()}" if when is not None else ""
    raise PushFailedError(
        "deleted_in_quickbooks",
        f"This invoice was {how} in QuickBooks{on}, so its changes are not sent and it is not "
        "created again by itself. Retry it to create it in QuickBooks anew, or ignore it.",
    )


def _check_pushable(ctx: PushContext, record: SyncRecord, invoice: InvoiceSnapshot) -> None:
    """Not in QuickBooks yet: the settings decide whether it goes. Once there, every later
    change flows whatever they say."""
    if invoice.status == "draft":
        raise NotPushedError(
            "draft",
            f"Invoice {invoice.number or invoice.id!r} is a draft: it goes to QuickBooks once "
            "it is issued.",
        )
    if record.force_push:
        return
    if not ctx.settings.invoice_auto_push:
        raise NotPushedError(
            "auto_push_off",
            "Invoices are not pushed automatically (invoice_auto_push is off): turn it on in "
            "the settings, or retry this invoice to push it now.",
        )
    start = ctx.settings.sync_start_date
    if start is not None and invoice.issue_date < start:
        raise NotPushedError(
            "before_sync_start",
            f"Issued on {invoice.issue_date}, before the sync start date {start}: retry it to "
            "push it anyway.",
        )


def check_currency(ctx: PushContext, currency: str, what: str) -> None:
    home = ctx.company.home_currency
    if home is not None and currency != home and not ctx.company.multi_currency:
        raise PushFailedError(
            "currency_mismatch",
            f"The {what} is in {currency}, but the QuickBooks company works in {home} only "
            f"(multicurrency is off): turn on multicurrency in QuickBooks, or record the {what} "
            f"in {home}.",
        )


async def _client_of(
    ctx: PushContext, record: SyncRecord, invoice: InvoiceSnapshot
) -> tuple[ClientFacts, ClientSnapshot | None]:
    """The client as its own latest event describes it, else as the invoice names it."""
    async with ctx.db.sessions() as session:
        stored = await session.scalar(
            select(SyncRecord.snapshot).where(
                SyncRecord.org_id == record.org_id,
                SyncRecord.kind == RecordKind.CLIENT,
                SyncRecord.platform_id == invoice.client.id,
                SyncRecord.operation == "upsert",
            )
        )
    client = ClientSnapshot.model_validate(stored) if stored else None
    if client is not None:
        return (
            ClientFacts(client.id, client.name, client.email, client.company_name),
            client,
        )
    named = invoice.client
    return ClientFacts(named.id, named.name, named.email), None


def _doc_number(ctx: PushContext, invoice: InvoiceSnapshot) -> str | None:
    if not ctx.company.custom_txn_numbers or not invoice.number:
        return None
    number = invoice.number.strip()
    if len(number) > MAX_DOC_NUMBER:
        raise PushFailedError(
            "doc_number_too_long",
            f"Invoice number {number!r} has {len(number)} characters; QuickBooks holds at most "
            f"{MAX_DOC_NUMBER}: shorten it on the platform.",
        )
    return number


async def _lines(ctx: PushContext, invoice: InvoiceSnapshot) -> list[Line]:
    codes = [] if ctx.company.tax_by_flag else await ctx.refs.tax_codes()
    rates = [] if ctx.company.tax_by_flag else await ctx.refs.tax_rates()
    items = await ctx.refs.items()
    service_ids = {line.service_id for line in invoice.lines if line.service_id}
    mapped = {
        sid: by_id(items, ctx.mapped(MappingKind.SERVICE, sid) or "")
        for sid in service_ids
        if ctx.mapped(MappingKind.SERVICE, sid) is not None
    }
    income, income_problem = await _income_account(ctx)
    names = {sid: _service_name(ctx, invoice, sid) for sid in service_ids - set(mapped)}
    held = {name_key(item.name): item.name for item in items if item.name}
    plans = {
        sid: ItemPlan(
            name,
            f'QuickBooks already has an item named "{held[name_key(name)]}"'
            if name_key(name) in held
            else None,
        )
        for sid, name in names.items()
    }
    planner = LinePlanner(
        company=ctx.company,
        service_items=mapped,
        item_plans=plans,
        income_account=income,
        income_problem=income_problem,
        tax_rate_codes={pid: row.qbo_id for pid, row in ctx.mappings[MappingKind.TAX_RATE].items()},
        platform_rates=ctx.tax_rates,
        codes=codes,
        rates=rates,
    )
    mode = None if ctx.company.is_us else MODES[invoice.amounts_are]
    blockers: list[Blocker] = []
    planned = []
    for index, line in enumerate(invoice.lines):
        preview, _ = planner.plan(index, line, mode, invoice, blockers, [])
        planned.append(preview)
    if blockers:
        first = blockers[0]
        raise PushFailedError(FAILURE_CODES.get(first.code, first.code), _blocked(blockers))
    lines: list[Line] = []
    for line, preview in zip(invoice.lines, planned, strict=True):
        item_ref = preview.item
        if item_ref is None:
            assert line.service_id is not None
            assert income is not None
            item_ref = await _create_item(ctx, line.service_id, plans[line.service_id], income)
        detail = SalesItemLineDetail(
            item_ref=Ref(value=item_ref.qbo_id), qty=line.quantity, unit_price=line.unit_price
        )
        if preview.tax_code is not None:
            detail.tax_code_ref = Ref(value=preview.tax_code.qbo_id)
        built = Line(
            detail_type="SalesItemLineDetail",
            amount=preview.amount,
            sales_item_line_detail=detail,
        )
        if line.description:
            built.description = line.description
        lines.append(built)
    return lines


def _blocked(blockers: list[Blocker]) -> str:
    shown = [f"{b.field}: {b.message}" for b in blockers[:3]]
    more = f" (and {len(blockers) - 3} more)" if len(blockers) > 3 else ""
    return " ".join(shown) + more


async def _income_account(ctx: PushContext) -> tuple[QboRefView | None, str]:
    account_id = ctx.settings.default_income_account_id
    if account_id is None:
        return None, "no default income account is set"
    account = by_id(await ctx.refs.accounts(), account_id)
    if account is None or not is_active(account) or account.account_type not in INCOME_TYPES:
        what = account_kind(account) if account is not None else "gone from QuickBooks"
        return None, f"the default income account ({account_id}) is {what}"
    return QboRefView(qbo_id=account_id, name=account.name), ""


def _service_name(ctx: PushContext, invoice: InvoiceSnapshot, service_id: str) -> str:
    """The platform's name for the service, from its own event, else the line's description."""
    listed = ctx.services.get(service_id)
    if listed and isinstance(listed.get("name"), str):
        return quickbooks_name(listed["name"], ITEM_NAME_LENGTH)
    for line in invoice.lines:
        if line.service_id == service_id and line.description:
            return quickbooks_name(line.description, ITEM_NAME_LENGTH)
    return quickbooks_name(service_id, ITEM_NAME_LENGTH)


async def _create_item(
    ctx: PushContext, service_id: str, plan: ItemPlan, income: QboRefView
) -> QboRefView:
    listed: dict[str, Any] = ctx.services.get(service_id) or {}
    item = Item(name=plan.name, type="Service", income_account_ref=Ref(value=income.qbo_id))
    if isinstance(listed.get("description"), str):
        item.description = listed["description"][:4000]
    if listed.get("unit_price") is not None:
        item.unit_price = Decimal(str(listed["unit_price"]))
    what = f"Creating item {plan.name!r} for service {service_id!r}"
    try:
        created = await ctx.client.create(
            item, requestid=request_id(ctx.company.realm_id, "item", service_id, plan.name)
        )
    except QboDuplicateNameError as clash:
        raise PushFailedError(
            "item_name_taken",
            f"QuickBooks already has an item named {plan.name!r}: map service {service_id!r} "
            "to an item, then retry.",
            fault=clash,
        ) from clash
    except QboError as error:
        if error.retryable:
            raise
        raise failure_for(error, what) from error
    assert created.id is not None
    ctx.changed_lists.add("Item")
    ctx.refs.created(created)
    await ctx.remember(
        MappingKind.SERVICE, service_id, created.id, created.name, MappingSource.CREATED
    )
    return QboRefView(qbo_id=created.id, name=created.name)


def _total_differs(invoice: InvoiceSnapshot, written: QboEntity) -> list[Warning]:
    total = getattr(written, "total_amt", None)
    if total is None or Decimal(total) == invoice.total:
        return []
    return [
        {
            "code": "total_differs",
            "message": f"QuickBooks computed a total of {total} where the platform's invoice "
            f"says {invoice.total} (a difference of {Decimal(total) - invoice.total}): check "
            "the tax codes and rounding.",
            "platform_total": str(invoice.total),
            "quickbooks_total": str(total),
        }
    ]


async def _number_taken(ctx: PushContext, sent: Invoice, error: QboError) -> PushFailedError:
    """6140 on a create, the invoice not qbsync's own: name the invoice holding the number."""
    number = sent.doc_number or ""
    holders = await ctx.client.query_all(Invoice, f"DocNumber = {quote(number)}")
    if not holders:
        return failure_for(error, f"Creating invoice {number!r}")
    holder = holders[0]
    customer = holder.customer_ref.name if holder.customer_ref else None
    whose = f" for {customer}" if customer else ""
    return PushFailedError(
        "duplicate_doc_number",
        f"QuickBooks already has invoice {number!r} (QuickBooks id {holder.id}{whose}, dated "
        f"{holder.txn_date}): give this invoice another number on the platform, or remove the "
        "other one in QuickBooks, then retry.",
        fault=error,
    )
