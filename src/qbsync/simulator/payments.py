"""Customer payments: applying amounts to open invoices, unapplied credit, delete and void."""

from __future__ import annotations

from decimal import Decimal

from qbsync.simulator.currency import check_account_currency, set_home_amounts
from qbsync.simulator.errors import business_rule, invalid_enum, invalid_reference, required
from qbsync.simulator.fields import mapping, money, sequence
from qbsync.simulator.invoices import linked_invoice, refresh_invoice
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import EntityRules, Ledger, WriteRequest
from qbsync.simulator.lines import (
    ZERO,
    account_or_default,
    header,
    optional_account,
    required_ref,
    zeroed,
)
from qbsync.simulator.store import writable_copy

# Intuit: a payment is deposited to a Bank or an Other Current Asset (Undeposited Funds).
DEPOSIT_ACCOUNT_TYPES = frozenset({"Bank", "Other Current Asset"})


def _links(payment: JsonObject | None) -> dict[str, Decimal]:
    links: dict[str, Decimal] = {}
    for line in payment["Line"] if payment else []:
        invoice_id = linked_invoice(line)
        links[invoice_id] = links.get(invoice_id, ZERO) + line["Amount"]
    return links


def _payment(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    company = ledger.company
    customer = required_ref(ledger, candidate, "CustomerRef", "Customer")
    if candidate.get("TotalAmt") is None:
        raise required("TotalAmt")
    total = money(candidate["TotalAmt"], "TotalAmt")
    if total < 0:
        raise business_rule("The payment amount can't be negative.", "TotalAmt")
    header(ledger, "Payment", candidate, previous, ("customer", customer))
    currency = candidate["CurrencyRef"]["value"]
    lines = [_payment_line(ledger, line, customer["Id"]) for line in _optional_lines(candidate)]
    links = _links({"Line": lines})
    own_id = previous["Id"] if previous else None
    for invoice_id, amount in links.items():
        invoice = ledger.read("Invoice", invoice_id)
        others = sum(
            (
                paid
                for payment_id, paid in company.applied.get(invoice_id, {}).items()
                if payment_id != own_id
            ),
            ZERO,
        )
        open_balance = invoice["TotalAmt"] - others
        if amount > open_balance:
            raise business_rule(
                f"The amount applied to invoice {invoice.get('DocNumber', invoice_id)} "
                f"({amount}) exceeds its open balance ({open_balance}).",
                "Line.Amount",
            )
    applied = sum(links.values(), ZERO)
    if applied > total:
        raise business_rule("The amounts applied to invoices exceed the payment total.", "TotalAmt")
    deposit = account_or_default(
        ledger, candidate, "DepositToAccountRef", "UndepositedFunds", DEPOSIT_ACCOUNT_TYPES
    )
    # Undeposited Funds is in the home currency and takes payments in any currency; a bank
    # account in a third currency can't [stricter guess at QBO's rule].
    check_account_currency(ledger, deposit, currency, "DepositToAccountRef", home_allowed=True)
    receivable = optional_account(ledger, candidate, "ARAccountRef", "Accounts Receivable")
    if receivable is not None:
        check_account_currency(ledger, receivable, currency, "ARAccountRef", home_allowed=False)
    candidate.update(
        CustomerRef=ledger.named_ref("Customer", customer),
        DepositToAccountRef=ledger.named_ref("Account", deposit),
        TotalAmt=total,
        UnappliedAmt=total - applied,
        ProcessPayment=False,
        Line=lines,
    )
    set_home_amounts(company, candidate)
    return candidate


def _optional_lines(candidate: JsonObject) -> list[JsonObject]:
    raw = candidate.get("Line")
    return [] if raw is None else [mapping(line, "Line") for line in sequence(raw, "Line")]


def _payment_line(ledger: Ledger, line: JsonObject, customer_id: str) -> JsonObject:
    if line.get("Amount") is None:
        raise required("Line.Amount")
    amount = money(line["Amount"], "Line.Amount")
    if amount < 0:
        # A negative amount would raise the invoice's balance above its total.
        raise business_rule("The amount applied to an invoice can't be negative.", "Line.Amount")
    linked = sequence(line.get("LinkedTxn") or [], "LinkedTxn")
    if len(linked) != 1:
        raise business_rule("Each payment line must link exactly one invoice.", "LinkedTxn")
    txn = mapping(linked[0], "LinkedTxn")
    if txn.get("TxnType") != "Invoice":
        raise invalid_enum("LinkedTxn.TxnType", txn.get("TxnType"))
    invoice_id = str(txn.get("TxnId") or "")
    invoice = ledger.lookup("Invoice", invoice_id)
    if invoice is None:
        raise invalid_reference("LinkedTxn.TxnId", invoice_id)
    if ("Invoice", invoice_id) in ledger.company.voided:
        raise business_rule(f"Invoice {invoice_id} is voided and can't receive payments.")
    if invoice["CustomerRef"]["value"] != customer_id:
        raise business_rule(f"Invoice {invoice_id} belongs to another customer.")
    return {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}


def _relink(
    ledger: Ledger, payment_id: str, old: dict[str, Decimal], new: dict[str, Decimal]
) -> None:
    applied = ledger.company.applied
    touched = [invoice_id for invoice_id in old if invoice_id not in new]
    for invoice_id in touched:
        applied[invoice_id].pop(payment_id, None)
    for invoice_id, amount in new.items():
        if old.get(invoice_id) != amount:
            applied.setdefault(invoice_id, {})[payment_id] = amount
            touched.append(invoice_id)
    for invoice_id in touched:
        refresh_invoice(ledger, invoice_id)


def _payment_written(ledger: Ledger, stored: JsonObject, previous: JsonObject | None) -> None:
    _relink(ledger, stored["Id"], _links(previous), _links(stored))


def _payment_deleted(ledger: Ledger, payment: JsonObject) -> None:
    _relink(ledger, payment["Id"], _links(payment), {})


def _void_payment(ledger: Ledger, payment: JsonObject) -> JsonObject:
    """Zeroed and unlinked; once stored, `_payment_written` unapplies it from its invoices."""
    body = zeroed(writable_copy(payment))
    body.update(Line=[], UnappliedAmt=ZERO)
    set_home_amounts(ledger.company, body)
    return body


RULES = {
    "Payment": EntityRules(
        _payment,
        after_write=_payment_written,
        after_delete=_payment_deleted,
        void=_void_payment,
        after_void=_payment_written,
    )
}
