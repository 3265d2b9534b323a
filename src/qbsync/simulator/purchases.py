"""Bills and purchases (expenses): expense lines, VAT on purchases, totals, void."""

from __future__ import annotations

from decimal import Decimal

from qbsync.simulator.currency import (
    check_account_currency,
    home_code,
    payables_account,
    set_home_amounts,
)
from qbsync.simulator.errors import business_rule, invalid_enum, required
from qbsync.simulator.fields import iso_date, mapping, ref_id
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import EntityRules, Ledger, WriteRequest
from qbsync.simulator.lines import (
    ACCOUNT_LINE,
    ITEM_LINE,
    ZERO,
    account_or_default,
    header,
    line_amount,
    line_rates,
    numbered,
    output_line,
    required_ref,
    sent_lines,
    tax_mode,
    zeroed,
)
from qbsync.simulator.store import writable_copy
from qbsync.simulator.tax import GlobalTaxCalculation, TaxedLine, vat

PAYMENT_TYPES = frozenset({"Cash", "Check", "CreditCard"})
# Payables and receivables are kept by QBO itself; an expense line can't post to them.
_NOT_EXPENSE_LINE_TYPES = frozenset({"Accounts Payable", "Accounts Receivable"})


def _expense_lines(
    ledger: Ledger,
    entity: str,
    candidate: JsonObject,
    previous: JsonObject | None,
    mode: GlobalTaxCalculation | None,
) -> tuple[list[JsonObject], list[TaxedLine]]:
    lines: list[JsonObject] = []
    taxed: list[TaxedLine] = []
    for line in sent_lines(candidate):
        detail_type = line.get("DetailType")
        if detail_type not in (ACCOUNT_LINE, ITEM_LINE):
            raise invalid_enum("Line.DetailType", detail_type)
        if line.get(detail_type) is None:
            raise required(detail_type)
        detail = dict(mapping(line[detail_type], detail_type))
        amount = line_amount(line, detail)
        target_entity, key = (
            ("Account", "AccountRef") if detail_type == ACCOUNT_LINE else ("Item", "ItemRef")
        )
        target_id = ref_id(detail, key)
        if target_id is None:
            raise required(key)
        target = ledger.resolve(target_entity, target_id, key)
        if target_entity == "Account" and target["AccountType"] in _NOT_EXPENSE_LINE_TYPES:
            raise business_rule(
                f"Invalid account type: an expense line can't post to {target['AccountType']}.",
                key,
            )
        detail[key] = ledger.named_ref(target_entity, target)
        rates = line_rates(ledger, detail, mode, purchase=True)
        if rates is not None:
            taxed.append(TaxedLine(amount, rates))
        lines.append(output_line(line, amount, detail_type, detail))
    return numbered(ledger, entity, previous, lines), taxed


def _expense_totals(
    lines: list[JsonObject], taxed: list[TaxedLine], mode: GlobalTaxCalculation | None
) -> tuple[Decimal, JsonObject | None]:
    if mode is None:
        return sum((line["Amount"] for line in lines), ZERO), None
    result = vat(taxed, mode)
    return result.total_amount, result.detail


def _bill(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    vendor = required_ref(ledger, candidate, "VendorRef", "Vendor")
    mode = tax_mode(ledger, candidate)
    txn_date = header(ledger, "Bill", candidate, previous, ("vendor", vendor))
    currency = candidate["CurrencyRef"]["value"]
    lines, taxed = _expense_lines(ledger, "Bill", candidate, previous, mode)
    total, tax_detail = _expense_totals(lines, taxed, mode)
    if ref_id(candidate, "APAccountRef") is None and currency != home_code(ledger.company):
        # Last, after every check: this may create the currency's payables account.
        ap = payables_account(ledger, currency)
    else:
        ap = account_or_default(
            ledger, candidate, "APAccountRef", "AccountsPayable", frozenset({"Accounts Payable"})
        )
    # A bill's payable is owed in its own currency.
    check_account_currency(ledger, ap, currency, "APAccountRef", home_allowed=False)
    candidate.update(
        VendorRef=ledger.named_ref("Vendor", vendor),
        APAccountRef=ledger.named_ref("Account", ap),
        Line=lines,
        TotalAmt=total,
        # Bill payments are outside the simulator's subset, so a bill stays open.
        Balance=total,
        DueDate=iso_date(candidate, "DueDate") or txn_date.isoformat(),
    )
    _set_tax_detail(candidate, tax_detail)
    set_home_amounts(ledger.company, candidate)
    return candidate


def _purchase(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    payment_type = candidate.get("PaymentType")
    if payment_type is None:
        raise required("PaymentType")
    if payment_type not in PAYMENT_TYPES:
        raise invalid_enum("PaymentType", payment_type)
    account = required_ref(ledger, candidate, "AccountRef", "Account")
    expected = "Credit Card" if payment_type == "CreditCard" else "Bank"
    if account["AccountType"] != expected:
        raise business_rule(
            f"A {payment_type} purchase must be paid from a {expected} account.", "AccountRef"
        )
    mode = tax_mode(ledger, candidate)
    payee_id = ref_id(candidate, "EntityRef")
    party: tuple[str, JsonObject] | None = None
    if payee_id is not None:
        payee_type = candidate["EntityRef"].get("type", "Vendor")
        if payee_type not in ("Vendor", "Customer", "Employee"):
            raise invalid_enum("EntityRef.type", payee_type)
        payee = ledger.resolve(payee_type, payee_id, "EntityRef")
        candidate["EntityRef"] = {**ledger.named_ref(payee_type, payee), "type": payee_type}
        party = (payee_type.lower(), payee)
    header(ledger, "Purchase", candidate, previous, party)
    # The money leaves this account, so it is in the purchase's currency [stricter: QBO Desktop
    # also takes a home-currency account].
    check_account_currency(
        ledger, account, candidate["CurrencyRef"]["value"], "AccountRef", home_allowed=False
    )
    lines, taxed = _expense_lines(ledger, "Purchase", candidate, previous, mode)
    total, tax_detail = _expense_totals(lines, taxed, mode)
    candidate.update(
        PaymentType=payment_type,
        AccountRef=ledger.named_ref("Account", account),
        Credit=candidate.get("Credit") is True,
        Line=lines,
        TotalAmt=total,
    )
    _set_tax_detail(candidate, tax_detail)
    set_home_amounts(ledger.company, candidate)
    return candidate


def _set_tax_detail(candidate: JsonObject, detail: JsonObject | None) -> None:
    if detail is None:
        candidate.pop("TxnTaxDetail", None)
    else:
        candidate["TxnTaxDetail"] = detail


def _void_purchase(ledger: Ledger, purchase: JsonObject) -> JsonObject:
    body = zeroed(writable_copy(purchase))
    set_home_amounts(ledger.company, body)
    return body


RULES = {"Bill": EntityRules(_bill), "Purchase": EntityRules(_purchase, void=_void_purchase)}
