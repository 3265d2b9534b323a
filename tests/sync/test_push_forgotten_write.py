"""A write whose answer was lost stays remembered until it is resolved, whatever happens to
the record meanwhile (R3)."""

from __future__ import annotations

from typing import Any

from qbsync.simulator.faults import FaultSpec
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import invoice_of, line_of
from tests.sync.pushing import Books, books_for, make_due

__all__ = ["books_for", "org", "settings", "uk", "us"]

BIRDS = {"id": "cl_birds", "name": "Amy's Bird Sanctuary", "email": "birds@intuit.test"}


def _us_invoice(invoice_id: str, currency: str = "USD") -> dict[str, Any]:
    return invoice_of(
        invoice_id,
        BIRDS,
        [line_of("40.00", tax=None)],
        subtotal="40.00",
        tax_total="0.00",
        total="40.00",
        currency=currency,
    )


async def test_a_failed_plan_does_not_forget_a_create_that_may_have_landed(
    us: Org, books_for: Any
) -> None:
    """The create's answer is lost (the invoice exists in QuickBooks). v2 then fails planning
    (currency mismatch); v3 fixes the currency. The US company (no DocNumber to collide on)
    still holds one invoice: the lost create was found before v2 failed."""
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    await books.map("services/svc_consulting", {"qbo_id": us.qbo_id("Item", "Hours")})
    us.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", _us_invoice("inv_w"))
    await books.push()
    assert (await books.record("invoice", "inv_w")).write_started_at is not None
    assert len(books.documents("Invoice")) == 1

    await books.send("invoice.upserted", _us_invoice("inv_w", currency="GBP"))
    await make_due(books)
    await books.push()
    failed = await books.record("invoice", "inv_w")
    assert failed.status.value == "failed", failed.last_error
    forgotten = failed.write_started_at is None

    await books.send("invoice.upserted", _us_invoice("inv_w"))
    await make_due(books)
    await books.push()
    record = await books.record("invoice", "inv_w")
    assert record.status.value == "synced", record.last_error
    count = len(books.documents("Invoice"))
    assert count == 1, f"{count} invoices for one platform invoice (forgotten={forgotten})"


async def test_a_search_quickbooks_could_not_answer_is_asked_again_before_any_create(
    us: Org, books_for: Any
) -> None:
    """The create's answer is lost; on the next attempt the search for it fails too (5xx on
    the query). The write stays noted, so the attempt after that searches again rather than
    create a second invoice (Intuit has forgotten the requestid meanwhile)."""
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    await books.map("services/svc_consulting", {"qbo_id": us.qbo_id("Item", "Hours")})
    us.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", _us_invoice("inv_q"))
    await books.push()
    us.simulator.admin.inject(FaultSpec(kind="error", method="GET", path="/query$", times=50))
    await make_due(books)
    await books.push()
    waiting = await books.record("invoice", "inv_q")
    assert waiting.status.value == "pending"
    assert waiting.write_started_at is not None, "still noted: the search did not answer"

    us.simulator.admin.clear_faults()
    us.simulator.admin.forget_requestids(us.realm_id)
    await make_due(books)
    await books.push()
    record = await books.record("invoice", "inv_q")
    assert record.status.value == "synced", record.last_error
    assert len(books.documents("Invoice")) == 1
