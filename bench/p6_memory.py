"""P6, worker memory: one real arq worker process (`bench._worker`, which runs `create_worker`
as `qbsync worker` does) runs `--jobs` real qbsync jobs while its resident memory (RSS) is
sampled with psutil; target: no growth beyond 10 % from the steady state after warm-up to the end.

The job: `push_company` for orgs that are not connected, the cheapest job that still runs
qbsync's whole job path: arq's dequeue and bookkeeping, qbsync's job wrapper (metrics, the
structured log line, error handling), the push coalesce key released in Redis, the org's
connection looked up in Postgres and its due records moved to `held` in a unit of work (an
UPDATE and a COMMIT through the SQLAlchemy pool). It makes no call to QuickBooks: a push that
reached Intuit costs about 15 ms of CPU per document (P3), which would make 100,000 jobs take
hours on two shared cores. `--orgs` distinct org ids take turns.

The driver keeps at most `--queue-depth` jobs waiting (enqueued straight into the worker's arq
queue, as `JobQueue.enqueue` does without the coalesce key, which would drop repeats for an org
already waiting), and samples the worker's RSS every `--sample-seconds`. Jobs done = jobs
enqueued - jobs still queued. The first `--warmup-jobs` are warm-up (imports finished, pools
filled, caches sized); the steady start is the median RSS over the next 5 % of the run, the end
the median over its last 5 %.

    python -m bench.p6_memory [--jobs 100000] [--warmup-jobs 10000] [--orgs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import psutil  # type: ignore[import-untyped]
from arq import create_pool

from bench.charts import record
from bench.common import (
    Services,
    bench_settings_values,
    env_of,
    forget_redis_keys,
    scratch_services,
    spawn,
)
from bench.p5_reconcile import wait_ready
from qbsync.queue import redis_settings
from qbsync.sync.schedule import PUSH_JOB

NAME = "p6_memory"
GROWTH_TARGET = 0.10
MIB = 1024 * 1024
WINDOW_SHARE = 0.05


def _median_rss(samples: list[dict[str, Any]], first: float, last: float) -> float:
    inside = [row["rss_mib"] for row in samples if first <= row["jobs_done"] <= last]
    if not inside:
        raise RuntimeError(f"no RSS sample between {first} and {last} jobs")
    return float(statistics.median(inside))


async def _drive(
    args: argparse.Namespace, services: Services, values: dict[str, Any]
) -> dict[str, Any]:
    queue_name = str(values["redis"]["queue_name"])
    worker = spawn("p6-worker", "bench._worker", [], env_of(values))
    arq = await create_pool(redis_settings(services.redis_url), default_queue_name=queue_name)
    samples: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(wait_ready, worker)
        process = psutil.Process(worker.pid)
        began = time.monotonic()
        enqueued = 0
        next_sample = began
        while True:
            waiting = int(await arq.zcard(queue_name))
            done = enqueued - waiting
            now = time.monotonic()
            if now >= next_sample:
                samples.append(
                    {
                        "seconds": round(now - began, 2),
                        "jobs_done": done,
                        "rss_mib": round(process.memory_info().rss / MIB, 2),
                    }
                )
                next_sample = now + args.sample_seconds
            if done >= args.jobs:
                break
            if now - began > args.timeout:
                raise RuntimeError(f"{done} of {args.jobs} jobs done in {args.timeout} s")
            worker.check_alive()
            room = min(args.queue_depth - waiting, args.jobs - enqueued)
            for _ in range(max(0, room)):
                await arq.enqueue_job(PUSH_JOB, f"org_bench_mem_{enqueued % args.orgs:04d}")
                enqueued += 1
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - began
        cpu = worker.cpu_seconds()
    finally:
        await arq.aclose()
        worker.stop()
    return {
        "jobs_done": done,
        "real_seconds": round(elapsed, 1),
        "jobs_per_second": round(args.jobs / elapsed, 1),
        "worker_cpu_seconds": round(cpu, 1),
        "worker_cpu_ms_per_job": round(1000 * cpu / args.jobs, 2),
        "samples": samples,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"P6 memory: {args.jobs} push_company jobs (orgs not connected: held) through one "
        f"worker, RSS every {args.sample_seconds} s, warm-up {args.warmup_jobs} jobs"
    )
    run_id = uuid.uuid4().hex[:8]
    with scratch_services("p6") as services:
        values = bench_settings_values(services, run_id, None)
        measured = asyncio.run(_drive(args, services, values))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))
    samples = measured["samples"]
    window = WINDOW_SHARE * args.jobs
    steady = _median_rss(samples, args.warmup_jobs, args.warmup_jobs + window)
    end = _median_rss(samples, args.jobs - window, args.jobs)
    growth = end / steady - 1
    peak = max(row["rss_mib"] for row in samples)
    results: dict[str, Any] = {
        "settings": {
            "jobs": args.jobs,
            "warmup_jobs": args.warmup_jobs,
            "orgs": args.orgs,
            "queue_depth": args.queue_depth,
            "sample_seconds": args.sample_seconds,
            "job": f"{PUSH_JOB} for an org with no connection (held)",
            "database": services.database_source,
            "redis": services.redis_source,
        },
        **measured,
        "first_rss_mib": samples[0]["rss_mib"],
        "steady_start_rss_mib": round(steady, 2),
        "end_rss_mib": round(end, 2),
        "peak_rss_mib": peak,
        "growth": round(growth, 4),
        "ratio": round(growth, 4),
        "targets": {"growth_at_most": GROWTH_TARGET},
        "meets": {"growth": growth <= GROWTH_TARGET},
    }
    print(
        f"  {args.jobs} jobs in {measured['real_seconds']} s ({measured['jobs_per_second']}/s, "
        f"{measured['worker_cpu_ms_per_job']} ms CPU a job); RSS first {samples[0]['rss_mib']} "
        f"MiB, steady start {steady:.1f} MiB, end {end:.1f} MiB, peak {peak:.1f} MiB"
    )
    print(f"P6 growth {growth:+.1%} after warm-up (target <= {GROWTH_TARGET:.0%})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--warmup-jobs", type=int, default=10_000)
    parser.add_argument("--orgs", type=int, default=100, help="distinct org ids")
    parser.add_argument("--queue-depth", type=int, default=2_000, help="jobs waiting at most")
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="real seconds at most")
    parser.add_argument("--name", default=NAME, help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    record(args.name, run(args))


if __name__ == "__main__":
    main()
