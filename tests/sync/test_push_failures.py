"""Each failure code a push can end with, end to end: what the record says, what the platform
is told, and that nothing reached QuickBooks."""

from __future__ import annotations

from typing import Any

from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, invoice_of, line_of, ten_pounds
from tests.sync.pushing import Books, books_for, failed_with, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]


async def test_a_client_two_customers_match_fails_ambiguous(uk: Org, books_for: Any) -> None:
    books = await uk_books(uk, books_for)
    for name in ("Shared Inbox One", "Shared Inbox Two"):
        uk.in_quickbooks(
            "Customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": "ap@shared.test"}}
        )
    client = {"id": "cl_sh", "name": "Shared Ltd", "email": "ap@shared.test"}
    await books.send("invoice.upserted", ten_pounds("inv_a", client))
    await books.push()
    error = await failed_with(books, "invoice", "inv_a", "customer_ambiguous")
    assert "Shared Inbox One" in error["message"]
    assert "Shared Inbox Two" in error["message"]
    assert books.documents("Invoice") == []


async def test_a_number_longer_than_quickbooks_holds_fails(uk: Org, books_for: Any) -> None:
    books = await uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_l", ACME, number="INV-2026-11-0000000042"))
    await books.push()
    error = await failed_with(books, "invoice", "inv_l", "doc_number_too_long")
    assert "21" in error["message"]
    assert books.documents("Invoice") == []


async def test_a_taxed_uk_invoice_line_without_a_rate_fails(uk: Org, books_for: Any) -> None:
    books = await uk_books(uk, books_for)
    invoice = invoice_of(
        "inv_nt",
        ACME,
        [line_of("10.00"), line_of("5.00", tax=None)],
        subtotal="15.00",
        tax_total="2.00",
        total="17.00",
    )
    await books.send("invoice.upserted", invoice)
    await books.push()
    error = await failed_with(books, "invoice", "inv_nt", "untaxed_line_needs_tax_code")
    assert "lines.1" in error["message"]
    assert books.documents("Invoice") == []


async def test_an_unmapped_service_named_like_an_existing_item_fails(
    uk: Org, books_for: Any
) -> None:
    books = await uk_books(uk, books_for)
    await books.send("service.upserted", {"id": "svc_tr", "name": "Training"})
    await books.send("invoice.upserted", ten_pounds("inv_it", ACME, service="svc_tr"))
    await books.push()
    error = await failed_with(books, "invoice", "inv_it", "item_name_taken")
    assert "Training" in error["message"]
    assert books.documents("Invoice") == []


async def test_a_service_mapped_to_an_item_made_inactive_fails(uk: Org, books_for: Any) -> None:
    books = await uk_books(uk, books_for)
    uk.in_quickbooks("Item", {"Id": uk.qbo_id("Item", "Consulting"), "Active": False})
    await books.send("invoice.upserted", ten_pounds("inv_in", ACME))
    await books.push()
    await failed_with(books, "invoice", "inv_in", "mapped_item_unusable")
    assert books.documents("Invoice") == []


async def test_a_tax_inclusive_invoice_on_a_us_company_fails(us: Org, books_for: Any) -> None:
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    invoice = invoice_of(
        "inv_ti",
        {"id": "cl_b", "name": "Cool Cars", "email": "cool_cars@intuit.test"},
        [line_of("10.00", tax=None)],
        subtotal="10.00",
        tax_total="0.00",
        total="10.00",
        currency="USD",
        amounts_are="tax_inclusive",
    )
    await books.send("invoice.upserted", invoice)
    await books.push()
    await failed_with(books, "invoice", "inv_ti", "tax_inclusive_not_supported")
    assert books.documents("Invoice") == []


async def test_an_expense_entry_without_a_payment_account_fails(uk: Org, books_for: Any) -> None:
    books = await uk_books(
        uk,
        books_for,
        expense_mode="expense",
        default_expense_account_id=uk.qbo_id("Account", "Office Expenses"),
    )
    expense = {
        "id": "exp_np",
        "date": "2026-11-21",
        "supplier": {"id": "sup_np", "name": "Northern Rail"},
        "amount": "12.00",
        "amounts_are": "no_tax",
        "currency": "GBP",
        "paid": True,
    }
    await books.send("expense.upserted", expense)
    await books.push()
    error = await failed_with(books, "expense", "exp_np", "no_payment_account")
    assert "payment account" in error["message"]
    assert books.documents("Purchase") == []


async def test_a_payment_for_an_invoice_kept_out_of_quickbooks_fails(
    uk: Org, books_for: Any
) -> None:
    books = await uk_books(uk, books_for, invoice_auto_push=False)
    await books.send("invoice.upserted", ten_pounds("inv_kept", ACME))
    await books.send(
        "payment.recorded",
        {
            "id": "pay_k",
            "invoice_id": "inv_kept",
            "amount": "5.00",
            "date": "2026-11-25",
            "currency": "GBP",
        },
    )
    await books.push()
    error = await failed_with(books, "payment", "pay_k", "invoice_not_in_quickbooks")
    assert "not_pushed" in error["message"]

    # Pushed on purpose, the invoice brings its payment along.
    retried = await uk.post("sync/records/invoice/inv_kept/retry", {})
    assert retried.status_code == 202, retried.text
    await books.push()
    assert (await books.record("payment", "pay_k")).status.value == "synced"
    assert len(books.documents("Payment")) == 1
