"""R9: observations of an invoice applied in any order, any number of times, leave the state
(and the last thing the platform was told) that applying them once in QuickBooks' order does."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from arq.connections import ArqRedis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from qbsync.db import Database
from qbsync.mappings.company import Company
from qbsync.models import ConnectionStatus, OutboundEvent, RecordKind, RecordStatus, SyncRecord
from qbsync.qbo import QboClient
from qbsync.qbo.entities import Invoice, Payment
from qbsync.queue import JobQueue
from qbsync.settings import Settings
from qbsync.sync.payment_status import InvoiceState, derive
from qbsync.sync.pull import PullContext, store_states

REALM = "9341450000000009"
TOTAL = Decimal("100.00")
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class History:
    """What QuickBooks went through, as the observations a read at each step would give."""

    states: list[InvoiceState]
    # Which observations arrive, in arrival order (indexes into `states`, repeats allowed).
    arrivals: list[int]


def _history(steps: list[tuple[str, int]], repeats: list[int], rnd: random.Random) -> History:
    payments: dict[str, Payment] = {}
    invoice_token = 0
    states: list[InvoiceState] = []
    for number, (action, amount) in enumerate(steps):
        at = START + timedelta(seconds=number)
        if action == "pay" or not payments:
            paid = sum(
                (line.amount or Decimal(0) for p in payments.values() for line in p.line or []),
                Decimal(0),
            )
            applied = min(Decimal(amount), TOTAL - paid)
            if applied <= 0:
                continue
            payment_id = str(500 + number)
            payments[payment_id] = _payment(payment_id, applied, at, 0)
        elif action == "edit":
            payment_id = sorted(payments)[amount % len(payments)]
            old = payments[payment_id]
            payments[payment_id] = old.model_copy(
                update={
                    "payment_ref_num": f"ref-{number}",
                    "sync_token": str(int(old.sync_token or 0) + 1),
                }
            )
            states.append(derive(_invoice(payments, invoice_token, at), payments, "GBP"))
            continue
        else:
            payments.pop(sorted(payments)[amount % len(payments)])
        invoice_token += 1
        states.append(derive(_invoice(payments, invoice_token, at), payments, "GBP"))
    # Every observation arrives at least once, some again, all shuffled.
    arrivals = list(range(len(states))) + [r % len(states) for r in repeats if states]
    rnd.shuffle(arrivals)
    return History(states, arrivals)


def _payment(payment_id: str, amount: Decimal, at: datetime, token: int) -> Payment:
    return Payment.model_validate(
        {
            "Id": payment_id,
            "SyncToken": str(token),
            "TotalAmt": str(amount),
            "TxnDate": at.date().isoformat(),
            "MetaData": {"LastUpdatedTime": at.isoformat()},
            "Line": [{"Amount": str(amount), "LinkedTxn": [{"TxnId": "77", "TxnType": "Invoice"}]}],
        }
    )


def _invoice(payments: dict[str, Payment], token: int, at: datetime) -> Invoice:
    paid = sum(
        (line.amount or Decimal(0) for p in payments.values() for line in p.line or []), Decimal(0)
    )
    return Invoice.model_validate(
        {
            "Id": "77",
            "SyncToken": str(token),
            "TotalAmt": str(TOTAL),
            "Balance": str(TOTAL - paid),
            "MetaData": {"LastUpdatedTime": at.isoformat()},
            "LinkedTxn": [{"TxnId": pid, "TxnType": "Payment"} for pid in sorted(payments)],
        }
    )


STEPS = st.lists(
    st.tuples(st.sampled_from(["pay", "pay", "delete", "edit"]), st.integers(1, 60)),
    min_size=1,
    max_size=8,
)


async def test_shuffled_and_duplicated_observations_end_as_applied_in_order(
    db: Database, redis: ArqRedis, settings: Settings
) -> None:
    """R9 (property, hypothesis): the final stored state and the last payment_updated sent are
    those of QuickBooks' last state, whatever the arrival order and duplicates."""
    histories: list[History] = []

    @hypothesis_settings(max_examples=60, database=None, deadline=None)
    @given(STEPS, st.lists(st.integers(0, 50), max_size=8), st.randoms(use_true_random=False))
    def collect(steps: list[tuple[str, int]], repeats: list[int], rnd: random.Random) -> None:
        histories.append(_history(steps, repeats, rnd))

    collect()
    queue = JobQueue(redis, settings.redis.queue_name)
    for history in histories:
        if not history.states:
            continue
        org_id = f"org_{uuid.uuid4().hex[:10]}"
        pull = await _pull(db, queue, org_id)
        for index in history.arrivals:
            await store_states(pull, [history.states[index]])
        final = history.states[-1]
        record, events = await _outcome(db, org_id)
        assert record.payment_state is not None
        assert {k: v for k, v in record.payment_state.items() if k != "as_of"} == {
            k: v for k, v in final.document().items() if k != "as_of"
        }, history
        if not events:
            assert final.same_as(None), history
            continue
        last = events[-1]
        document = final.document()
        assert (last["status"], last["balance"], last["amount_paid"]) == (
            final.status,
            document["balance"],
            document["amount_paid"],
        ), history
        assert last["payments"] == [
            {**payment, "platform_payment_id": None} for payment in document["payments"]
        ], history
        # Each event told something new: never the same state twice in a row.
        statuses = [(e["status"], e["balance"], e["payments"]) for e in events]
        assert all(a != b for a, b in itertools.pairwise(statuses)), history


async def _pull(db: Database, queue: JobQueue, org_id: str) -> PullContext:
    company = Company(
        connection_id=uuid.uuid4(),
        org_id=org_id,
        realm_id=REALM,
        status=ConnectionStatus.CONNECTED,
        company_name="Property Ltd",
        country="GB",
        home_currency="GBP",
        multi_currency=False,
        automated_sales_tax=False,
        custom_txn_numbers=False,
    )
    async with db.sessions() as session:
        session.add(
            SyncRecord(
                org_id=org_id,
                kind=RecordKind.INVOICE,
                platform_id="inv_p",
                snapshot={},
                status=RecordStatus.SYNCED,
                version=1,
                synced_version=1,
                realm_id=REALM,
                qbo_id="77",
            )
        )
        await session.commit()
    # No read happens in store_states: the client is never used.
    return PullContext(db=db, queue=queue, company=company, client=cast(QboClient, None))


async def _outcome(db: Database, org_id: str) -> tuple[SyncRecord, list[dict[str, Any]]]:
    async with db.sessions() as session:
        record = await session.scalar(
            select(SyncRecord)
            .where(SyncRecord.org_id == org_id)
            .execution_options(populate_existing=True)
        )
        events = list(
            await session.scalars(
                select(OutboundEvent)
                .where(OutboundEvent.org_id == org_id)
                .order_by(OutboundEvent.seq)
            )
        )
    assert record is not None
    return record, [event.payload for event in events]
