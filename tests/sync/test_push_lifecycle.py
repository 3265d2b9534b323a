"""Later changes of what was pushed (update, void, delete), payments, expenses and clients,
end to end through a real worker and the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from qbsync.simulator.admin import PaymentRequest
from tests.connections.conftest import UK_REALM, US_REALM, Consent
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, invoice_of, line_of, ten_pounds, uk_mapped
from tests.sync.pushing import Books, books_for, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]

_EARLY = datetime(2026, 11, 1, tzinfo=UTC)


BIRDS = {"id": "cl_birds", "name": "Amy's Bird Sanctuary", "email": "birds@intuit.test"}


@dataclass
class Side:
    """One company's side of a test: the UK one (VAT codes) or the US one (TAX/NON)."""

    country: str
    org: Org
    books: Books

    @property
    def uk(self) -> bool:
        return self.country == "GB"

    @property
    def currency(self) -> str:
        return "GBP" if self.uk else "USD"

    def invoice(self, invoice_id: str, price: str = "10.00") -> dict[str, Any]:
        amount = Decimal(price)
        if self.uk:
            tax = (amount * Decimal("0.2")).quantize(Decimal("0.01"))
            return invoice_of(
                invoice_id,
                ACME,
                [line_of(price)],
                subtotal=price,
                tax_total=str(tax),
                total=str(amount + tax),
            )
        return invoice_of(
            invoice_id,
            BIRDS,
            [line_of(price, tax=None)],
            subtotal=price,
            tax_total="0.00",
            total=price,
            currency="USD",
        )

    def expense(self, expense_id: str, **changes: Any) -> dict[str, Any]:
        expense: dict[str, Any] = {
            "id": expense_id,
            "date": "2026-11-21",
            "supplier": {"id": "sup_1", "name": "Taxi Co"},
            "category_code": "travel",
            "description": "Airport",
            "amount": "30.00",
            "amounts_are": "tax_inclusive" if self.uk else "no_tax",
            "currency": self.currency,
            "paid": False,
            "due_date": "2026-12-21",
        }
        if self.uk:
            expense["tax_rate_id"] = "tr_vat20"
        expense.update(changes)
        return expense


@pytest.fixture(params=["GB", "US"])
async def side(request: Any, org: Org, consent: Consent, books_for: Any) -> Side:
    country: str = request.param
    org.realm_id = UK_REALM if country == "GB" else US_REALM
    await consent.connect("org_1", org.realm_id)
    books: Books = books_for(org)
    if country == "GB":
        await uk_mapped(org)
        income = org.qbo_id("Account", "Consulting Income")
    else:
        await books.map("services/svc_consulting", {"qbo_id": org.qbo_id("Item", "Hours")})
        income = org.qbo_id("Account", "Services")
    await books.configure(invoice_auto_push=True, default_income_account_id=income)
    return Side(country, org, books)


async def test_a_change_updates_the_invoice_rereading_once_after_an_edit_in_quickbooks(
    side: Side,
) -> None:
    books = side.books
    await books.send("invoice.upserted", side.invoice("inv_1"))
    await books.push()
    first = await books.record("invoice", "inv_1")
    assert first.status.value == "synced"
    # An accountant touches the invoice in QuickBooks: qbsync's SyncToken is now stale.
    side.org.in_quickbooks("Invoice", {"Id": first.qbo_id, "CustomerMemo": {"value": "Thanks!"}})

    await books.send("invoice.upserted", side.invoice("inv_1", "20.00"))
    await books.push()

    record = await books.record("invoice", "inv_1")
    assert record.status.value == "synced", record.last_error
    assert (record.version, record.synced_version) == (2, 2)
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    total = Decimal("24.00") if side.uk else Decimal("20.00")
    assert Decimal(str(invoices[0]["TotalAmt"])) == total
    assert invoices[0]["CustomerMemo"] == {"value": "Thanks!"}, "a sparse update keeps it"
    assert record.qbo_sync_token == invoices[0]["SyncToken"]
    assert books.requests("GET invoice") == 1, "re-read once after the stale token"


async def test_a_pushed_invoice_keeps_flowing_after_auto_push_is_turned_off(side: Side) -> None:
    books = side.books
    await books.send("invoice.upserted", side.invoice("inv_on"))
    await books.push()
    await books.configure(invoice_auto_push=False)
    await books.send("invoice.upserted", side.invoice("inv_on", "30.00"))
    await books.send("invoice.upserted", side.invoice("inv_new"))
    await books.push()

    assert (await books.record("invoice", "inv_on")).status.value == "synced"
    assert (await books.record("invoice", "inv_new")).status.value == "not_pushed"
    [invoice] = books.documents("Invoice")
    total = Decimal("36.00") if side.uk else Decimal("30.00")
    assert Decimal(str(invoice["TotalAmt"])) == total


async def test_a_snapshot_arriving_late_never_overwrites_what_was_pushed(side: Side) -> None:
    """Version ordering: the platform's older snapshot, delivered after a newer one, is logged
    and never pushed over it."""
    books = side.books
    newer = await books.send("invoice.upserted", side.invoice("inv_o", "20.00"))
    assert newer["accepted"] == 1
    await books.push()
    older = await books.send(
        "invoice.upserted",
        side.invoice("inv_o", "10.00"),
        at=_EARLY,
    )
    assert older["accepted"] == 1, "kept in the event log"
    await books.push()

    record = await books.record("invoice", "inv_o")
    assert record.version == 1
    [invoice] = books.documents("Invoice")
    total = Decimal("24.00") if side.uk else Decimal("20.00")
    assert Decimal(str(invoice["TotalAmt"])) == total
    assert books.requests("POST invoice") == 1


async def test_void_and_delete_reach_quickbooks(side: Side) -> None:
    books = side.books
    await books.send("invoice.upserted", side.invoice("inv_v"))
    await books.send("invoice.upserted", side.invoice("inv_x"))
    await books.push()
    kept = await books.record("invoice", "inv_v")
    voided = side.invoice("inv_v")
    voided["status"] = "void"
    await books.send("invoice.voided", voided)
    await books.send("invoice.deleted", {"id": "inv_x"})
    await books.push()

    invoices = {row["Id"]: row for row in books.documents("Invoice")}
    assert set(invoices) == {kept.qbo_id}, "the deleted one is gone"
    assert Decimal(str(invoices[kept.qbo_id or ""]["TotalAmt"])) == 0
    for platform_id in ("inv_v", "inv_x"):
        record = await books.record("invoice", platform_id)
        assert record.status.value == "synced", record.last_error
    assert (await books.record("invoice", "inv_x")).qbo_id is None


async def test_a_delete_quickbooks_refuses_while_payments_are_applied_fails_with_its_reason(
    side: Side,
) -> None:
    books = side.books
    await books.send("invoice.upserted", side.invoice("inv_p"))
    await books.push()
    record = await books.record("invoice", "inv_p")
    assert record.qbo_id is not None
    side.org.simulator.admin.record_payment(
        side.org.realm_id, PaymentRequest(invoice_id=record.qbo_id, amount=Decimal("5.00"))
    )
    await books.send("invoice.deleted", {"id": "inv_p"})
    await books.push()

    record = await books.record("invoice", "inv_p")
    assert record.status.value == "failed"
    assert record.last_error is not None
    assert "payment" in record.last_error["message"].lower()
    assert record.last_error["fault"]["code"] is not None
    assert len(books.documents("Invoice")) == 1


async def test_a_payment_waits_for_its_invoice_then_is_linked_to_it(side: Side) -> None:
    books = side.books
    await books.send(
        "payment.recorded",
        {
            "id": "pay_1",
            "invoice_id": "inv_1",
            "amount": "5.00",
            "date": "2026-11-25",
            "method": "bank transfer",
            "reference": "REF-1",
            "currency": side.currency,
        },
    )
    await books.push()
    waiting = await books.record("payment", "pay_1")
    assert waiting.status.value == "pending"
    assert waiting.last_error is not None
    assert waiting.last_error["code"] == "waiting_for_invoice"
    assert books.documents("Payment") == []

    await books.send("invoice.upserted", side.invoice("inv_1"))
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
    total = Decimal("12.00") if side.uk else Decimal("10.00")
    assert Decimal(str(paid["Balance"])) == total - Decimal("5.00")

    await books.send("payment.deleted", {"id": "pay_1"})
    await books.push()
    assert books.documents("Payment") == []
    assert (await books.record("payment", "pay_1")).status.value == "synced"


async def test_an_expense_becomes_a_bill_with_a_new_vendor_on_the_mapped_account(
    side: Side,
) -> None:
    books = side.books
    travel = side.org.qbo_id("Account", "Travel")
    await books.map("expense-categories/travel", {"qbo_id": travel})
    await books.send("expense.upserted", side.expense("exp_1"))
    await books.push()

    record = await books.record("expense", "exp_1")
    assert record.status.value == "synced", record.last_error
    [bill] = books.documents("Bill")
    line = bill["Line"][0]["AccountBasedExpenseLineDetail"]
    assert line["AccountRef"]["value"] == travel
    if side.uk:
        assert line["TaxCodeRef"]["value"] == "3"
        assert bill["GlobalTaxCalculation"] == "TaxInclusive"
    else:
        assert "GlobalTaxCalculation" not in bill
    assert bill["DueDate"] == "2026-12-21"
    vendor = [v for v in books.documents("Vendor") if v["Id"] == bill["VendorRef"]["value"]]
    assert vendor
    assert vendor[0]["DisplayName"] == "Taxi Co"

    await books.send("expense.upserted", side.expense("exp_1", amount="45.00"))
    await books.send("expense.deleted", {"id": "exp_1"})
    await books.push()
    assert books.documents("Bill") == [], "deleted after its last change"


async def test_an_expense_entry_is_paid_from_the_payment_account_or_fails_unmapped(
    side: Side,
) -> None:
    bank = side.org.qbo_id("Account", "Current Account" if side.uk else "Checking")
    books = side.books
    await books.configure(expense_mode="expense", payment_account_id=bank)
    await books.send(
        "expense.upserted", side.expense("exp_2", category_code="office", amounts_are="no_tax")
    )
    await books.push()
    failed = await books.record("expense", "exp_2")
    assert failed.status.value == "failed"
    assert failed.last_error is not None
    assert failed.last_error["code"] == "unmapped_expense_category"

    await books.configure(default_expense_account_id=side.org.qbo_id("Account", "Office Expenses"))
    retried = await books.org.post("sync/records/expense/exp_2/retry", {})
    assert retried.status_code == 202, retried.text
    await books.push()
    record = await books.record("expense", "exp_2")
    assert record.status.value == "synced", record.last_error
    [purchase] = books.documents("Purchase")
    assert purchase["AccountRef"]["value"] == bank
    assert purchase["PaymentType"] == "Cash"
    assert Decimal(str(purchase["TotalAmt"])) == Decimal("30.00")


async def test_a_deleted_client_makes_its_customer_inactive_unless_it_owes_money(
    uk: Org, books_for: Any
) -> None:
    books = await uk_books(uk, books_for)
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
    books = await uk_books(uk, books_for)
    await books.send(
        "client.upserted", {"id": "cl_osc", "name": "Office Supplies Co", "email": "o@s.test"}
    )
    await books.push()
    record = await books.record("client", "cl_osc")
    assert record.status.value == "synced", record.last_error
    customer = next(c for c in books.documents("Customer") if c["Id"] == record.qbo_id)
    assert customer["DisplayName"] == "Office Supplies Co (cl_osc)"
    assert "cl_osc" in customer["Notes"], "qbsync's marker names the client"


async def test_a_void_of_an_invoice_already_voided_in_quickbooks_ends_synced(side: Side) -> None:
    """An accountant voided it first (or a void of ours lost its answer): QuickBooks refuses
    to change a voided invoice, and the record is in step anyway."""
    books = side.books
    await books.send("invoice.upserted", side.invoice("inv_av"))
    await books.push()
    record = await books.record("invoice", "inv_av")
    assert record.qbo_id is not None
    side.org.simulator.admin.void_invoice(side.org.realm_id, record.qbo_id)
    voided = side.invoice("inv_av")
    voided["status"] = "void"
    await books.send("invoice.voided", voided)
    await books.push()

    record = await books.record("invoice", "inv_av")
    assert record.status.value == "synced", record.last_error
    [invoice] = books.documents("Invoice")
    assert Decimal(str(invoice["TotalAmt"])) == 0
