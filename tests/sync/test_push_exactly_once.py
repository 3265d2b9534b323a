"""Nothing posted twice, nothing lost: lost answers (R3), QuickBooks storms (R8), disconnects
and company switches (R12), and backlogs through the batch endpoint."""

from __future__ import annotations

import time
from typing import Any

from qbsync.simulator.faults import FaultSpec
from tests.connections.conftest import UK_REALM, US_REALM, Consent
from tests.mappings.conftest import Org, org, settings, uk, us
from tests.mappings.previews import ACME, invoice_of, line_of, ten_pounds
from tests.sync.pushing import Books, books_for, make_due, uk_books

__all__ = ["books_for", "org", "settings", "uk", "us"]

BIRDS = {"id": "cl_birds", "name": "Amy's Bird Sanctuary", "email": "birds@intuit.test"}


async def _us_books(us: Org, books_for: Any) -> Books:
    books: Books = books_for(us)
    await books.configure(
        invoice_auto_push=True, default_income_account_id=us.qbo_id("Account", "Services")
    )
    await books.map("services/svc_consulting", {"qbo_id": us.qbo_id("Item", "Hours")})
    return books


def _us_invoice(invoice_id: str) -> dict[str, Any]:
    return invoice_of(
        invoice_id,
        BIRDS,
        [line_of("40.00", tax=None)],
        subtotal="40.00",
        tax_total="0.00",
        total="40.00",
        currency="USD",
    )


async def test_a_create_whose_answer_is_lost_is_replayed_by_its_requestid(
    uk: Org, books_for: Any
) -> None:
    """R3: QuickBooks commits, the connection drops; the resend gets the first answer."""
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$"))
    await books.send("invoice.upserted", ten_pounds("inv_1", ACME))
    await books.push()

    record = await books.record("invoice", "inv_1")
    assert record.status.value == "synced", record.last_error
    assert len(books.documents("Invoice")) == 1
    assert record.qbo_id == books.documents("Invoice")[0]["Id"]


async def test_a_lost_create_is_looked_up_before_any_new_create_when_the_id_is_forgotten(
    us: Org, books_for: Any
) -> None:
    """R3: the answer is lost every time, then Intuit forgets the requestid; the next attempt
    finds the invoice by customer and date and qbsync's marker (the US company sets its own
    numbers, so there is no DocNumber to find it by) and never creates a second one."""
    books = await _us_books(us, books_for)
    us.simulator.admin.inject(FaultSpec(kind="reset", method="POST", path="/invoice$", times=3))
    await books.send("invoice.upserted", _us_invoice("inv_lost"))
    await books.push()

    waiting = await books.record("invoice", "inv_lost")
    assert waiting.status.value == "pending"
    assert waiting.write_started_at is not None, "the write in flight is remembered"
    assert len(books.documents("Invoice")) == 1, "QuickBooks committed the first send"
    us.simulator.admin.forget_requestids(us.realm_id)

    await make_due(books)
    await books.push()

    record = await books.record("invoice", "inv_lost")
    assert record.status.value == "synced", record.last_error
    invoices = books.documents("Invoice")
    assert len(invoices) == 1, "found again, not created twice"
    assert record.qbo_id == invoices[0]["Id"]
    assert record.write_started_at is None


async def test_a_throttling_storm_defers_the_job_instead_of_sleeping_and_then_completes(
    uk: Org, books_for: Any
) -> None:
    """R8: 429s for every write; the job is deferred by the wait QuickBooks asks for (60 s by
    Intuit's guidance), no worker sleeps through it, and the invoice lands once afterwards."""
    books = await uk_books(uk, books_for)
    uk.simulator.admin.inject(FaultSpec(kind="throttle", method="POST", times=1000))
    await books.send("invoice.upserted", ten_pounds("inv_busy", ACME))
    started = time.monotonic()
    await books.push()
    assert time.monotonic() - started < 30, "the worker did not sit out the storm"

    record = await books.record("invoice", "inv_busy")
    assert record.status.value == "pending"
    assert record.last_error is not None
    assert record.last_error["code"] == "quickbooks_busy"
    assert record.next_attempt_at is not None
    queued = await books.redis.zrange(books.settings.redis.queue_name, 0, -1, withscores=True)
    pushes = [score for job, score in queued if not job.startswith(b"deliver_outbound_event")]
    assert pushes, "the push job waits in the queue"
    assert min(pushes) / 1000 > time.time() + 30, "deferred by QuickBooks' wait, not dropped"

    uk.simulator.admin.clear_faults()
    await make_due(books)
    await books.push()
    record = await books.record("invoice", "inv_busy")
    assert record.status.value == "synced", record.last_error
    assert len(books.documents("Invoice")) == 1


async def test_a_backlog_goes_through_the_batch_endpoint_thirty_at_a_time(
    uk: Org, books_for: Any
) -> None:
    books = await uk_books(uk, books_for)
    events = [
        {
            "id": f"evt_b{n}",
            "type": "invoice.upserted",
            "organization_id": "org_1",
            "occurred_at": "2026-11-20T10:00:00+00:00",
            "data": ten_pounds(f"inv_{n:03}", ACME),
        }
        for n in range(65)
    ]
    response = await books.post_raw(events)
    assert response.status_code == 202, response.text
    await books.push()

    assert len(books.documents("Invoice")) == 65
    assert books.requests("POST batch") == 3, "30 + 30 + 5"
    assert books.requests("POST invoice") == 0
    for n in (0, 31, 64):
        assert (await books.record("invoice", f"inv_{n:03}")).status.value == "synced"


async def test_disconnected_work_is_held_and_resumes_on_reconnect_to_the_same_company(
    uk: Org, books_for: Any, consent: Consent
) -> None:
    """R12: held, not failed, while disconnected; reconnecting resumes it, mappings intact."""
    books = await uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_h", ACME))
    await books.push()
    first = await books.record("invoice", "inv_h")
    assert first.status.value == "synced"

    gone = await uk.delete("connection")
    assert gone.status_code in (200, 202, 204), gone.text
    later = ten_pounds("inv_h", ACME)
    later["due_date"] = "2027-01-10"
    await books.send("invoice.upserted", later)
    await books.send("invoice.upserted", ten_pounds("inv_h2", ACME))
    await books.push()
    for platform_id in ("inv_h", "inv_h2"):
        assert (await books.record("invoice", platform_id)).status.value == "held"

    await consent.connect("org_1", UK_REALM)
    await books.push()

    updated = await books.record("invoice", "inv_h")
    assert updated.status.value == "synced", updated.last_error
    assert updated.qbo_id == first.qbo_id, "updated in place, not created again"
    assert (await books.record("invoice", "inv_h2")).status.value == "synced"
    invoices = {row["Id"]: row for row in books.documents("Invoice")}
    assert len(invoices) == 2
    assert invoices[first.qbo_id or ""]["DueDate"] == "2027-01-10"


async def test_a_switch_to_another_company_never_sends_it_the_old_companys_ids(
    uk: Org, books_for: Any, consent: Consent
) -> None:
    """R12: pushed to the UK company, then the org connects the US one: a later change of the
    invoice is created afresh there, with US customers and items only."""
    books = await uk_books(uk, books_for)
    await books.send("invoice.upserted", ten_pounds("inv_s", BIRDS))
    await books.push()
    in_uk = await books.record("invoice", "inv_s")
    assert in_uk.status.value == "synced"
    uk_invoice = books.documents("Invoice")[0]

    await consent.connect("org_1", US_REALM)
    uk.realm_id = US_REALM
    us_books = await _us_books(uk, books_for)
    await us_books.send("invoice.upserted", _us_invoice("inv_s"))
    await us_books.push()

    record = await us_books.record("invoice", "inv_s")
    assert record.status.value == "synced", (record.status, record.last_error, record.version)
    assert record.realm_id == US_REALM
    us_invoices = us_books.documents("Invoice")
    assert len(us_invoices) == 1
    assert us_invoices[0]["Id"] == record.qbo_id
    us_customers = {c["Id"] for c in us_books.documents("Customer")}
    assert us_invoices[0]["CustomerRef"]["value"] in us_customers
    assert us_invoices[0]["CustomerRef"]["value"] == uk.qbo_id("Customer", "Amy's Bird Sanctuary")
    assert (
        uk_invoice["Id"] != record.qbo_id
        or uk_invoice["CustomerRef"] != us_invoices[0]["CustomerRef"]
    )
    uk.realm_id = UK_REALM
    assert len(books.documents("Invoice")) == 1, "the UK invoice is left as it was"


async def test_one_companys_backlog_never_holds_another_companys_invoice_behind_it(
    uk: Org, books_for: Any, consent: Consent, make_token: Any
) -> None:
    """Round robin: org_1 has a backlog of 90 invoices; org_2's one invoice is pushed after at
    most one slice of it (one scheduling tick), not after all of it."""
    busy = await uk_books(uk, books_for)
    backlog = [
        {
            "id": f"evt_q{n}",
            "type": "invoice.upserted",
            "organization_id": "org_1",
            "occurred_at": "2026-11-20T10:00:00+00:00",
            "data": ten_pounds(f"inv_q{n:03}", ACME),
        }
        for n in range(90)
    ]
    assert (await busy.post_raw(backlog)).status_code == 202
    await consent.connect("org_2", US_REALM)
    other = Org(uk.client, make_token("org_2"), uk.simulator, US_REALM)
    quiet: Books = books_for(other)
    quiet.org_id = "org_2"
    await quiet.configure(
        invoice_auto_push=True, default_income_account_id=other.qbo_id("Account", "Services")
    )
    await quiet.map("services/svc_consulting", {"qbo_id": other.qbo_id("Item", "Hours")})
    await quiet.send("invoice.upserted", _us_invoice("inv_single"))
    await busy.push()

    single = await quiet.record("invoice", "inv_single")
    assert single.status.value == "synced", single.last_error
    assert single.synced_at is not None
    synced_before = 0
    for n in range(90):
        record = await busy.record("invoice", f"inv_q{n:03}")
        assert record.status.value == "synced"
        assert record.synced_at is not None
        synced_before += record.synced_at < single.synced_at
    assert synced_before <= 30, f"{synced_before} of the backlog went first"


async def test_a_slice_refused_by_the_full_limiter_is_known_unsent_and_soon_tried_again(
    uk: Org, books_for: Any
) -> None:
    """qbsync's own share of the company's limits is full (one batch a minute here): the
    second slice waits briefly, gives up, and is tried again when the limiter's window frees,
    a minute after the first batch, not sooner (it would only be refused again). Nothing
    reached QuickBooks, so nothing is noted as possibly sent (no search for it later)."""
    books = await uk_books(uk, books_for)
    books.settings.intuit.batch_requests_per_minute = 1
    books.settings.push.slice_size = 2
    books.settings.push.jobs_per_company = 1
    books.settings.push.limiter_wait_seconds = 0.3
    events = [
        {
            "id": f"evt_l{n}",
            "type": "invoice.upserted",
            "organization_id": "org_1",
            "occurred_at": "2026-11-20T10:00:00+00:00",
            "data": ten_pounds(f"inv_l{n}", ACME),
        }
        for n in range(4)
    ]
    assert (await books.post_raw(events)).status_code == 202
    started = time.time()
    await books.push()

    assert books.requests("POST batch") == 1, "one batch within the limit"
    statuses = {}
    for n in range(4):
        record = await books.record("invoice", f"inv_l{n}")
        statuses[record.platform_id] = record.status.value
        if record.status.value == "pending":
            assert record.write_started_at is None, "refused before sending: not in doubt"
            assert record.last_error is not None
            assert record.last_error["code"] == "quickbooks_busy"
            assert record.next_attempt_at is not None
            retry_at = record.next_attempt_at.timestamp()
            assert started + 50 < retry_at < time.time() + 61, "when the window frees"
    assert sorted(statuses.values()) == ["pending", "pending", "synced", "synced"], statuses
