"""An invoice's payment status as QuickBooks shows it, derived from the invoice and its payments.

Pure functions: the pull reads the objects, this says what they mean, the store decides whether
it is news. Observations are ordered by QuickBooks' SyncTokens (see `Version`): a read of an
older state that arrives late never replaces a newer one, whatever order webhooks, pulls and
reconciliations ran in (R9).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from qbsync.qbo.entities import Invoice, Payment

PaymentStatus = Literal["unpaid", "partially_paid", "paid", "voided", "deleted"]
ZERO = Decimal("0")
CENT = Decimal("0.01")
# A deleted invoice is the last word: no state of it can come later.
DELETED_VERSION = (2**62, 0)


@dataclass(frozen=True)
class PaymentLink:
    qbo_payment_id: str
    # The part of the payment applied to this invoice (a payment may be split over several).
    amount: Decimal
    date: str | None
    method: str | None
    reference: str | None


@dataclass(frozen=True)
class InvoiceState:
    qbo_invoice_id: str
    status: PaymentStatus
    currency: str | None
    total: Decimal
    amount_paid: Decimal
    balance: Decimal
    payments: tuple[PaymentLink, ...]
    as_of: datetime
    # (the invoice's SyncToken, the sum of its payments' SyncTokens). QuickBooks bumps an
    # invoice's SyncToken whenever a payment applied to it changes its balance; a payment edit
    # that leaves the balance alone (its reference, say) bumps only the payment's own token,
    # and with the invoice unchanged the set of payments is unchanged, so the sum orders it.
    version: tuple[int, int]

    def same_as(self, stored: Mapping[str, Any] | None) -> bool:
        """True when the platform already has this state (`as_of` and version aside). Before
        any is stored, the platform takes an invoice it sent to be unpaid."""
        if stored is None or "status" not in stored:
            return self.status == "unpaid" and self.amount_paid == ZERO
        ours = self.document()
        return all(ours[key] == stored.get(key) for key in _COMPARED)

    def document(self) -> dict[str, Any]:
        """The stored form, which is also the event's data apart from `invoice_id` and the
        payments' `platform_payment_id`."""
        return {
            "qbo_invoice_id": self.qbo_invoice_id,
            "status": self.status,
            "currency": self.currency,
            "total": _money(self.total),
            "amount_paid": _money(self.amount_paid),
            "balance": _money(self.balance),
            "payments": [
                {
                    "qbo_payment_id": link.qbo_payment_id,
                    "amount": _money(link.amount),
                    "date": link.date,
                    "method": link.method,
                    "reference": link.reference,
                }
                for link in self.payments
            ],
            "as_of": self.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "version": list(self.version),
        }


_COMPARED = ("status", "currency", "total", "amount_paid", "balance", "payments")


def with_write(stored: Mapping[str, Any] | None, written_at: datetime) -> dict[str, Any]:
    """The stored state, noting when QuickBooks stamped qbsync's own last write of the
    invoice: the webhook that write causes then needs no read (P7)."""
    stamp = written_at if written_at.tzinfo else written_at.replace(tzinfo=UTC)
    return {**(stored or {}), "written_at": stamp.astimezone(UTC).isoformat()}


def is_newer(state: InvoiceState, stored: Mapping[str, Any] | None) -> bool:
    """Whether `state` may replace what is stored: not older by QuickBooks' own order."""
    if stored is None:
        return True
    raw = stored.get("version")
    if not isinstance(raw, list) or len(raw) != 2:
        return True
    return state.version >= (int(raw[0]), int(raw[1]))


def derive(
    invoice: Invoice, payments: Mapping[str, Payment], home_currency: str | None
) -> InvoiceState:
    """The state of a live invoice; `payments` holds (at least) every payment it links."""
    invoice_id = invoice.id or ""
    total = invoice.total_amt or ZERO
    balance = invoice.balance if invoice.balance is not None else total
    links = tuple(_links(invoice, payments))
    voided = _is_voided(invoice)
    status: PaymentStatus
    if voided:
        status = "voided"
    elif balance <= ZERO and total > ZERO:
        status = "paid"
    elif balance < total:
        status = "partially_paid"
    else:
        status = "unpaid"
    currency = invoice.currency_ref.value if invoice.currency_ref else home_currency
    stamps = [_updated(invoice)] + [_updated(payments[link.qbo_payment_id]) for link in links]
    return InvoiceState(
        qbo_invoice_id=invoice_id,
        status=status,
        currency=currency,
        total=total,
        # What QuickBooks counts as settled: credits applied reduce the balance too.
        amount_paid=max(total - balance, ZERO),
        balance=max(balance, ZERO),
        payments=() if voided else links,
        as_of=max(stamp for stamp in stamps if stamp is not None)
        if any(stamps)
        else datetime.now(UTC),
        version=(
            _token(invoice),
            sum(_token(payments[link.qbo_payment_id]) for link in links),
        ),
    )


def deleted(qbo_invoice_id: str, stored: Mapping[str, Any] | None, when: datetime) -> InvoiceState:
    """An invoice QuickBooks no longer has: nothing is owed or paid on it there."""
    currency = stored.get("currency") if stored else None
    return InvoiceState(
        qbo_invoice_id=qbo_invoice_id,
        status="deleted",
        currency=currency if isinstance(currency, str) else None,
        total=ZERO,
        amount_paid=ZERO,
        balance=ZERO,
        payments=(),
        as_of=when,
        version=DELETED_VERSION,
    )


def linked_payment_ids(invoice: Invoice) -> set[str]:
    return {
        link.txn_id
        for link in invoice.linked_txn or []
        if link.txn_type == "Payment" and link.txn_id
    }


def linked_invoice_ids(payment: Payment) -> set[str]:
    return {
        link.txn_id
        for line in payment.line or []
        for link in line.linked_txn or []
        if link.txn_type == "Invoice" and link.txn_id
    }


def _links(invoice: Invoice, payments: Mapping[str, Payment]) -> list[PaymentLink]:
    found: list[PaymentLink] = []
    for payment_id in sorted(linked_payment_ids(invoice), key=_numeric):
        payment = payments.get(payment_id)
        if payment is None:
            continue
        applied = sum(
            (
                line.amount or ZERO
                for line in payment.line or []
                for link in line.linked_txn or []
                if link.txn_type == "Invoice" and link.txn_id == invoice.id
            ),
            ZERO,
        )
        if applied <= ZERO:
            continue
        method = payment.payment_method_ref
        found.append(
            PaymentLink(
                qbo_payment_id=payment_id,
                amount=applied,
                date=payment.txn_date.isoformat() if payment.txn_date else None,
                method=(method.name or method.value) if method else None,
                reference=payment.payment_ref_num,
            )
        )
    return found


def _is_voided(invoice: Invoice) -> bool:
    """QuickBooks keeps a voided invoice with its amounts zeroed and "Voided" put before its
    private note; there is no status field to read (qbo-api-facts §7, Invoice void)."""
    note = (invoice.private_note or "").lstrip()
    return (invoice.total_amt or ZERO) == ZERO and note.startswith("Voided")


def _updated(entity: Invoice | Payment) -> datetime | None:
    stamp = entity.meta_data.last_updated_time if entity.meta_data else None
    if stamp is None:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _token(entity: Invoice | Payment) -> int:
    try:
        return int(entity.sync_token or 0)
    except ValueError:
        return 0


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (2**63, value)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))
