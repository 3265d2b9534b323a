"""A payment recorded on the platform as a QuickBooks Payment from the invoice's customer, linked
to the invoice; it waits until the invoice is in QuickBooks."""

from __future__ import annotations

from sqlalchemy import select

from qbsync.mappings.snapshots import PaymentSnapshot
from qbsync.models import MappingKind, RecordKind, RecordStatus, SyncRecord
from qbsync.qbo import Line, LinkedTxn, Payment, Ref
from qbsync.sync.context import PushContext
from qbsync.sync.failures import PushDeferredError, PushFailedError
from qbsync.sync.invoices import check_currency, document_marker
from qbsync.sync.plans import Plan, Write, in_quickbooks, removal

# A payment whose invoice is on its way to QuickBooks looks again after this long (and at once
# when the invoice is synced).
INVOICE_WAIT_SECONDS = 300.0
ON_ITS_WAY = frozenset({RecordStatus.PENDING, RecordStatus.IN_PROGRESS, RecordStatus.HELD})
MAX_REFERENCE = 21


async def plan_payment(ctx: PushContext, record: SyncRecord) -> Plan:
    if record.operation == "delete":
        return removal(ctx, record, Payment, "delete", f"Deleting payment {record.platform_id!r}")
    payment = PaymentSnapshot.model_validate(record.snapshot)
    check_currency(ctx, payment.currency, "payment")
    invoice = await _invoice(ctx, record, payment)
    assert invoice.qbo_id is not None
    customer_id = (invoice.snapshot.get("client") or {}).get("id")
    customer = ctx.mapped(MappingKind.CLIENT, str(customer_id)) if customer_id else None
    if customer is None:
        raise PushFailedError(
            "customer_not_matched",
            f"The QuickBooks customer of invoice {payment.invoice_id!r} is no longer linked to "
            "its client: link it in the client mappings, then retry.",
        )
    body = Payment(
        customer_ref=Ref(value=customer),
        total_amt=payment.amount,
        txn_date=payment.date,
        line=[
            Line(
                amount=payment.amount,
                linked_txn=[LinkedTxn(txn_id=invoice.qbo_id, txn_type="Invoice")],
            )
        ],
        private_note=document_marker(record)
        + (f" Method: {payment.method}." if payment.method else ""),
    )
    if payment.reference:
        body.payment_ref_num = payment.reference[:MAX_REFERENCE]
    if ctx.company.multi_currency:
        body.currency_ref = Ref(value=payment.currency)
    label = f"payment {payment.id!r} of invoice {payment.invoice_id!r}"
    if in_quickbooks(ctx, record):
        qbo_id = record.qbo_id or ""
        body.id = qbo_id
        body.sync_token = record.qbo_sync_token or "0"
        return Write(
            "update",
            body,
            f"Updating {label}",
            reread=lambda: ctx.client.get(Payment, qbo_id),
        )
    return Write("create", body, f"Recording {label}")


async def _invoice(ctx: PushContext, record: SyncRecord, payment: PaymentSnapshot) -> SyncRecord:
    async with ctx.db.sessions() as session:
        invoice = await session.scalar(
            select(SyncRecord).where(
                SyncRecord.org_id == record.org_id,
                SyncRecord.kind == RecordKind.INVOICE,
                SyncRecord.platform_id == payment.invoice_id,
            )
        )
    if (
        invoice is not None
        and invoice.qbo_id is not None
        and invoice.realm_id == ctx.company.realm_id
        and invoice.operation != "delete"
    ):
        return invoice
    # Unknown yet: its event may still be on its way (events of two entities are not ordered).
    if invoice is None or invoice.status in ON_ITS_WAY:
        raise PushDeferredError(
            "waiting_for_invoice",
            f"Waiting for invoice {payment.invoice_id!r} to reach QuickBooks first.",
            INVOICE_WAIT_SECONDS,
        )
    raise PushFailedError(
        "invoice_not_in_quickbooks",
        f"The payment is for invoice {payment.invoice_id!r}, which is "
        f"{invoice.status.value} and not in "
        "QuickBooks: push the invoice first; the payment follows once it is there.",
    )
