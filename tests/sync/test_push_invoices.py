"""Invoices pushed end to end: platform events in over HTTP, a real arq worker, the simulator
playing QuickBooks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, invoice_of, line_of, ten_pounds
from tests.sync.pushing import Books, books_for, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]


async def _uk_books(uk: Org, books_for: Any, **settings: Any) -> Books:
    books = await uk_books(uk, books_for, **settings)
    await books.send("tax_rate.upserted", {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"})
    return books


def _consulting_and_audit(invoice_id: str) -> dict[str, Any]:
    """10.00 of mapped consulting and 50.00 of audit (not mapped), both at 20 % VAT."""
    return invoice_of(
        invoice_id,
        ACME,
        [line_of("10.00"), line_of("50.00", service="svc_audit")],
        subtotal="60.00",
        tax_total="12.00",
        total="72.00",
    )


async def test_a_uk_invoice_with_a_mapped_and_an_unmapped_service_lands_once(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send(
        "service.upserted",
        {"id": "svc_audit", "name": "Audit", "description": "Yearly audit", "unit_price": "50.00"},
    )
    invoice = _consulting_and_audit("inv_1")
    await books.send("invoice.upserted", invoice)
    await books.push()

    record = await books.record("invoice", "inv_1")
    assert record.status.value == "synced", record.last_error
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    pushed = invoices[0]
    assert pushed["DocNumber"] == "INV-inv_1"
    assert Decimal(str(pushed["TotalAmt"])) == Decimal("72.00")
    assert pushed["GlobalTaxCalculation"] == "TaxExcluded"
    assert pushed["CustomerRef"]["value"] == uk.qbo_id("Customer", "Acme Ltd"), "matched by email"
    items = [line["SalesItemLineDetail"]["ItemRef"]["value"] for line in pushed["Line"][:2]]
    assert items[0] == uk.qbo_id("Item", "Consulting")
    assert items[1] == uk.qbo_id("Item", "Audit"), "an item created for the unmapped service"
    assert record.qbo_id == pushed["Id"]
    assert record.qbo_doc_number == "INV-inv_1"
    assert record.warnings == []

    mapping = await uk.get("mappings/services")
    audit = [m for m in mapping.json()["items"] if m["platform_id"] == "svc_audit"]
    assert audit
    assert audit[0]["source"] == "created"
    synced = await books.events_out("quickbooks.record.synced")
    assert [e["platform_id"] for e in synced] == ["inv_1"]
    assert synced[0]["qbo_id"] == pushed["Id"]
    assert synced[0]["qbo_doc_number"] == "INV-inv_1"


async def test_a_us_invoice_sends_tax_flags_and_the_platform_tax_total(
    us: Org, books_for: Any
) -> None:
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    await books.map("services/svc_design", {"qbo_id": us.qbo_id("Item", "Design")})
    await books.map("tax-rates/tr_ca", {"qbo_id": "TAX"})
    invoice = invoice_of(
        "inv_us",
        {"id": "cl_birds", "name": "Amy's Bird Sanctuary", "email": "birds@intuit.test"},
        [
            line_of("100.00", service="svc_design", tax="tr_ca"),
            line_of("50.00", service="svc_design", tax=None),
        ],
        subtotal="150.00",
        tax_total="8.25",
        total="158.25",
        currency="USD",
    )
    await books.send("invoice.upserted", invoice)
    await books.push()

    record = await books.record("invoice", "inv_us")
    assert record.status.value == "synced", record.last_error
    pushed = books.documents("Invoice")[0]
    codes = [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in pushed["Line"][:2]]
    assert codes == ["TAX", "NON"]
    assert Decimal(str(pushed["TxnTaxDetail"]["TotalTax"])) == Decimal("8.25")
    assert Decimal(str(pushed["TotalAmt"])) == Decimal("158.25")
    assert "GlobalTaxCalculation" not in pushed
    assert "DocNumber" in pushed, "the US company numbers invoices itself"
    assert record.qbo_doc_number == pushed["DocNumber"]


async def test_one_event_delivered_ten_times_writes_once(uk: Org, books_for: Any) -> None:
    """R2: ten deliveries of one event → one outbox change, one QuickBooks write."""
    books = await _uk_books(uk, books_for)
    body = {
        "id": "evt_once",
        "type": "invoice.upserted",
        "organization_id": "org_1",
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "data": ten_pounds("inv_r2", ACME),
    }
    for _ in range(10):
        response = await books.post_raw(body)
        assert response.status_code == 202, response.text
    await books.push()
    await books.push()

    assert len(books.documents("Invoice")) == 1
    assert books.requests("POST invoice") == 1
    record = await books.record("invoice", "inv_r2")
    assert (record.version, record.status.value) == (1, "synced")


async def _failed(books: Books, platform_id: str, code: str) -> dict[str, Any]:
    record = await books.record("invoice", platform_id)
    assert record.status.value == "failed", (record.status, record.last_error)
    assert record.last_error is not None
    assert record.last_error["code"] == code, record.last_error
    failed = [
        e
        for e in await books.events_out("quickbooks.record.failed")
        if e["platform_id"] == platform_id
    ]
    assert failed
    assert failed[-1]["code"] == code
    assert failed[-1]["message"] == record.last_error["message"]
    return record.last_error


async def test_an_unmapped_service_without_a_default_income_account_fails(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for, default_income_account_id=None)
    await books.send("invoice.upserted", ten_pounds("inv_u", ACME, service="svc_new"))
    await books.push()
    error = await _failed(books, "inv_u", "unmapped_service")
    assert "svc_new" in error["message"]
    assert "default income account" in error["message"]
    assert books.documents("Invoice") == []


async def test_an_unmapped_tax_rate_fails_on_a_vat_company(uk: Org, books_for: Any) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_t", ACME, tax="tr_unknown"))
    await books.push()
    error = await _failed(books, "inv_t", "unmapped_tax_rate")
    assert "tr_unknown" in error["message"]
    assert books.documents("Invoice") == []


async def test_a_number_another_invoice_holds_fails_naming_it(uk: Org, books_for: Any) -> None:
    books = await _uk_books(uk, books_for)
    acme = uk.qbo_id("Customer", "Acme Ltd")
    consulting = uk.qbo_id("Item", "Consulting")
    theirs = uk.in_quickbooks(
        "Invoice",
        {
            "CustomerRef": {"value": acme},
            "DocNumber": "INV-77",
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 5,
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": consulting},
                        "Qty": 1,
                        "UnitPrice": 5,
                        "TaxCodeRef": {"value": "3"},
                    },
                }
            ],
        },
    )
    await books.send("invoice.upserted", ten_pounds("inv_d", ACME, number="INV-77"))
    await books.push()
    error = await _failed(books, "inv_d", "duplicate_doc_number")
    assert "INV-77" in error["message"]
    assert theirs["Id"] in error["message"], "names the invoice holding the number"
    assert error["fault"]["code"] == "6140"
    assert len(books.documents("Invoice")) == 1


async def test_a_currency_the_company_does_not_keep_fails(uk: Org, books_for: Any) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_c", ACME, currency="EUR"))
    await books.push()
    error = await _failed(books, "inv_c", "currency_mismatch")
    assert "EUR" in error["message"]
    assert "GBP" in error["message"]
    assert books.documents("Invoice") == []


async def test_match_only_with_no_match_fails_with_the_candidates(uk: Org, books_for: Any) -> None:
    books = await _uk_books(uk, books_for, customer_sync_mode="match_only")
    client = {"id": "cl_bb", "name": "Brightan Bakers", "email": "new@bakers.test"}
    await books.send("invoice.upserted", ten_pounds("inv_m", client))
    await books.push()
    error = await _failed(books, "inv_m", "customer_not_matched")
    assert "Brighton Bakers Ltd" in error["message"], "the near miss is named"
    assert books.documents("Invoice") == []
    assert len(books.documents("Customer")) == len(list(books.documents("Customer")))


async def test_a_total_quickbooks_computes_differently_is_a_warning(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    invoice = ten_pounds("inv_w", ACME)
    invoice.update(tax_total="2.01", total="12.01")
    await books.send("invoice.upserted", invoice)
    await books.push()
    record = await books.record("invoice", "inv_w")
    assert record.status.value == "synced"
    assert [w["code"] for w in record.warnings] == ["total_differs"]
    assert "12.01" in record.warnings[0]["message"]
    synced = await books.events_out("quickbooks.record.synced")
    assert synced[-1]["warnings"][0]["code"] == "total_differs"


async def test_invoices_wait_as_not_pushed_until_the_settings_or_a_retry_say_so(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for, sync_start_date="2026-11-01")
    await books.configure(invoice_auto_push=False)
    await books.send("invoice.upserted", ten_pounds("inv_off", ACME))
    await books.send("invoice.upserted", ten_pounds("inv_old", ACME, issue_date="2026-10-31"))
    draft = ten_pounds("inv_draft", ACME)
    draft["status"] = "draft"
    await books.send("invoice.upserted", draft)
    await books.push()
    for platform_id, code in (
        ("inv_off", "auto_push_off"),
        ("inv_draft", "draft"),
    ):
        record = await books.record("invoice", platform_id)
        assert record.status.value == "not_pushed"
        assert record.last_error is not None
        assert record.last_error["code"] == code
    await books.configure(invoice_auto_push=True)
    await books.send("invoice.upserted", ten_pounds("inv_old", ACME, issue_date="2026-10-30"))
    await books.push()
    old = await books.record("invoice", "inv_old")
    assert old.status.value == "not_pushed"
    assert old.last_error is not None
    assert old.last_error["code"] == "before_sync_start"
    assert books.documents("Invoice") == []


async def test_a_date_in_a_closed_period_fails_naming_the_closing_date(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    uk.simulator.admin.close_books(uk.realm_id, "2026-11-30")
    await books.send("invoice.upserted", ten_pounds("inv_closed", ACME))
    await books.push()
    error = await _failed(books, "inv_closed", "closed_period")
    assert "closed in QuickBooks through 2026-11-30" in error["message"], "names the date"
    assert "(dated 2026-11-20)" in error["message"]
    assert error["fault"]["code"] == "6210"
    assert books.documents("Invoice") == [], "never a silent change of date"


async def test_a_renamed_service_renames_only_the_item_qbsync_created(
    uk: Org, books_for: Any
) -> None:
    books = await _uk_books(uk, books_for)
    await books.send("service.upserted", {"id": "svc_audit", "name": "Audit"})
    await books.send("service.upserted", {"id": "svc_consulting", "name": "Consulting"})
    invoice = _consulting_and_audit("inv_rn")
    await books.send("invoice.upserted", invoice)
    await books.push()
    created = uk.qbo_id("Item", "Audit")

    await books.send("service.upserted", {"id": "svc_audit", "name": "Audit and review"})
    await books.send("service.upserted", {"id": "svc_consulting", "name": "Advice"})
    await books.push()

    names = {item["Id"]: item["Name"] for item in books.documents("Item")}
    assert names[created] == "Audit and review", "qbsync's own item follows the platform"
    assert names[uk.qbo_id("Item", "Consulting")] == "Consulting", "the accountant's item stays"
    mappings = {m["platform_id"]: m for m in (await uk.get("mappings/services")).json()["items"]}
    assert mappings["svc_audit"]["qbo_name"] == "Audit and review"
