"""P5, reconciliation cost: with 10,000 invoices synced to a company and 10 of them changed in
QuickBooks since the last reconciliation, the next reconciliation spends a handful of requests
(target: <= 5), not a read of everything qbsync knows. Compared with reading the 10,000 invoices
naively: 10 queries of 1,000 (Intuit's page), or 10,000 reads by id.

Processes: the simulator (`bench._simulator --seed`), one real arq worker (`bench._worker`,
qbsync's own functions and crons) which runs `reconcile_company`, and this driver, which asks
for each reconciliation through qbsync's API (`POST /v1/quickbooks/sync/reconcile`, in-process)
and watches `cdc_watermarks` until the run has finished.

Set-up, seeded directly for speed rather than pushed through the API (3,600 invoices take P3
about three minutes; 10,000 pushes are not what P5 measures):

* the simulator's UK company gets `--invoices` invoices through its own ledger before it serves
  (the same validation, VAT and numbering as its API; no HTTP, not counted), stamped two days
  back, as if qbsync had pushed them long before the watermark (see `bench/_simulator.py`);
* the org connects by qbsync's real OAuth flow;
* qbsync's `sync_records` get one row per invoice, as a push leaves it: kind invoice, the
  platform's snapshot (`invoice.upserted` data, checked by qbsync's own model), version 1 =
  synced_version 1, status synced, realm_id, qbo_id, SyncToken, DocNumber, qbo_entity Invoice,
  synced two days ago, no payment state yet (a push stores none). No client record or mappings:
  reconciliation reads neither.

Then: one reconciliation sets the watermark (its cost is reported too); `--changes` payments are
recorded in QuickBooks through the simulator's admin API (`POST /_sim/companies/{realm}/
payments`, as the accountant would: every other one pays the invoice in full, the others 5.00
of its 12.00), spread over the invoices; the measured reconciliation runs. Its requests come
from the simulator's stats (`requests_by_realm`, `requests_by_endpoint`, before and after) and
from what qbsync stored for the run (`cdc_watermarks.last_calls`, shown by `GET
/v1/quickbooks/sync/summary` as `last_reconciliation.calls`); its events from `outbound_events`
(`quickbooks.invoice.payment_updated`); each changed invoice's new status from `sync_records`.

`--full-reread` then moves the watermark 31 days back, beyond what CDC reaches, and runs once
more: qbsync's own fallback, re-reading every open invoice it knows, for scale (off by default:
the simulator takes minutes over it, see the option's help).

    python -m bench.p5_reconcile [--invoices 10000] [--changes 10] [--full-reread]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench._simulator import seed_invoice_number
from bench.common import (
    REDIRECT_URI,
    UK_REALM,
    Child,
    QbsyncApi,
    Services,
    bench_settings_values,
    env_of,
    forget_redis_keys,
    invoice_data,
    machine,
    qbsync_in_process,
    scratch_services,
    settings_of,
    simulator_process,
    simulator_stats,
    spawn,
    write_result,
)
from qbsync.mappings.snapshots import InvoiceSnapshot
from qbsync.models import OutboundEvent, RecordKind, RecordStatus, SyncRecord
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.simulator.config import LimitsConfig, SimulatorConfig
from qbsync.sync.pull import PAYMENT_UPDATED

NAME = "p5_reconcile"
ORG = "org_bench_reconcile"
REQUESTS_TARGET = 5
# Intuit's largest query page, and so the fewest requests a naive read of everything takes.
QUERY_PAGE = 1000
SEED_AGE_DAYS = 2.0
PARTIAL = Decimal("5.00")
FULL_REREAD_TIMEOUT = 120.0


# ---------------------------------------------------------------------------------------------
# Set-up


def _read_seed(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _seed_records(engine: AsyncEngine, invoices: list[dict[str, str]]) -> int:
    """One synced invoice record per seeded QuickBooks invoice, as a push leaves it."""
    synced_at = datetime.now(UTC) - timedelta(days=SEED_AGE_DAYS)
    rows: list[dict[str, Any]] = []
    for index, invoice in enumerate(invoices):
        platform_id = f"inv_{index:05d}"
        snapshot = InvoiceSnapshot.model_validate(
            invoice_data(platform_id, seed_invoice_number(index))
        ).model_dump(mode="json")
        rows.append(
            {
                "id": uuid.uuid4(),
                "org_id": ORG,
                "kind": RecordKind.INVOICE,
                "platform_id": platform_id,
                "operation": "upsert",
                "snapshot": snapshot,
                "snapshot_occurred_at": synced_at - timedelta(seconds=1),
                "version": 1,
                "synced_version": 1,
                "status": RecordStatus.SYNCED,
                "attempts": 1,
                "realm_id": UK_REALM,
                "qbo_id": invoice["Id"],
                "qbo_sync_token": invoice["SyncToken"],
                "qbo_doc_number": invoice["DocNumber"],
                "qbo_entity": "Invoice",
                "synced_at": synced_at,
                "warnings": [],
                "created_at": synced_at,
                "updated_at": synced_at,
            }
        )
    async with engine.begin() as connection:
        for start in range(0, len(rows), 1000):
            await connection.execute(insert(SyncRecord), rows[start : start + 1000])
    return len(rows)


def wait_ready(worker: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        if '"bench_worker_ready"' in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker was not ready within {timeout} s:\n{worker.log_tail()}")


# ---------------------------------------------------------------------------------------------
# Measuring


def _realm_requests(stats: dict[str, Any]) -> tuple[int, Counter[str]]:
    endpoints: Counter[str] = Counter(
        {
            endpoint.removeprefix(f"{UK_REALM} "): int(count)
            for endpoint, count in stats["requests_by_endpoint"].items()
            if endpoint.startswith(f"{UK_REALM} ")
        }
    )
    return int(stats["requests_by_realm"].get(UK_REALM, 0)), endpoints


async def watermark_row(engine: AsyncEngine, org_id: str = ORG) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (
            (
                await connection.execute(
                    select(CdcWatermark.__table__).where(CdcWatermark.org_id == org_id)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def _reconcile(
    api: QbsyncApi,
    engine: AsyncEngine,
    simulator_url: str,
    worker: Child,
    limit_seconds: float,
) -> dict[str, Any]:
    """Ask qbsync for a reconciliation, wait for the worker to finish it, and count what it
    spent (the simulator's stats before and after, and what qbsync stored)."""
    before_total, before = _realm_requests(await simulator_stats(simulator_url))
    asked = datetime.now(UTC)
    started = time.perf_counter()
    await api.call("POST", "sync/reconcile", ORG, expect=202)
    deadline = time.monotonic() + limit_seconds
    while True:
        row = await watermark_row(engine)
        finished = row["last_finished_at"] if row else None
        if finished is not None and finished > asked and row and row["lease_until"] is None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no reconciliation finished within {limit_seconds} s: {row}")
        worker.check_alive()
        await asyncio.sleep(0.1)
    waited = time.perf_counter() - started
    after_total, after = _realm_requests(await simulator_stats(simulator_url))
    summary = await api.call("GET", "sync/summary", ORG)
    last = summary["last_reconciliation"]
    by_endpoint = after.copy()
    by_endpoint.subtract(before)
    run_started = row["last_run_at"]
    failed = row["last_error"] is not None
    return {
        # A failed run leaves the mode and what was applied of the run before it (only its
        # calls and error are stored): not this run's.
        "mode": None if failed else row["last_mode"],
        "error": row["last_error"],
        "requests": after_total - before_total,
        "requests_by_endpoint": {key: n for key, n in sorted(by_endpoint.items()) if n},
        "calls": last["calls"],
        "calls_stored": row["last_calls"],
        "applied": None if failed else last["applied"],
        "run_seconds": round((row["last_finished_at"] - run_started).total_seconds(), 3)
        if run_started
        else None,
        "asked_to_finished_seconds": round(waited, 3),
        "asked_at": asked.isoformat(),
        "watermark": last["changes_read_up_to"],
    }


async def _events_since(engine: AsyncEngine, since: datetime) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OutboundEvent.payload)
            .where(
                OutboundEvent.org_id == ORG,
                OutboundEvent.type == PAYMENT_UPDATED,
                OutboundEvent.created_at >= since,
            )
            .order_by(OutboundEvent.seq)
        )
        return [dict(payload) for (payload,) in rows]


async def _statuses(engine: AsyncEngine, qbo_ids: list[str]) -> dict[str, str | None]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(SyncRecord.qbo_id, SyncRecord.payment_status).where(
                SyncRecord.org_id == ORG,
                SyncRecord.kind == RecordKind.INVOICE,
                SyncRecord.qbo_id.in_(qbo_ids),
            )
        )
        return {str(qbo_id): status for qbo_id, status in rows}


async def _payment_statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(SyncRecord.payment_status, func.count())
            .where(SyncRecord.org_id == ORG, SyncRecord.kind == RecordKind.INVOICE)
            .group_by(SyncRecord.payment_status)
        )
        return {str(status): int(count) for status, count in rows}


async def _measure(
    args: argparse.Namespace,
    values: dict[str, Any],
    services: Services,
    simulator_url: str,
    invoices: list[dict[str, str]],
) -> dict[str, Any]:
    engine = create_async_engine(services.database_url)
    worker: Child | None = None
    try:
        async with qbsync_in_process(settings_of(values), services) as api:
            await api.connect(ORG, UK_REALM, simulator_url)
            seeded = await _seed_records(engine, invoices)
            print(f"  {seeded} synced invoice records seeded; org connected")
            worker = spawn("p5-worker", "bench._worker", [], env_of(values))
            await asyncio.to_thread(wait_ready, worker)

            first = await _reconcile(api, engine, simulator_url, worker, args.timeout)
            print(
                f"  reconciliation 1 (sets the watermark): {first['mode']}, "
                f"{first['requests']} request(s) {first['requests_by_endpoint']}"
            )

            # The changes, made in QuickBooks by the accountant.
            step = max(1, len(invoices) // args.changes)
            chosen = [invoices[(n * step + step // 2) % len(invoices)] for n in range(args.changes)]
            expected: dict[str, str] = {}
            async with httpx.AsyncClient(timeout=30) as sim:
                for n, invoice in enumerate(chosen):
                    full = n % 2 == 0
                    amount = Decimal(invoice["TotalAmt"]) if full else PARTIAL
                    response = await sim.post(
                        f"{simulator_url}/_sim/companies/{UK_REALM}/payments",
                        json={"invoice_id": invoice["Id"], "amount": str(amount)},
                    )
                    response.raise_for_status()
                    expected[invoice["Id"]] = "paid" if full else "partially_paid"
            before_status = await _statuses(engine, sorted(expected))

            measured = await _reconcile(api, engine, simulator_url, worker, args.timeout)
            events = await _events_since(engine, datetime.fromisoformat(measured["asked_at"]))
            after_status = await _statuses(engine, sorted(expected))
            print(
                f"  reconciliation 2 (after {args.changes} payments): {measured['mode']}, "
                f"{measured['requests']} request(s) {measured['requests_by_endpoint']}, "
                f"{len(events)} payment_updated event(s)"
            )

            full_reread: dict[str, Any] | None = None
            if args.full_reread:
                async with engine.begin() as connection:
                    await connection.execute(
                        update(CdcWatermark)
                        .where(CdcWatermark.org_id == ORG)
                        .values(changed_since=datetime.now(UTC) - timedelta(days=31))
                    )
                full_reread = await _reconcile(api, engine, simulator_url, worker, args.timeout)
                full_reread["events"] = len(
                    await _events_since(engine, datetime.fromisoformat(full_reread["asked_at"]))
                )
                full_reread["payment_statuses_after"] = await _payment_statuses(engine)
                print(
                    f"  reconciliation 3 (watermark 31 days back: qbsync's full re-read): "
                    f"{full_reread['mode']}, {full_reread['requests']} request(s) "
                    f"{full_reread['requests_by_endpoint']}, {full_reread['events']} event(s)"
                    + (f"; FAILED: {full_reread['error']}" if full_reread["error"] else "")
                )
    finally:
        if worker is not None:
            worker.stop()
        await engine.dispose()

    by_invoice = Counter(str(event.get("qbo_invoice_id")) for event in events)
    event_status = {str(event.get("qbo_invoice_id")): event.get("status") for event in events}
    wrong = sorted(
        qbo_id
        for qbo_id, status in expected.items()
        if after_status.get(qbo_id) != status or event_status.get(qbo_id) != status
    )
    return {
        "seeded_records": seeded,
        "changed_invoices": [
            {
                "qbo_id": qbo_id,
                "expected": status,
                "status_before": before_status.get(qbo_id),
                "status_after": after_status.get(qbo_id),
                "event_status": event_status.get(qbo_id),
                "events": by_invoice.get(qbo_id, 0),
            }
            for qbo_id, status in expected.items()
        ],
        "all_statuses_right": not wrong,
        "wrong": wrong,
        "first": first,
        "measured": measured,
        "payment_updated_events": len(events),
        "events_for_other_invoices": sum(
            count for qbo_id, count in by_invoice.items() if qbo_id not in expected
        ),
        "full_reread": full_reread,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    load_before = machine()["loadavg"]
    print(
        f"P5 reconcile: {args.invoices} synced invoices, {args.changes} changes; "
        f"load average {load_before}"
    )
    config = SimulatorConfig(
        redirect_uris=(REDIRECT_URI,), limits=LimitsConfig(), api_latency=args.latency
    )
    seed_out = Path(tempfile.gettempdir()) / "qbsync-bench" / f"p5-seed-{run_id}.jsonl"
    seed_out.parent.mkdir(exist_ok=True)
    seed = {
        "realm_id": UK_REALM,
        "invoices": args.invoices,
        "age_days": SEED_AGE_DAYS,
        "out": str(seed_out),
    }
    with scratch_services("p5") as services:
        began = time.perf_counter()
        with simulator_process(config, ["--seed", json.dumps(seed)], start_timeout=600) as (
            simulator_url,
            _simulator,
        ):
            invoices = _read_seed(seed_out)
            print(
                f"  simulator seeded with {len(invoices)} invoices "
                f"in {time.perf_counter() - began:.1f} s"
            )
            # The full re-read's batches take the simulator longer than qbsync's default 30 s
            # timeout at 10,000 invoices (its query engine compares every row with every id).
            intuit = {"timeout_seconds": FULL_REREAD_TIMEOUT} if args.full_reread else {}
            values = bench_settings_values(services, run_id, simulator_url, intuit=intuit)
            outcome = asyncio.run(_measure(args, values, services, simulator_url, invoices))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))
    seed_out.unlink(missing_ok=True)

    measured = outcome["measured"]
    requests = int(measured["requests"])
    naive_queries = math.ceil(args.invoices / QUERY_PAGE)
    naive_reads = args.invoices
    results: dict[str, Any] = {
        "settings": {
            "invoices": args.invoices,
            "changes": args.changes,
            "payments": f"every other one in full, the others {PARTIAL} of the invoice's total",
            "seeded_age_days": SEED_AGE_DAYS,
            "simulator_limits": LimitsConfig().model_dump(),
            "api_latency_seconds": args.latency,
            "full_reread": args.full_reread,
            "database": services.database_source,
            "redis": services.redis_source,
        },
        "loadavg_before": load_before,
        **outcome,
        "requests_spent": requests,
        "calls": measured["calls"],
        "naive": {
            "query_pages_of_1000": naive_queries,
            "reads_by_id": naive_reads,
        },
        # The measured reconciliation's requests over the naive read's (smaller is better).
        "ratio_to_naive_queries": round(requests / naive_queries, 4) if naive_queries else None,
        "ratio_to_naive_reads": round(requests / naive_reads, 6) if naive_reads else None,
        "times_fewer_than_naive_queries": round(naive_queries / requests, 1) if requests else None,
        "times_fewer_than_naive_reads": round(naive_reads / requests, 1) if requests else None,
        "targets": {"requests_at_most": REQUESTS_TARGET, "events": args.changes},
    }
    results["meets"] = {
        "requests": 0 < requests <= REQUESTS_TARGET,
        "calls_match_simulator": sum(int(n) for n in measured["calls"].values()) == requests,
        "events": outcome["payment_updated_events"] == args.changes
        and outcome["events_for_other_invoices"] == 0,
        "statuses": outcome["all_statuses_right"],
        "mode_cdc": measured["mode"] == "cdc" and measured["error"] is None,
    }
    results["met"] = all(results["meets"].values())
    calls = measured["calls"]
    print(
        f"P5 {args.changes} changes among {args.invoices} invoices: {requests} request(s) "
        f"(calls core {calls.get('core')}, coreplus {calls.get('coreplus')}); "
        f"target <= {REQUESTS_TARGET}: {'met' if results['meets']['requests'] else 'NOT met'}"
    )
    print(
        f"  naive: {naive_queries} queries of {QUERY_PAGE} "
        f"(x{results['times_fewer_than_naive_queries']} more) or {naive_reads} reads by id "
        f"(x{results['times_fewer_than_naive_reads']} more); "
        f"{outcome['payment_updated_events']} payment_updated events; statuses right: "
        f"{'yes' if outcome['all_statuses_right'] else 'NO ' + str(outcome['wrong'])}"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--invoices", type=int, default=10_000, help="synced invoices")
    parser.add_argument("--changes", type=int, default=10, help="payments made in QuickBooks")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="simulated seconds per API call (default 0)"
    )
    parser.add_argument(
        "--full-reread",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run qbsync's full re-read (watermark beyond CDC's 30 days) for scale; slow: "
        "the simulator answers a batch of 30 `Id IN (100 ids)` queries over 10,000 invoices in "
        "about 35 s, so the worker's Intuit timeout is raised to 120 s for it",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument("--name", default=NAME, help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    if not 1 <= args.changes <= args.invoices:
        parser.error("need 1 <= --changes <= --invoices")
    results = run(args)
    path = write_result(args.name, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
