"""`POST …/retry` pushes the record now, even one waiting out QuickBooks' storm."""

from __future__ import annotations

from typing import Any

from qbsync.simulator.faults import FaultSpec
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, ten_pounds
from tests.sync.pushing import books_for, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]


async def test_retry_of_a_deferred_record_pushes_it_now(uk: Org, books_for: Any) -> None:
    """A 503 storm defers the invoice (pending, next_attempt_at in a minute). The storm ends
    and the user presses retry: the push job runs and pushes the record at once."""
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(
        FaultSpec(kind="error", status_code=503, method="POST", path="/invoice$", times=3)
    )
    await books.send("invoice.upserted", ten_pounds("inv_r", ACME))
    await books.push()
    waiting = await books.record("invoice", "inv_r")
    assert waiting.status.value == "pending"
    assert waiting.next_attempt_at is not None

    uk.simulator.admin.clear_faults()
    answer = await uk.post("sync/records/invoice/inv_r/retry", {})
    assert answer.status_code == 202, answer.text
    await books.push()
    record = await books.record("invoice", "inv_r")
    assert record.status.value == "synced", (record.status, record.next_attempt_at)
