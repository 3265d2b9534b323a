"""What every transaction shares: header fields, line amounts, VAT codes, voiding."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from qbsync.simulator.currency import transaction_currency
from qbsync.simulator.errors import business_rule, invalid_enum, invalid_reference, required
from qbsync.simulator.fields import (
    iso_date,
    mapping,
    max_length,
    money,
    optional_decimal,
    ref_id,
    round_money,
    sequence,
    text,
)
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import Ledger
from qbsync.simulator.tax import GLOBAL_TAX_CALCULATIONS, GlobalTaxCalculation, Rate

SALES_LINE = "SalesItemLineDetail"
ACCOUNT_LINE = "AccountBasedExpenseLineDetail"
ITEM_LINE = "ItemBasedExpenseLineDetail"
US_LINE_CODES = frozenset({"TAX", "NON"})
ZERO = Decimal("0.00")
# QBO's own wording when a GB line has no VAT code.
VAT_CODE_MISSING = "Make sure all your transactions have a VAT rate before you save."


def header(
    ledger: Ledger,
    entity: str,
    candidate: JsonObject,
    previous: JsonObject | None,
    party: tuple[str, JsonObject] | None,
) -> date:
    """TxnDate (the company's today if none), DocNumber's length, the currency (see currency.py:
    `party` is the customer or vendor whose currency the transaction must share)."""
    company = ledger.company
    txn_date = iso_date(candidate, "TxnDate") or company.today(ledger.clock.timestamp())
    max_length(text(candidate, "DocNumber"), "DocNumber", 21)
    candidate["TxnDate"] = txn_date
    transaction_currency(ledger, entity, candidate, previous, party)
    return date.fromisoformat(txn_date)


def tax_mode(ledger: Ledger, candidate: JsonObject) -> GlobalTaxCalculation | None:
    """GB transactions must say how line amounts relate to VAT; US ones can't."""
    if ledger.company.is_us:
        candidate.pop("GlobalTaxCalculation", None)
        return None
    mode = candidate.get("GlobalTaxCalculation")
    if mode is None:
        raise required("GlobalTaxCalculation")
    for known in GLOBAL_TAX_CALCULATIONS:
        if mode == known:
            return known
    raise invalid_enum("GlobalTaxCalculation", mode)


def line_amount(line: JsonObject, detail: JsonObject) -> Decimal:
    if line.get("Amount") is None:
        raise required("Line.Amount")
    amount = money(line["Amount"], "Line.Amount")
    qty = optional_decimal(detail, "Qty", "Qty")
    unit_price = optional_decimal(detail, "UnitPrice", "UnitPrice")
    if qty is not None and unit_price is not None and round_money(qty * unit_price) != amount:
        raise business_rule(
            f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}", "Line.Amount"
        )
    for key, value in (("Qty", qty), ("UnitPrice", unit_price)):
        if value is not None:
            detail[key] = value
    return amount


def line_rates(
    ledger: Ledger, detail: JsonObject, mode: GlobalTaxCalculation | None, *, purchase: bool
) -> tuple[Rate, ...] | None:
    """The VAT rates of a GB line (None in the US), after checking its TaxCodeRef."""
    code_id = ref_id(detail, "TaxCodeRef")
    if ledger.company.is_us:
        if code_id is not None and code_id not in US_LINE_CODES:
            raise invalid_reference("TaxCodeRef", code_id)
        return None
    if code_id is None:
        if mode == "NotApplicable":
            return ()
        raise business_rule(VAT_CODE_MISSING)
    code = ledger.resolve("TaxCode", code_id, "TaxCodeRef")
    detail["TaxCodeRef"] = ledger.named_ref("TaxCode", code)
    rate_list = code.get("PurchaseTaxRateList" if purchase else "SalesTaxRateList", {})
    rates = []
    for rate_detail in rate_list.get("TaxRateDetail", []):
        rate = ledger.read("TaxRate", rate_detail["TaxRateRef"]["value"])
        rates.append(Rate(rate["Id"], rate["Name"], rate["RateValue"]))
    return tuple(rates)


def output_line(
    sent: JsonObject, amount: Decimal | None, detail_type: str, detail: JsonObject
) -> JsonObject:
    line: JsonObject = {}
    sent_id = sent.get("Id")
    if isinstance(sent_id, str | int) and not isinstance(sent_id, bool):
        line["Id"] = str(sent_id)  # kept by `numbered` if it names one of the existing lines
    description = text(sent, "Description")
    if description is not None:
        line["Description"] = description
    if amount is not None:
        line["Amount"] = amount
    line["DetailType"] = detail_type
    line[detail_type if detail_type != "DescriptionOnly" else "DescriptionLineDetail"] = detail
    return line


def numbered(
    ledger: Ledger, entity: str, previous: JsonObject | None, lines: list[JsonObject]
) -> list[JsonObject]:
    """LineNum in order; Ids as QBO keeps them across updates.

    A line sent back with the Id of one of the transaction's lines keeps it; any other line
    is new and gets an Id above every one the transaction ever had, so a removed line's Id
    is never given to another line.
    """
    existing: set[str] = set()
    last_id = 0
    if previous is not None:
        existing = {str(line["Id"]) for line in previous.get("Line", []) if "Id" in line}
        last_id = ledger.company.line_mark(entity, previous["Id"])
    kept: set[str] = set()
    for number, line in enumerate(lines, start=1):
        sent_id = line.pop("Id", None)
        if sent_id in existing and sent_id not in kept:
            kept.add(sent_id)
            line_id = sent_id
        else:
            last_id += 1
            line_id = str(last_id)
        line["Id"] = line_id
        line["LineNum"] = number
    # Ids first, as QBO writes them.
    return [{"Id": line.pop("Id"), **line} for line in lines]


def sent_lines(candidate: JsonObject) -> list[JsonObject]:
    raw = candidate.get("Line")
    if raw is None or raw == []:
        raise required("Line")
    return [mapping(line, "Line") for line in sequence(raw, "Line")]


def zeroed(body: JsonObject) -> JsonObject:
    """A voided copy: amounts and quantities zeroed, the note saying so."""
    for line in body.get("Line", []):
        if "Amount" in line:
            line["Amount"] = ZERO
        for detail_key in (SALES_LINE, ITEM_LINE):
            detail = line.get(detail_key)
            if isinstance(detail, dict):
                for key in ("Qty", "TaxInclusiveAmt"):
                    if key in detail:
                        detail[key] = Decimal(0) if key == "Qty" else ZERO
    tax_detail = body.get("TxnTaxDetail")
    if isinstance(tax_detail, dict):
        tax_detail["TotalTax"] = ZERO
        for tax_line in tax_detail.get("TaxLine", []):
            tax_line["Amount"] = ZERO
            tax_line["TaxLineDetail"]["NetAmountTaxable"] = ZERO
    note = body.get("PrivateNote")
    body["PrivateNote"] = f"Voided - {note}" if note else "Voided"
    body["TotalAmt"] = ZERO
    return body


def required_ref(ledger: Ledger, body: JsonObject, key: str, entity: str) -> JsonObject:
    """The active object `body[key]` points to; 2020 naming `key` when it is absent."""
    object_id = ref_id(body, key)
    if object_id is None:
        raise required(key)
    return ledger.resolve(entity, object_id, key)


def account_of_type(
    ledger: Ledger, account_id: str, key: str, allowed: frozenset[str]
) -> JsonObject:
    """The active account `key` points to, refused unless its AccountType is one of `allowed`."""
    account = ledger.resolve("Account", account_id, key)
    if account["AccountType"] not in allowed:
        raise business_rule(
            f"Invalid account type: {key} must reference an account of type "
            f"{' or '.join(sorted(allowed))}; account {account_id} is {account['AccountType']}.",
            key,
        )
    return account


def optional_account(
    ledger: Ledger, body: JsonObject, key: str, account_type: str
) -> JsonObject | None:
    """Check and name the account `body[key]` refers to, when the body has one."""
    account_id = ref_id(body, key)
    if account_id is None:
        return None
    account = account_of_type(ledger, account_id, key, frozenset({account_type}))
    body[key] = ledger.named_ref("Account", account)
    return account


def account_or_default(
    ledger: Ledger, body: JsonObject, key: str, subtype: str, allowed: frozenset[str]
) -> JsonObject:
    """The account `body[key]` names, or the company's account of `subtype` as QBO defaults."""
    account_id = ref_id(body, key)
    if account_id is None:
        return account_of_subtype(ledger, subtype)
    return account_of_type(ledger, account_id, key, allowed)


def account_of_subtype(ledger: Ledger, subtype: str) -> JsonObject:
    for account in ledger.company.table("Account").values():
        if account.get("AccountSubType") == subtype and account.get("Active"):
            return account
    raise required(subtype)
