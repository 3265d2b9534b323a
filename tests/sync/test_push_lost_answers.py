"""A newer version, a void or a delete arriving after a write whose answer was lost reaches
QuickBooks: the document the lost write made is found and brought up to date (R3)."""

from __future__ import annotations

from typing import Any

from qbsync.simulator.faults import FaultSpec
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, ten_pounds
from tests.sync.pushing import books_for, make_due, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]


def _due(invoice: dict[str, Any], due: str) -> dict[str, Any]:
    invoice["due_date"] = due
    return invoice


async def test_a_newer_version_after_a_lost_create_reaches_quickbooks(
    uk: Org, books_for: Any
) -> None:
    """R3: v1's create lands but every answer is lost; v2 (a new due date) arrives. The next
    push finds v1's document and updates it to v2: QuickBooks holds what the record says."""
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", ten_pounds("inv_v", ACME))
    await books.push()
    waiting = await books.record("invoice", "inv_v")
    assert waiting.status.value == "pending"
    assert waiting.write_started_at is not None
    assert len(books.documents("Invoice")) == 1

    await books.send("invoice.upserted", _due(ten_pounds("inv_v", ACME), "2027-03-31"))
    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_v")
    assert record.status.value == "synced", record.last_error
    assert record.synced_version == record.version == 2
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    assert invoices[0]["DueDate"] == "2027-03-31", (
        "the record says version 2 is in QuickBooks, but QuickBooks holds version 1"
    )


async def test_a_newer_version_after_a_lost_update_reaches_quickbooks(
    uk: Org, books_for: Any
) -> None:
    """R3: v2's update lands but every answer is lost; v3 arrives. v3 goes out under a
    requestid of its own (v2's would have QuickBooks replay v2's answer), so v3 is applied."""
    books = await uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_u", ACME))
    await books.push()
    assert (await books.record("invoice", "inv_u")).status.value == "synced"

    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", _due(ten_pounds("inv_u", ACME), "2027-01-31"))
    await books.push()
    waiting = await books.record("invoice", "inv_u")
    assert waiting.status.value == "pending"
    assert waiting.write_started_at is not None

    await books.send("invoice.upserted", _due(ten_pounds("inv_u", ACME), "2027-03-31"))
    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_u")
    assert record.status.value == "synced", record.last_error
    assert record.synced_version == record.version == 3
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    assert invoices[0]["DueDate"] == "2027-03-31", (
        f"record synced at v3 but QuickBooks holds DueDate {invoices[0]['DueDate']}"
    )


async def test_a_delete_after_a_lost_create_removes_the_invoice_from_quickbooks(
    uk: Org, books_for: Any
) -> None:
    """v1's create lands, its answer lost (no QuickBooks id known). The platform then deletes
    the invoice: the lost document is found first and deleted, not left live."""
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", ten_pounds("inv_d", ACME))
    await books.push()
    assert (await books.record("invoice", "inv_d")).write_started_at is not None
    assert len(books.documents("Invoice")) == 1

    await books.send("invoice.deleted", {"id": "inv_d"})
    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_d")
    assert record.status.value == "synced", record.last_error
    assert books.documents("Invoice") == [], "deleted on the platform, still live in QuickBooks"


async def test_a_void_after_a_lost_create_voids_the_invoice_in_quickbooks(
    uk: Org, books_for: Any
) -> None:
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", ten_pounds("inv_x", ACME))
    await books.push()
    assert (await books.record("invoice", "inv_x")).write_started_at is not None

    voided = ten_pounds("inv_x", ACME)
    voided["status"] = "void"
    await books.send("invoice.voided", voided)
    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_x")
    assert record.status.value == "synced", record.last_error
    invoices = books.documents("Invoice")
    assert len(invoices) == 1
    assert str(invoices[0]["TotalAmt"]) in ("0", "0.0", "0.00"), (
        f"voided on the platform, QuickBooks still holds {invoices[0]['TotalAmt']}"
    )
