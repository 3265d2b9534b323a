"""A payment pushed in the same slice as its invoice follows it at once."""

from __future__ import annotations

from typing import Any

from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, ten_pounds
from tests.sync.pushing import books_for, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]

PAIRS = 6


async def test_payments_pushed_with_their_invoice_are_not_left_waiting_five_minutes(
    uk: Org, books_for: Any
) -> None:
    """Invoices and their payments arrive together and are claimed in one slice. Each payment
    is planned while its invoice is still being pushed, so it waits; the invoices' settle wakes
    it after every outcome of the slice is stored (in any record order), and it follows at
    once instead of five minutes later. Several pairs, so record order varies."""
    books = await uk_books(uk, books_for)
    events = []
    for n in range(PAIRS):
        events.append(
            {
                "id": f"evt_i{n}",
                "type": "invoice.upserted",
                "organization_id": "org_1",
                "occurred_at": "2026-11-20T10:00:00+00:00",
                "data": ten_pounds(f"inv_p{n}", ACME),
            }
        )
        events.append(
            {
                "id": f"evt_p{n}",
                "type": "payment.recorded",
                "organization_id": "org_1",
                "occurred_at": "2026-11-20T10:00:01+00:00",
                "data": {
                    "id": f"pay_p{n}",
                    "invoice_id": f"inv_p{n}",
                    "amount": "5.00",
                    "date": "2026-11-25",
                    "currency": "GBP",
                },
            }
        )
    response = await books.post_raw(events)
    assert response.status_code == 202, response.text
    await books.push()

    for n in range(PAIRS):
        assert (await books.record("invoice", f"inv_p{n}")).status.value == "synced"
    left = []
    for n in range(PAIRS):
        payment = await books.record("payment", f"pay_p{n}")
        if payment.status.value != "synced":
            left.append((payment.platform_id, payment.status.value, payment.next_attempt_at))
    assert not left, f"invoices synced, payments left waiting: {left}"
