"""P7, metered reads: Intuit's App Partner Program meters reads, queries and CDC as CorePlus
calls. Target: <= 0.2 CorePlus calls per pushed document at steady state (references cached, no
read-after-write), and an idle company costs one CDC call per reconciliation interval.

Processes: the simulator (Intuit's limits on, time-scaled as in P3), one real arq worker
(`bench._worker`), and this driver (qbsync's API in-process for set-up and for asking for a
reconciliation, then Postgres and Redis watched).

* Push: one org connected to the UK company; `--warmup` invoices pushed first (the company's
  info, preferences and reference lists are read and cached then), then `--invoices` more. The
  steady state is the second push: its calls per pushed document, counted twice — by qbsync's own
  per-company counters (Redis `{prefix}:calls:{realm}:{day}`, fields core and coreplus, which
  every process adds to) and by the simulator's request stats (GET = read, query or CDC:
  CorePlus; POST = a write or a batch of writes: Core). The two must agree.
* Idle: with nothing changed, one reconciliation is asked for (`POST /v1/quickbooks/sync/
  reconcile`) to set the watermark, then `--idle-seconds` pass with nothing to do, then the
  measured reconciliation: its calls, both ways, and the calls of the idle wait (expect 0). The
  interval's own trigger is the worker's cron (`reconcile_due_companies`, at least every 5
  minutes); asking through the API runs the same job, `reconcile_company`, at once.

    python -m bench.p7_reads [--warmup 60] [--invoices 900] [--time-scale 2] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench._orgs import company_ids, send_invoices, set_up_org, statuses, wait_until_settled
from bench.charts import record
from bench.common import (
    REDIRECT_URI,
    UK_REALM,
    QbsyncApi,
    Services,
    bench_settings_values,
    env_of,
    forget_redis_keys,
    qbsync_in_process,
    scratch_services,
    settings_of,
    simulator_process,
    simulator_stats,
    spawn,
)
from bench.p5_reconcile import wait_ready, watermark_row
from qbsync.simulator.config import LimitsConfig, SimulatorConfig

NAME = "p7_reads"
ORG = "org_bench_reads"
PER_DOCUMENT_TARGET = 0.2
IDLE_TARGET = 1


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        time_scale=args.time_scale,
        api_latency=args.latency * args.time_scale,
        redirect_uris=(REDIRECT_URI,),
        access_token_ttl=int(3600 * args.time_scale),
        limits=LimitsConfig(),
    )


class Counts:
    """qbsync's per-company counters and the simulator's stats, read together."""

    def __init__(self, redis_url: str, key_prefix: str, simulator_url: str) -> None:
        self._redis_url = redis_url
        self._prefix = key_prefix
        self._simulator_url = simulator_url

    async def read(self) -> dict[str, Any]:
        client = Redis.from_url(self._redis_url)
        try:
            day = datetime.now(UTC).date().isoformat()
            raw = await client.hgetall(f"{self._prefix}:calls:{UK_REALM}:{day}")
        finally:
            await client.aclose()
        qbsync = {key.decode(): int(value) for key, value in raw.items()}
        stats = await simulator_stats(self._simulator_url)
        endpoints: Counter[str] = Counter(
            {
                endpoint.removeprefix(f"{UK_REALM} "): int(count)
                for endpoint, count in stats["requests_by_endpoint"].items()
                if endpoint.startswith(f"{UK_REALM} ")
            }
        )
        return {"qbsync": qbsync, "endpoints": endpoints}

    @staticmethod
    def spent(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        endpoints: Counter[str] = after["endpoints"].copy()
        endpoints.subtract(before["endpoints"])
        kept = {key: n for key, n in sorted(endpoints.items()) if n}
        return {
            "core": after["qbsync"].get("core", 0) - before["qbsync"].get("core", 0),
            "coreplus": after["qbsync"].get("coreplus", 0) - before["qbsync"].get("coreplus", 0),
            "simulator_requests_by_endpoint": kept,
            "simulator_core": sum(n for key, n in kept.items() if key.startswith("POST ")),
            "simulator_coreplus": sum(n for key, n in kept.items() if key.startswith("GET ")),
        }


async def _reconcile(api: QbsyncApi, engine: AsyncEngine, limit_seconds: float) -> None:
    asked = datetime.now(UTC)
    await api.call("POST", "sync/reconcile", ORG, expect=202)
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        row = await watermark_row(engine, ORG)
        finished = row["last_finished_at"] if row else None
        if row and finished and finished > asked and row["lease_until"] is None:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no reconciliation finished within {limit_seconds} s")


async def _run(
    args: argparse.Namespace, services: Services, sim: str, values: dict[str, Any]
) -> dict[str, Any]:
    settings = settings_of(values)
    counts = Counts(values["redis"]["url"], values["redis"]["key_prefix"], sim)
    engine = create_async_engine(values["database"]["url"])
    worker = spawn("p7-worker", "bench._worker", [], env_of(values))
    try:
        async with qbsync_in_process(settings, services) as api:
            await set_up_org(api, ORG, UK_REALM, sim, await company_ids(sim, UK_REALM))
            await asyncio.to_thread(wait_ready, worker)
            setup = await counts.read()
            await send_invoices(api, ORG, "WARM", range(args.warmup))
            if not await wait_until_settled(engine, [worker], args.timeout, ORG):
                raise RuntimeError("the warm-up push did not finish")
            warmed = await counts.read()
            began = time.perf_counter()
            await send_invoices(api, ORG, "STEADY", range(args.invoices))
            if not await wait_until_settled(engine, [worker], args.timeout, ORG):
                raise RuntimeError("the measured push did not finish")
            push_seconds = time.perf_counter() - began
            pushed = await counts.read()
            records = await statuses(engine, ORG)
            await _reconcile(api, engine, args.timeout)
            watermark_set = await counts.read()
            await asyncio.sleep(args.idle_seconds)
            idle_waited = await counts.read()
            await _reconcile(api, engine, args.timeout)
            reconciled = await counts.read()
            row = await watermark_row(engine, ORG)
    finally:
        worker.stop()
        await engine.dispose()
    push = Counts.spent(warmed, pushed)
    documents = args.invoices
    idle = Counts.spent(idle_waited, reconciled)
    return {
        "warmup": {"invoices": args.warmup, **Counts.spent(setup, warmed)},
        "push": {
            "documents": documents,
            "records": records,
            "real_seconds": round(push_seconds, 1),
            **push,
            "coreplus_per_document": round(push["coreplus"] / documents, 4),
            "simulator_coreplus_per_document": round(push["simulator_coreplus"] / documents, 4),
        },
        "first_reconciliation": Counts.spent(pushed, watermark_set),
        "idle_wait": {"seconds": args.idle_seconds, **Counts.spent(watermark_set, idle_waited)},
        "idle": {**idle, "mode": row["last_mode"] if row else None},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"P7 reads: {args.warmup} invoices to warm up, {args.invoices} measured, time scale "
        f"{args.time_scale}x, {args.latency * 1000:.0f} ms real per call; then an idle company's "
        "reconciliation"
    )
    run_id = uuid.uuid4().hex[:8]
    with scratch_services("p7") as services:
        with simulator_process(simulator_config(args)) as (sim, _simulator):
            values = bench_settings_values(services, run_id, sim, log_level="WARNING")
            measured = asyncio.run(_run(args, services, sim, values))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))
    push, idle = measured["push"], measured["idle"]
    results: dict[str, Any] = {
        "settings": {
            "warmup": args.warmup,
            "invoices": args.invoices,
            "time_scale": args.time_scale,
            "latency_real_seconds": args.latency,
            "idle_seconds": args.idle_seconds,
            "database": services.database_source,
            "redis": services.redis_source,
        },
        **measured,
        "ratio": push["coreplus_per_document"],
        "targets": {"coreplus_per_document_at_most": PER_DOCUMENT_TARGET, "idle_coreplus": 1},
        "meets": {
            "per_document": push["coreplus_per_document"] <= PER_DOCUMENT_TARGET,
            "idle_one_cdc": idle["coreplus"] == IDLE_TARGET
            and idle["simulator_requests_by_endpoint"] == {"GET cdc": 1},
            "counters_agree": push["coreplus"] == push["simulator_coreplus"]
            and push["core"] == push["simulator_core"]
            and idle["coreplus"] == idle["simulator_coreplus"],
        },
    }
    print(
        f"  push of {push['documents']}: CorePlus {push['coreplus']} (qbsync) / "
        f"{push['simulator_coreplus']} (simulator), Core {push['core']} / {push['simulator_core']}"
        f"; {push['simulator_requests_by_endpoint']}"
    )
    print(
        f"  idle reconciliation: CorePlus {idle['coreplus']} (qbsync) / "
        f"{idle['simulator_coreplus']} (simulator): {idle['simulator_requests_by_endpoint']}; "
        f"{measured['idle_wait']['seconds']} s idle before it: "
        f"{measured['idle_wait']['simulator_requests_by_endpoint'] or 'no calls'}"
    )
    print(
        f"P7 ratio {push['coreplus_per_document']} CorePlus calls per pushed document (target <= "
        f"{PER_DOCUMENT_TARGET}); idle company {idle['coreplus']} per reconciliation (target 1)"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--warmup", type=int, default=60, help="invoices pushed before")
    parser.add_argument("--invoices", type=int, default=900, help="invoices measured")
    parser.add_argument("--time-scale", type=float, default=2.0, help="Intuit seconds a second")
    parser.add_argument("--latency", type=float, default=0.05, help="real seconds per API call")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle before measuring")
    parser.add_argument("--timeout", type=float, default=600.0, help="real seconds at most")
    parser.add_argument("--name", default=NAME, help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    record(args.name, run(args))


if __name__ == "__main__":
    main()
