"""P3, push throughput for one company: a backlog of invoices pushed by real arq workers into the
simulator enforcing Intuit's limits (500 requests/min, 10 in flight, batches of <= 30, 40 batch
requests/min per company), time-scaled, with a per-call latency. The ceiling those limits allow
a backlog is 40 batches x 30 = 1,200 documents per (Intuit) minute; target >= 90 % of it, < 1 %
of requests answered 429, 0 duplicate documents (by DocNumber). Beside it, python-quickbooks
pushing the same invoices as a user would script it (one `Invoice.save` after another).

Processes: the simulator, each worker (`bench._worker`), and this driver (setup through
qbsync's API in-process, then it only watches Postgres). Time scale: the simulator's clock runs
`--time-scale` times faster than the wall (its minute windows included), and qbsync's limiter
window is set to the same scaled minute (60 / scale real seconds; a bench-only worker option,
settings do not expose it). Rates are in Intuit minutes: real seconds x scale / 60. The latency
is `--latency` real seconds per accounting call (the simulator's `api_latency` is in Intuit
seconds: latency x scale).

    python -m bench.p3_push [--invoices 3600] [--time-scale 2] [--latency 0.2] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    REDIRECT_URI,
    UK_REALM,
    Child,
    Services,
    bench_settings_values,
    env_of,
    event,
    forget_redis_keys,
    id_named,
    invoice_data,
    qbsync_in_process,
    scratch_services,
    settings_of,
    simulator_documents,
    simulator_process,
    simulator_stats,
    spawn,
    write_result,
)
from qbsync.models import RecordKind, RecordStatus, SyncRecord
from qbsync.simulator.config import LimitsConfig, SimulatorConfig

NAME = "p3_push"
ORG = "org_bench_push"
BATCH_ITEMS = 30
INTUIT_LIMITS = LimitsConfig()  # 500/min, 10 in flight, 40 batches/min
CEILING_PER_MINUTE = INTUIT_LIMITS.batch_requests_per_minute * BATCH_ITEMS  # 1,200
RATIO_TARGET = 0.90
THROTTLED_TARGET = 0.01
UNFINISHED = (RecordStatus.PENDING, RecordStatus.IN_PROGRESS)


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        time_scale=args.time_scale,
        api_latency=args.latency * args.time_scale,
        redirect_uris=(REDIRECT_URI,),
        # An access token lives an hour of qbsync's (real) time, as qbsync was told when it got
        # it; the simulator would otherwise end it after an hour of its own scaled clock.
        access_token_ttl=int(3600 * args.time_scale),
        limits=INTUIT_LIMITS,
    )


def invoice_number(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}"


# ---------------------------------------------------------------------------------------------
# qbsync


async def _set_up_org(values: dict[str, Any], services: Services, sim: str, count: int) -> None:
    """Connect, map, configure, then send the backlog as the platform would (100 a delivery)."""
    async with qbsync_in_process(settings_of(values), services) as api:
        await api.connect(ORG, UK_REALM, sim)
        items = await simulator_documents(sim, UK_REALM, "Item")
        accounts = await simulator_documents(sim, UK_REALM, "Account")
        await api.call("PUT", "mappings/tax-rates/tr_vat20", ORG, {"qbo_id": "3", "rate": "20.00"})
        await api.call(
            "PUT",
            "mappings/services/svc_consulting",
            ORG,
            {"qbo_id": id_named(items, "Consulting")},
        )
        current = await api.call("GET", "settings", ORG)
        body = {key: value for key, value in current.items() if key not in ("saved", "updated_at")}
        body |= {
            "invoice_auto_push": True,
            "default_income_account_id": id_named(accounts, "Consulting Income"),
        }
        await api.call("PUT", "settings", ORG, body)
        start = datetime.now(UTC) - timedelta(hours=2)
        await api.send(
            event(
                ORG,
                "tax_rate.upserted",
                {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"},
                start,
            )
        )
        for first in range(0, count, 100):
            batch = [
                event(
                    ORG,
                    "invoice.upserted",
                    invoice_data(f"inv_{index}", invoice_number("QBS", index)),
                    start + timedelta(milliseconds=index + 1),
                )
                for index in range(first, min(count, first + 100))
            ]
            await api.send(batch)


async def _statuses(database_url: str) -> dict[str, int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(SyncRecord.status, func.count())
                .where(SyncRecord.org_id == ORG, SyncRecord.kind == RecordKind.INVOICE)
                .group_by(SyncRecord.status)
            )
            return {RecordStatus(status).value: int(count) for status, count in rows}
    finally:
        await engine.dispose()


async def _wait_until_pushed(
    database_url: str, workers: list[Child], limit_seconds: float
) -> tuple[dict[str, int], bool]:
    engine = create_async_engine(database_url)
    deadline = time.monotonic() + limit_seconds
    try:
        while True:
            async with engine.connect() as connection:
                unfinished = await connection.scalar(
                    select(func.count()).where(
                        SyncRecord.org_id == ORG,
                        SyncRecord.kind == RecordKind.INVOICE,
                        SyncRecord.status.in_(UNFINISHED),
                    )
                )
            if not unfinished:
                return await _statuses(database_url), True
            if time.monotonic() > deadline:
                return await _statuses(database_url), False
            for worker in workers:
                worker.check_alive()
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


async def _synced_times(database_url: str) -> list[float]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(SyncRecord.synced_at).where(
                    SyncRecord.org_id == ORG,
                    SyncRecord.kind == RecordKind.INVOICE,
                    SyncRecord.status == RecordStatus.SYNCED,
                )
            )
            return sorted(moment.timestamp() for moment in rows if moment is not None)
    finally:
        await engine.dispose()


def _ready_time(worker: Child) -> float | None:
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if '"bench_worker_ready"' in line:
            with_ready: dict[str, Any] = json.loads(line)
            return float(with_ready["at"])
    return None


def rates(times: list[float], began: float, scale: float) -> dict[str, Any]:
    """Documents per Intuit minute: over the whole push (from the first worker's start to the
    last document), and at steady state, past the first Intuit minute. A sliding one-minute
    window lets a backlog's first minute run ahead (a burst of a whole window's batches), so the
    steady rate is the one to hold against the ceiling once the push lasts over two minutes."""
    if not times:
        return {"overall_per_minute": 0.0, "steady_per_minute": None}
    to_minutes = scale / 60.0
    last = times[-1]
    overall = len(times) / max(1e-9, (last - began) * to_minutes)
    steady_from = began + 60.0 / scale
    steady: float | None = None
    if (last - began) * to_minutes > 2.0:
        inside = sum(1 for moment in times if moment > steady_from)
        steady = inside / ((last - steady_from) * to_minutes)
    return {
        "real_seconds": round(last - began, 2),
        "intuit_minutes": round((last - began) * to_minutes, 3),
        "overall_per_minute": round(overall, 1),
        "steady_per_minute": round(steady, 1) if steady is not None else None,
    }


def _profile(paths: list[Path], scale: float, documents: int) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = []
    for path in paths:
        if path.exists():
            jobs += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not jobs:
        return {}
    jobs.sort(key=lambda job: job["start"])
    pushed = [job for job in jobs if job.get("result") == "pushed"]
    durations = [job["end"] - job["start"] for job in jobs]
    # Between one job's end and the next one's start: the time the company's push waits.
    gaps = [
        max(0.0, later["start"] - earlier["end"]) for earlier, later in itertools.pairwise(jobs)
    ]
    overlapping = sum(
        1 for earlier, later in itertools.pairwise(jobs) if later["start"] < earlier["end"]
    )
    queue_waits = [max(0.0, job["start"] - job["due"]) for job in jobs if job.get("due")]
    phases: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for job in jobs:
        phases.update(job["phases"])
        counts.update(job["counts"])
    ms = 1000.0
    per_job = {
        name: {
            "mean_ms": round(ms * total / len(jobs), 1),
            "calls_per_job": round(counts[name] / len(jobs), 2),
        }
        for name, total in phases.most_common()
    }
    cycle = statistics.mean(durations) + (statistics.mean(gaps) if gaps else 0.0)
    return {
        "jobs": len(jobs),
        "jobs_pushed": len(pushed),
        "results": dict(Counter(str(job.get("result")) for job in jobs)),
        "jobs_overlapping_the_previous": overlapping,
        "job_mean_ms": round(ms * statistics.mean(durations), 1),
        "job_p90_ms": round(ms * sorted(durations)[int(0.9 * (len(durations) - 1))], 1),
        "gap_between_jobs_mean_ms": round(ms * statistics.mean(gaps), 1) if gaps else None,
        # The first job waited for the worker to start; the median is the steady wait.
        "queue_wait_median_ms": round(ms * statistics.median(queue_waits), 1)
        if queue_waits
        else None,
        "cycle_mean_ms": round(ms * cycle, 1),
        # One company's jobs run one after another: a slice a cycle at best.
        "documents_per_job": round(documents / len(jobs), 1),
        "sequential_cap_per_intuit_minute": round(
            documents / len(jobs) / (cycle * scale / 60.0), 1
        ),
        "phases_per_job": per_job,
    }


def run_qbsync(args: argparse.Namespace, services: Services) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    config = simulator_config(args)
    intuit: dict[str, Any] = {}
    if args.qbsync_batch_limit is not None:
        intuit["batch_requests_per_minute"] = args.qbsync_batch_limit
    push: dict[str, Any] = {}
    if args.slice_size is not None:
        push["slice_size"] = args.slice_size
    with simulator_process(config) as (sim, _simulator):
        values = bench_settings_values(services, run_id, sim, intuit=intuit, push=push)
        settings = settings_of(values)
        asyncio.run(_set_up_org(values, services, sim, args.invoices))
        queued = asyncio.run(_statuses(services.database_url))
        print(f"  backlog stored: {queued}")
        window = 60.0 / args.time_scale
        profiles = [
            Path(tempfile.gettempdir()) / "qbsync-bench" / f"p3-jobs-{run_id}-{n}.jsonl"
            for n in range(args.workers)
        ]
        worker_args = ["--window-seconds", str(window)]
        if args.poll_delay is not None:
            worker_args += ["--poll-delay", str(args.poll_delay)]
        began = time.time()
        workers = [
            spawn(
                f"p3-worker-{n}",
                "bench._worker",
                [*worker_args, "--profile", str(path)],
                env_of(values),
            )
            for n, path in enumerate(profiles)
        ]
        try:
            statuses, finished = asyncio.run(
                _wait_until_pushed(services.database_url, workers, args.timeout)
            )
        finally:
            worker_cpu = sum(worker.cpu_seconds() for worker in workers)
            for worker in workers:
                worker.stop()
        ready = [moment for worker in workers if (moment := _ready_time(worker)) is not None]
        started = min(ready) if ready else began
        times = asyncio.run(_synced_times(services.database_url))
        stats = asyncio.run(simulator_stats(sim))
        invoices = asyncio.run(simulator_documents(sim, UK_REALM, "Invoice"))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))
    numbers = Counter(str(row.get("DocNumber")) for row in invoices)
    duplicates = sum(count - 1 for count in numbers.values() if count > 1)
    requests = int(stats["requests_by_realm"].get(UK_REALM, 0))
    throttled = int(stats["throttled_by_realm"].get(UK_REALM, 0))
    measured = rates(times, started, args.time_scale)
    headline = measured["steady_per_minute"] or measured["overall_per_minute"]
    endpoints = {
        endpoint.removeprefix(f"{UK_REALM} "): count
        for endpoint, count in stats["requests_by_endpoint"].items()
        if endpoint.startswith(UK_REALM)
    }
    return {
        "finished": finished,
        "records": statuses,
        "documents_in_quickbooks": len(invoices),
        "distinct_doc_numbers": len(numbers),
        "duplicates": duplicates,
        "requests": requests,
        "throttled_429": throttled,
        "throttled_share": round(throttled / requests, 4) if requests else 0.0,
        "requests_by_endpoint": endpoints,
        "token_calls": stats["token_calls"],
        "worker_startup_seconds": round(started - began, 2),
        # The workers' processes, start-up included (imports: about 2 s of it).
        "worker_cpu_seconds": round(worker_cpu, 2),
        "worker_cpu_ms_per_document": round(1000 * worker_cpu / max(1, len(times)), 2),
        **measured,
        "per_minute": headline,
        "ratio": round(headline / CEILING_PER_MINUTE, 3),
        "qbsync_limits": {
            "requests_per_window": settings.intuit.requests_per_minute,
            "max_in_flight": settings.intuit.max_in_flight,
            "batch_requests_per_window": settings.intuit.batch_requests_per_minute,
            "window_seconds_real": round(window, 3),
            "slice_size": settings.push.slice_size,
            "own_cap_per_intuit_minute": settings.intuit.batch_requests_per_minute * BATCH_ITEMS,
        },
        "profile": _profile(profiles, args.time_scale, statuses.get("synced", 0)),
    }


# ---------------------------------------------------------------------------------------------
# python-quickbooks, as a user would script it


def run_python_quickbooks(args: argparse.Namespace) -> dict[str, Any]:
    """One `Invoice(...).save(qb=client)` after another: no batch, no limiter. On a 429 (which
    python-quickbooks raises as a QuickbooksException carrying Intuit's XML) the script sleeps a
    fixed 5 Intuit seconds and tries the same invoice again, as a naive script would."""
    from intuitlib.client import AuthClient  # type: ignore[import-untyped]
    from quickbooks import QuickBooks  # type: ignore[import-untyped]
    from quickbooks.exceptions import QuickbooksException  # type: ignore[import-untyped]
    from quickbooks.objects.base import Ref  # type: ignore[import-untyped]
    from quickbooks.objects.customer import Customer  # type: ignore[import-untyped]
    from quickbooks.objects.detailline import (  # type: ignore[import-untyped]
        SalesItemLine,
        SalesItemLineDetail,
    )
    from quickbooks.objects.invoice import Invoice  # type: ignore[import-untyped]
    from quickbooks.objects.item import Item  # type: ignore[import-untyped]

    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the simulator speaks plain HTTP
    config = simulator_config(args)
    pause = 5.0 / args.time_scale
    with simulator_process(config) as (sim, _simulator):
        tokens = httpx.post(f"{sim}/_sim/companies/{UK_REALM}/connect", timeout=30).json()
        auth = AuthClient(
            config.client_id,
            config.client_secret,
            REDIRECT_URI,
            f"{sim}/.well-known/openid_sandbox_configuration/",
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )
        qb = QuickBooks(
            auth_client=auth,
            refresh_token=tokens["refresh_token"],
            company_id=UK_REALM,
            minorversion=75,
            use_decimal=True,
        )
        qb.api_url_v3 = f"{sim}/v3"
        # A script looks its references up once, then loops.
        customer = Customer.filter(DisplayName="Acme Ltd", qb=qb)[0]
        item = Item.filter(Name="Consulting", qb=qb)[0]
        vat = Ref()
        vat.value = "3"
        throttled_seen = 0
        failures = 0
        started = time.time()
        for index in range(args.pq_invoices):
            invoice = Invoice()
            invoice.CustomerRef = customer.to_ref()
            invoice.DocNumber = invoice_number("PQB", index)
            invoice.TxnDate = "2026-11-20"
            invoice.GlobalTaxCalculation = "TaxExcluded"
            line = SalesItemLine()
            line.Amount = Decimal("10.00")
            line.SalesItemLineDetail = SalesItemLineDetail()
            line.SalesItemLineDetail.ItemRef = item.to_ref()
            line.SalesItemLineDetail.Qty = 1
            line.SalesItemLineDetail.UnitPrice = Decimal("10.00")
            line.SalesItemLineDetail.TaxCodeRef = vat
            invoice.Line = [line]
            while True:
                try:
                    invoice.save(qb=qb)
                    break
                except QuickbooksException as error:
                    text = f"{error.message} {error.detail}"
                    if "ThrottleExceeded" in text or "429" in text:
                        throttled_seen += 1
                        time.sleep(pause)
                        continue
                    failures += 1
                    break
        finished = time.time()
        stats = asyncio.run(simulator_stats(sim))
        invoices = asyncio.run(simulator_documents(sim, UK_REALM, "Invoice"))
    ours = [row for row in invoices if str(row.get("DocNumber", "")).startswith("PQB-")]
    numbers = Counter(str(row["DocNumber"]) for row in ours)
    requests = int(stats["requests_by_realm"].get(UK_REALM, 0))
    throttled = int(stats["throttled_by_realm"].get(UK_REALM, 0))
    minutes = (finished - started) * args.time_scale / 60.0
    per_minute = len(ours) / minutes if minutes else 0.0
    return {
        "invoices": args.pq_invoices,
        "documents_in_quickbooks": len(ours),
        "duplicates": sum(count - 1 for count in numbers.values() if count > 1),
        "failures": failures,
        "requests": requests,
        "throttled_429": throttled,
        "throttled_seen_by_script": throttled_seen,
        "throttled_share": round(throttled / requests, 4) if requests else 0.0,
        "retry_on_429": f"sleep {pause:.3f} s real (5 Intuit s), then the same invoice again",
        "real_seconds": round(finished - started, 2),
        "intuit_minutes": round(minutes, 3),
        "per_minute": round(per_minute, 1),
        "ratio": round(per_minute / CEILING_PER_MINUTE, 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"P3 push: {args.invoices} invoices, time scale {args.time_scale}x, "
        f"{args.latency * 1000:.0f} ms real per call "
        f"({args.latency * args.time_scale:.2f} Intuit s), "
        f"{args.workers} worker(s)"
    )
    with scratch_services("p3") as services:
        qbsync = run_qbsync(args, services)
    print(
        f"  qbsync:            {qbsync['per_minute']:8.1f} docs/min "
        f"({qbsync['ratio']:.1%} of {CEILING_PER_MINUTE}), {qbsync['throttled_429']} x 429 "
        f"of {qbsync['requests']} requests, {qbsync['duplicates']} duplicates"
    )
    results: dict[str, Any] = {
        "settings": {
            "invoices": args.invoices,
            "time_scale": args.time_scale,
            "latency_real_seconds": args.latency,
            "api_latency_intuit_seconds": args.latency * args.time_scale,
            "workers": args.workers,
            "poll_delay": args.poll_delay,
            "slice_size": args.slice_size,
            "simulator_limits": INTUIT_LIMITS.model_dump(),
            "database": services.database_source,
            "redis": services.redis_source,
        },
        "ceiling_per_minute": CEILING_PER_MINUTE,
        "qbsync": qbsync,
    }
    if args.pq_invoices:
        pq = run_python_quickbooks(args)
        results["python_quickbooks"] = pq
        results["qbsync_over_python_quickbooks"] = (
            round(qbsync["per_minute"] / pq["per_minute"], 2) if pq["per_minute"] else None
        )
        print(
            f"  python-quickbooks: {pq['per_minute']:8.1f} docs/min "
            f"({pq['ratio']:.1%} of {CEILING_PER_MINUTE}), {pq['throttled_429']} x 429 "
            f"of {pq['requests']} requests, {pq['duplicates']} duplicates"
        )
    results["ratio"] = qbsync["ratio"]
    results["targets"] = {
        "ratio_at_least": RATIO_TARGET,
        "throttled_share_below": THROTTLED_TARGET,
        "duplicates": 0,
    }
    results["meets"] = {
        "ratio": qbsync["ratio"] >= RATIO_TARGET,
        "throttled": qbsync["throttled_share"] < THROTTLED_TARGET,
        "duplicates": qbsync["duplicates"] == 0 and qbsync["finished"],
    }
    profile = qbsync.get("profile") or {}
    print(
        f"P3 ratio {qbsync['ratio']:.1%} of the ceiling (target >= {RATIO_TARGET:.0%}); "
        f"429s {qbsync['throttled_share']:.2%} (target < 1%); duplicates {qbsync['duplicates']}"
        + (
            f"; python-quickbooks {results['python_quickbooks']['per_minute']} docs/min, "
            f"qbsync x{results['qbsync_over_python_quickbooks']}"
            if "python_quickbooks" in results
            else ""
        )
    )
    if profile:
        print(
            f"  push jobs: {profile['jobs']}, mean {profile['job_mean_ms']} ms + "
            f"{profile['gap_between_jobs_mean_ms']} ms between jobs; one company's jobs in a row "
            f"allow {profile['sequential_cap_per_intuit_minute']} docs/Intuit min"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--invoices", type=int, default=3600, help="the backlog qbsync pushes")
    parser.add_argument("--time-scale", type=float, default=2.0, help="Intuit seconds a second")
    parser.add_argument("--latency", type=float, default=0.2, help="real seconds per API call")
    parser.add_argument("--workers", type=int, default=1, help="arq worker processes")
    parser.add_argument("--poll-delay", type=float, help="arq poll delay (default: arq's 0.5 s)")
    parser.add_argument(
        "--qbsync-batch-limit",
        type=int,
        help="QBSYNC_INTUIT__BATCH_REQUESTS_PER_MINUTE for the run (qbsync's default: 38)",
    )
    parser.add_argument(
        "--slice-size", type=int, help="QBSYNC_PUSH__SLICE_SIZE for the run (qbsync's default: 30)"
    )
    parser.add_argument(
        "--pq-invoices", type=int, default=300, help="python-quickbooks' share (0 skips it)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="real seconds at most")
    parser.add_argument("--name", default=NAME, help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    results = run(args)
    path = write_result(args.name, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
