"""Later changes of what was pushed (update, void, delete), payments, expenses and clients,
end to end through a real worker and the simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qbsync.simulator.admin import PaymentRequest
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, ten_pounds, uk_mapped
from tests.sync.pushing import Books, books_for

__all__ = ["books_for", "org", "settings", "uk", "us"]


async def _uk_books(uk: Org, books_for: Any, **chosen: Any) -> Books:
    books: Books = books_for(uk)
    await uk_mapped(uk)
    await books.configure(
        **{
            "invoice_auto_push": True,
            "default_income_account_id": uk.qbo_id("Account", "Consulting Income"),
            **chosen,
        }
    )
    return books


def _twenty_pounds(invoice_id: str) -> dict[str, Any]:
    invoice = ten_pounds(invoice_id, ACME)
    invoice["lines"][0]["unit_price"] = "20.00"
    invoice.update(subtotal="20.00", tax_total="4.00", total="24.00")
    return invoice


async def test_a_change_updates_the_invoice_rereading_once_after_an_edit_in_quickbooks(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_1", ACME))
    await books.push()
    first = await books.record("invoice", "inv_1")
    assert first.status.value == "synced"
    # An accountant touches the invoice in QuickBooks: qbsync's SyncToken is now stale.
    uk.in_quickbooks("Invoice", {"Id": first.qbo_id, "CustomerMemo": {"value": "Thanks!"}})

    await books.send("invoice.upserted", _twenty_pounds("inv_1"))
    await books.push()

    record = await books.record("invoice", "inv_1")
    assert record.status.value == "synced", record.last_error
    assert (record.version, record.synced_version) == (2, 2)
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    assert Decimal(str(invoices[0]["TotalAmt"])) == Decimal("24.00")
    assert invoices[0]["CustomerMemo"] == {"value": "Thanks!"}, "a sparse update keeps it"
    assert record.qbo_sync_token == invoices[0]["SyncToken"]
    assert books.requests("GET invoice") == 1, "re-read once after the stale token"


async def test_void_and_delete_reach_quickbooks(uk: Org, books_for: Any) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_v", ACME))
    await books.send("invoice.upserted", ten_pounds("inv_x", ACME))
    await books.push()
    voided = ten_pounds("inv_v", ACME)
    voided["status"] = "void"
    await books.send("invoice.voided", voided)
    await books.send("invoice.deleted", {"id": "inv_x"})
    await books.push()

    invoices = {row["DocNumber"]: row for row in books.documents("Invoice")}
    assert set(invoices) == {"INV-inv_v"}, "the deleted one is gone"
    assert Decimal(str(invoices["INV-inv_v"]["TotalAmt"])) == 0
    for platform_id in ("inv_v", "inv_x"):
        record = await books.record("invoice", platform_id)
        assert record.status.value == "synced", record.last_error
    assert (await books.record("invoice", "inv_x")).qbo_id is None


async def test_a_delete_quickbooks_refuses_while_payments_are_applied_fails_with_its_reason(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_p", ACME))
    await books.push()
    record = await books.record("invoice", "inv_p")
    assert record.qbo_id is not None
    uk.simulator.admin.record_payment(
        uk.realm_id, PaymentRequest(invoice_id=record.qbo_id, amount=Decimal("5.00"))
    )
    await books.send("invoice.deleted", {"id": "inv_p"})
    await books.push()

    record = await books.record("invoice", "inv_p")
    assert record.status.value == "failed"
    assert record.last_error is not None
    assert "payment" in record.last_error["message"].lower()
    assert record.last_error["fault"]["code"] is not None
    assert len(books.documents("Invoice")) == 1


async def test_a_payment_waits_for_its_invoice_then_is_linked_to_it(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send(
        "payment.recorded",
        {
            "id": "pay_1",
            "invoice_id": "inv_1",
            "amount": "5.00",
            "date": "2026-11-25",
            "method": "bank transfer",
            "reference": "REF-1",
            "currency": "GBP",
        },
    )
    await books.push()
    waiting = await books.record("payment", "pay_1")
    assert waiting.status.value == "pending"
    assert waiting.last_error is not None
    assert waiting.last_error["code"] == "waiting_for_invoice"
    assert books.documents("Payment") == []

    await books.send("invoice.upserted", ten_pounds("inv_1", ACME))
    await books.push()

    invoice = await books.record("invoice", "inv_1")
    payment = await books.record("payment", "pay_1")
    assert payment.status.value == "synced", payment.last_error
    payments = books.documents("Payment")
    assert len(payments) == 1
    assert payments[0]["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice.qbo_id
    assert payments[0]["PaymentRefNum"] == "REF-1"
    assert Decimal(str(payments[0]["TotalAmt"])) == Decimal("5.00")
    paid = next(row for row in books.documents("Invoice") if row["Id"] == invoice.qbo_id)
    assert Decimal(str(paid["Balance"])) == Decimal("7.00")

    await books.send("payment.deleted", {"id": "pay_1"})
    await books.push()
    assert books.documents("Payment") == []
    assert (await books.record("payment", "pay_1")).status.value == "synced"


async def test_an_expense_becomes_a_bill_with_a_new_vendor_on_the_mapped_account(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    travel = uk.qbo_id("Account", "Travel")
    await books.map("expense-categories/travel", {"qbo_id": travel})
    await books.map("tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"})
    await books.send(
        "expense.upserted",
        {
            "id": "exp_1",
            "date": "2026-11-21",
            "supplier": {"id": "sup_1", "name": "Taxi Co"},
            "category_code": "travel",
            "description": "Airport",
            "amount": "30.00",
            "amounts_are": "tax_inclusive",
            "tax_rate_id": "tr_vat20",
            "currency": "GBP",
            "paid": False,
            "due_date": "2026-12-21",
        },
    )
    await books.push()

    record = await books.record("expense", "exp_1")
    assert record.status.value == "synced", record.last_error
    bills = books.documents("Bill")
    assert len(bills) == 1
    bill = bills[0]
    line = bill["Line"][0]["AccountBasedExpenseLineDetail"]
    assert line["AccountRef"]["value"] == travel
    assert line["TaxCodeRef"]["value"] == "3"
    assert bill["GlobalTaxCalculation"] == "TaxInclusive"
    assert bill["DueDate"] == "2026-12-21"
    vendor = [v for v in books.documents("Vendor") if v["Id"] == bill["VendorRef"]["value"]]
    assert vendor
    assert vendor[0]["DisplayName"] == "Taxi Co"


async def test_an_expense_entry_is_paid_from_the_payment_account_or_fails_unmapped(
    uk: Org, books_for: Any
) -> None:
    bank = uk.qbo_id("Account", "Current Account")
    books = await _uk_books(uk, books_for, expense_mode="expense", payment_account_id=bank)
    await books.send(
        "expense.upserted",
        {
            "id": "exp_2",
            "date": "2026-11-21",
            "supplier": {"id": "sup_2", "name": "Office Supplies Co"},
            "category_code": "office",
            "amount": "12.00",
            "amounts_are": "no_tax",
            "currency": "GBP",
            "paid": True,
        },
    )
    await books.push()
    failed = await books.record("expense", "exp_2")
    assert failed.status.value == "failed"
    assert failed.last_error is not None
    assert failed.last_error["code"] == "unmapped_expense_category"

    await books.configure(default_expense_account_id=uk.qbo_id("Account", "Office Expenses"))
    retried = await books.org.post("sync/records/expense/exp_2/retry", {})
    assert retried.status_code == 202, retried.text
    await books.push()
    record = await books.record("expense", "exp_2")
    assert record.status.value == "synced", record.last_error
    purchase = books.documents("Purchase")[0]
    assert purchase["AccountRef"]["value"] == bank
    assert purchase["PaymentType"] == "Cash"
    assert purchase["EntityRef"]["value"] == uk.qbo_id("Vendor", "Office Supplies Co")


async def test_a_deleted_client_makes_its_customer_inactive_unless_it_owes_money(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("client.upserted", {"id": "cl_new", "name": "Fresh Start Ltd"})
    await books.send("client.upserted", {"id": "cl_owes", "name": "Owes Money Ltd"})
    await books.send(
        "invoice.upserted", ten_pounds("inv_o", {"id": "cl_owes", "name": "Owes Money Ltd"})
    )
    await books.push()
    customers = {c["DisplayName"]: c for c in books.documents("Customer")}
    assert "Fresh Start Ltd" in customers
    assert (await books.record("client", "cl_new")).status.value == "synced"

    await books.send("client.deleted", {"id": "cl_new"})
    await books.send("client.deleted", {"id": "cl_owes"})
    await books.push()

    customers = {c["Id"]: c for c in books.documents("Customer")}
    fresh = customers[(await books.record("client", "cl_new")).qbo_id or ""]
    assert fresh["Active"] is False
    owes = await books.record("client", "cl_owes")
    assert owes.status.value == "failed"
    assert owes.last_error is not None
    assert "balance" in owes.last_error["message"].lower(), "QuickBooks' reason"


async def test_a_created_customer_takes_a_stable_suffix_where_a_vendor_holds_its_name(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send(
        "client.upserted", {"id": "cl_osc", "name": "Office Supplies Co", "email": "o@s.test"}
    )
    await books.push()
    record = await books.record("client", "cl_osc")
    assert record.status.value == "synced", record.last_error
    customer = next(c for c in books.documents("Customer") if c["Id"] == record.qbo_id)
    assert customer["DisplayName"] == "Office Supplies Co (cl_osc)"
    assert "cl_osc" in customer["Notes"], "qbsync's marker names the client"
