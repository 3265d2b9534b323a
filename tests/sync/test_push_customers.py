"""Customers created by the push, across jobs and lost answers: each client gets one."""

from __future__ import annotations

from typing import Any

from qbsync.reference_cache import ReferenceCache
from qbsync.simulator.faults import FaultSpec
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ten_pounds
from tests.sync.pushing import Books, books_for, make_due, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]

NEWCO = {"id": "cl_newco", "name": "Newco Trading", "email": "hello@newco.test"}
NEWCO_TOO = {"id": "cl_newco2", "name": "Newco Trading", "email": "other@newco2.test"}


def _newco(books: Books) -> list[dict[str, Any]]:
    return [c for c in books.documents("Customer") if "Newco" in c["DisplayName"]]


async def test_a_lost_customer_create_is_not_made_again_once_the_list_is_reread(
    uk: Org, books_for: Any
) -> None:
    """auto_create: the customer's create lands, its answer is lost, and the customer list is
    read afresh before the next attempt. The name now looks held, but the customer carries
    this client's marker: it is adopted, not made again under a suffixed name."""
    books = await uk_books(uk, books_for, customer_sync_mode="auto_create")
    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/customer$", times=3))
    await books.send("invoice.upserted", ten_pounds("inv_c", NEWCO))
    await books.push()
    assert len(_newco(books)) == 1, "QuickBooks committed the first create"
    assert (await books.record("invoice", "inv_c")).status.value == "pending"

    cache = ReferenceCache(
        books.redis,
        key_prefix=books.settings.redis.key_prefix,
        ttl_seconds=books.settings.intuit.reference_cache_seconds,
    )
    await cache.drop(uk.realm_id, "Customer")  # the cached list's TTL ran out
    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_c")
    assert record.status.value == "synced", record.last_error
    names = [c["DisplayName"] for c in _newco(books)]
    assert len(names) == 1, f"one client, customers {names}"


async def test_a_second_client_of_the_same_name_in_a_later_job_gets_its_own_customer(
    uk: Org, books_for: Any
) -> None:
    """Two platform clients share a name, pushed by two jobs. The second job's cached list
    does not know the first customer yet: QuickBooks refuses the bare name (6240) and the
    second client gets its suffixed name, not a failure."""
    books = await uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_a", NEWCO))
    await books.push()
    assert (await books.record("invoice", "inv_a")).status.value == "synced"

    await books.send("invoice.upserted", ten_pounds("inv_b", NEWCO_TOO))
    await books.push()
    record = await books.record("invoice", "inv_b")
    assert record.status.value == "synced", record.last_error
    assert len(_newco(books)) == 2
