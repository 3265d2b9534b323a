"""Invoices: lines, sales tax, numbering, a balance that follows payments, delete and void."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from qbsync.simulator.currency import set_home_amounts
from qbsync.simulator.errors import business_rule, duplicate_doc_number, invalid_enum, required
from qbsync.simulator.fields import iso_date, mapping, money, ref_id, text
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import EntityRules, Ledger, WriteRequest
from qbsync.simulator.lines import (
    SALES_LINE,
    ZERO,
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
from qbsync.simulator.tax import Rate, TaxedLine, TaxResult, us_automated_sales_tax, vat


def _invoice(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    customer = required_ref(ledger, candidate, "CustomerRef", "Customer")
    mode = tax_mode(ledger, candidate)
    txn_date = header(ledger, "Invoice", candidate, previous, ("customer", customer))
    lines: list[JsonObject] = []
    taxed: list[TaxedLine] = []
    us_taxable: list[Decimal] = []
    for line in sent_lines(candidate):
        detail_type = line.get("DetailType")
        if detail_type == "SubTotalLineDetail":
            continue  # the server writes its own subtotal line
        if detail_type == "DescriptionOnly":
            detail = line.get("DescriptionLineDetail") or {}
            lines.append(output_line(line, None, "DescriptionOnly", mapping(detail, "Line")))
            continue
        if detail_type != SALES_LINE:
            raise invalid_enum("Line.DetailType", detail_type)
        if line.get(SALES_LINE) is None:
            raise required(SALES_LINE)
        detail = dict(mapping(line[SALES_LINE], SALES_LINE))
        amount = line_amount(line, detail)
        item = required_ref(ledger, detail, "ItemRef", "Item")
        detail["ItemRef"] = ledger.named_ref("Item", item)
        rates = line_rates(ledger, detail, mode, purchase=False)
        detail.pop("TaxInclusiveAmt", None)  # the server's figure, never a stale or sent one
        if rates is None:
            code = ref_id(detail, "TaxCodeRef") or ("TAX" if item.get("Taxable") else "NON")
            detail["TaxCodeRef"] = {"value": code}
            if code == "TAX":
                us_taxable.append(amount)
        else:
            taxed.append(TaxedLine(amount, rates))
            if mode == "TaxInclusive":
                detail["TaxInclusiveAmt"] = amount
        lines.append(output_line(line, amount, SALES_LINE, detail))
    subtotal = sum((line.get("Amount", ZERO) for line in lines), ZERO)
    if mode is None:
        if customer.get("Taxable") is False:
            us_taxable = []
        result = _automated_sales_tax(ledger, us_taxable, subtotal, previous, request)
    else:
        result = vat(taxed, mode)
    applied = applied_total(ledger, previous)
    if result.total_amount < applied:
        raise business_rule("The invoice total can't be less than the payments applied to it.")
    due = iso_date(candidate, "DueDate") or (txn_date + timedelta(days=30)).isoformat()
    candidate.update(
        CustomerRef=ledger.named_ref("Customer", customer),
        Line=[*numbered(ledger, "Invoice", previous, lines), _subtotal_line(subtotal)],
        TxnTaxDetail=result.detail,
        TotalAmt=result.total_amount,
        Balance=result.total_amount - applied,
        DueDate=due,
        DocNumber=_doc_number(ledger, candidate, previous, request),
        LinkedTxn=_payment_links(ledger, previous),
    )
    if candidate["DocNumber"] is None:
        del candidate["DocNumber"]
    set_home_amounts(ledger.company, candidate)
    return candidate


def _subtotal_line(subtotal: Decimal) -> JsonObject:
    return {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}


# A sparse update that sends none of these leaves the tax as it was, an override included.
_TAX_INPUTS = ("Line", "TxnTaxDetail", "CustomerRef")


def _automated_sales_tax(
    ledger: Ledger,
    taxable: list[Decimal],
    subtotal: Decimal,
    previous: JsonObject | None,
    request: WriteRequest,
) -> TaxResult:
    company = ledger.company
    code = ledger.read("TaxCode", company.preferences["TaxPrefs"]["TaxGroupCodeRef"]["value"])
    rate_ref = code["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]
    rate = ledger.read("TaxRate", rate_ref)
    sent = request.sent
    sent_detail = sent.get("TxnTaxDetail")
    override = sent_detail.get("TotalTax") if isinstance(sent_detail, dict) else None
    if (
        previous is not None
        and sent.get("sparse") is True
        and not any(key in sent for key in _TAX_INPUTS)
    ):
        # Changing the due date or a memo must not re-run AST over an overridden amount.
        override = previous["TxnTaxDetail"]["TotalTax"]
    return us_automated_sales_tax(
        taxable,
        subtotal,
        Rate(rate["Id"], rate["Name"], rate["RateValue"]),
        ledger.named_ref("TaxCode", code),
        None if override is None else money(override, "TxnTaxDetail.TotalTax"),
    )


def _doc_number(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> str | None:
    company = ledger.company
    number = text(candidate, "DocNumber")
    if number is None and not company.preferences["SalesFormsPrefs"]["CustomTxnNumbers"]:
        # Without custom numbers QBO numbers invoices itself, passing over the numbers
        # clients chose themselves.
        number = previous.get("DocNumber") if previous else None
        while number is None or (previous is None and company.holders("invoice-numbers", number)):
            number = str(1000 + int(company.next_id("DocNumber")))
    if number is not None and not request.allow_duplicate_doc_number:
        own = {("Invoice", previous["Id"])} if previous else set()
        if company.holders("invoice-numbers", number) - own:
            raise duplicate_doc_number(number)
    return number


def applied_total(ledger: Ledger, invoice: JsonObject | None) -> Decimal:
    if invoice is None:
        return ZERO
    return sum(ledger.company.applied.get(invoice["Id"], {}).values(), ZERO)


def _payment_links(ledger: Ledger, invoice: JsonObject | None) -> list[JsonObject]:
    if invoice is None:
        return []
    payments = ledger.company.applied.get(invoice["Id"], {})
    return [{"TxnId": payment_id, "TxnType": "Payment"} for payment_id in payments]


def refresh_invoice(ledger: Ledger, invoice_id: str) -> None:
    """Balance and LinkedTxn follow the payments; QBO bumps the invoice's SyncToken for it."""
    invoice = ledger.read("Invoice", invoice_id)
    body = writable_copy(invoice)
    voided = ("Invoice", invoice_id) in ledger.company.voided
    body["Balance"] = ZERO if voided else invoice["TotalAmt"] - applied_total(ledger, invoice)
    body["LinkedTxn"] = _payment_links(ledger, invoice)
    set_home_amounts(ledger.company, body)
    ledger.touch("Invoice", invoice, body)


def _check_invoice_delete(ledger: Ledger, invoice: JsonObject) -> None:
    """QBO refuses to delete an invoice that payments are applied to (Intuit: linked
    transactions must be unlinked first); voiding it is what unapplies them."""
    payments = ledger.company.applied.get(invoice["Id"])
    if payments:
        name = invoice.get("DocNumber", invoice["Id"])
        ids = ", ".join(sorted(payments, key=int))
        raise business_rule(
            f"Invoice {name} has payments applied to it (Payment {ids}). Remove the payments, "
            "or unlink them from the invoice, before deleting it."
        )


def _void_invoice(ledger: Ledger, invoice: JsonObject) -> JsonObject:
    """Zeroed; once stored, `_unapply_payments` turns its payments into credits."""
    # Every payment is checked before anything changes. Refusing when one is in a closed period
    # is a guess [stricter]: QuickBooks does not say whether a void may rewrite it.
    for payment_id in ledger.company.applied.get(invoice["Id"], {}):
        ledger.check_period("Payment", ledger.read("Payment", payment_id).get("TxnDate"))
    body = zeroed(writable_copy(invoice))
    body["Balance"] = ZERO
    body["LinkedTxn"] = []
    set_home_amounts(ledger.company, body)
    return body


def _unapply_payments(ledger: Ledger, voided: JsonObject, previous: JsonObject) -> None:
    """Voiding unapplies its payments, which become credits on the customer's account."""
    for payment_id in list(ledger.company.applied.get(voided["Id"], {})):
        payment = ledger.read("Payment", payment_id)
        body = writable_copy(payment)
        body["Line"] = [line for line in body["Line"] if linked_invoice(line) != voided["Id"]]
        applied = sum((line["Amount"] for line in body["Line"]), ZERO)
        body["UnappliedAmt"] = body["TotalAmt"] - applied
        ledger.company.applied[voided["Id"]].pop(payment_id)
        ledger.touch("Payment", payment, body)


def linked_invoice(line: JsonObject) -> str:
    return str(line["LinkedTxn"][0]["TxnId"])


RULES = {
    "Invoice": EntityRules(
        _invoice,
        check_delete=_check_invoice_delete,
        void=_void_invoice,
        after_void=_unapply_payments,
    )
}
