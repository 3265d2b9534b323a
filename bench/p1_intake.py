"""P1, event intake: platform events accepted per second by qbsync's `POST /v1/events` (signature
verified, event stored in Postgres, record upserted, push job enqueued in Redis, 202) as a
ratio of a bare FastAPI endpoint that only answers 202; and qbsync's p99 latency at half its own
rate. Target: ratio >= 40 %, p99 < 50 ms.

Both servers run under uvicorn with the same settings (`bench._serve`), one at a time, on the
same machine, driven by the same httpx load generator in this process: a closed loop of
`--concurrency` requests for `--seconds` (after a warm-up) for the rate, and an open loop at a
fixed arrival rate for the latency. Every request is a new `invoice.upserted` event, signed with
Standard Webhooks, for both servers.

Two orgs: one connected to a simulated company (records `pending`, a push job enqueued: the full
path) and one not connected (records `held`, nothing enqueued). The bare baseline is measured
before and after qbsync, and the ratio uses their mean.

    python -m bench.p1_intake [--seconds 15] [--concurrency 32] [--mode both|pending|held]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    UK_REALM,
    WEBHOOK_SECRET,
    BackendCpu,
    Child,
    Services,
    Signer,
    bench_settings_values,
    env_of,
    event,
    forget_redis_keys,
    free_port,
    invoice_data,
    latency_summary_ms,
    machine_busy_seconds,
    qbsync_in_process,
    scratch_services,
    settings_of,
    simulator_process,
    spawn,
    wait_for_http,
    write_result,
)
from qbsync.models import PlatformEvent
from qbsync.simulator.config import SimulatorConfig

NAME = "p1_intake"
CONNECTED_ORG = "org_bench_connected"
UNCONNECTED_ORG = "org_bench_held"
RATIO_TARGET = 0.40
P99_TARGET_MS = 50.0


@dataclass
class Load:
    """What one load run saw."""

    seconds: float
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # From the moment the request was due (open loop) or sent (closed loop) to its answer.
    latencies: list[float] = field(default_factory=list)
    # Open loop only: from the moment it was actually sent.
    service_latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    generator_cpu: float = 0.0
    # Every core's busy time (Postgres, Redis and other work on the machine) over the run.
    machine_cpu: float = 0.0
    # The scratch database's Postgres backends and the Redis server (qbsync only).
    backend_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "accepted_202": self.ok,
            "per_second": round(self.rate, 1),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "latency": latency_summary_ms(self.latencies),
            **(
                {"service_latency": latency_summary_ms(self.service_latencies)}
                if self.service_latencies
                else {}
            ),
            # CPU seconds per wall second: ~1.0 means the process kept a core busy.
            "server_cpu_utilisation": round(self.server_cpu / self.seconds, 2),
            "generator_cpu_utilisation": round(self.generator_cpu / self.seconds, 2),
            "machine_cpu_utilisation": round(self.machine_cpu / self.seconds, 2),
            "server_cpu_ms_per_event": self.per_event(self.server_cpu),
            "postgres_redis_cpu_ms_per_event": self.per_event(self.backend_cpu),
        }

    def per_event(self, seconds: float) -> float | None:
        return round(1000 * seconds / self.ok, 3) if self.ok else None


class Events:
    """A new signed `invoice.upserted` event per call (unique event id, delivery id, invoice)."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.signer = Signer(WEBHOOK_SECRET)
        self.run = uuid.uuid4().hex[:6]
        self.counter = itertools.count()

    def next(self) -> tuple[bytes, dict[str, str]]:
        n = next(self.counter)
        invoice = invoice_data(f"inv_{self.run}_{n}", f"P1-{self.run}-{n}")
        body = json.dumps(
            event(self.org_id, "invoice.upserted", invoice, datetime.now(UTC))
        ).encode()
        return body, self.signer.headers(body)


def _lean_httpcore() -> None:
    """httpcore asks for sniffio on every request and, where it is not installed (here), the
    failed import searches sys.path each time: 0.3 ms of the generator's CPU a request. None in
    sys.modules fails that import at once, and httpcore then assumes asyncio, which is what
    runs. Only the load generator's process is changed."""
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)


async def closed_loop(
    base_url: str,
    server: Child,
    make: Callable[[], tuple[bytes, dict[str, str]]],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    backends: BackendCpu | None = None,
) -> Load:
    """`concurrency` senders, each on its own keep-alive connection, each sending its next event
    when the last is answered. (One client per sender: httpcore's pool rescans every connection
    for every request, which at 32 connections costs the generator more than the server.)"""
    clients = [_client(base_url, 1) for _ in range(concurrency)]
    try:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup
        until = measure_from + seconds
        load = Load(seconds)
        marks: dict[str, float] = {}
        backend_marks: dict[int, float] = {}

        async def sender(client: httpx.AsyncClient) -> None:
            while (now := loop.time()) < until:
                body, headers = make()
                try:
                    response = await client.post("/v1/events", content=body, headers=headers)
                except httpx.HTTPError as error:
                    if now >= measure_from:
                        load.errors[type(error).__name__] += 1
                    continue
                if now < measure_from:
                    continue
                load.statuses[response.status_code] += 1
                if response.status_code == 202:
                    load.ok += 1
                    load.latencies.append(loop.time() - now)

        async def mark() -> None:
            await asyncio.sleep(warmup)
            marks["server"], marks["generator"] = server.cpu_seconds(), time.process_time()
            marks["machine"] = machine_busy_seconds()
            if backends is not None:
                backend_marks.update(await backends.reading())

        await asyncio.gather(mark(), *(sender(client) for client in clients))
        if backends is not None:
            load.backend_cpu = BackendCpu.spent(backend_marks, await backends.reading())
        load.server_cpu = server.cpu_seconds() - marks["server"]
        load.generator_cpu = time.process_time() - marks["generator"]
        load.machine_cpu = machine_busy_seconds() - marks["machine"]
        return load
    finally:
        for client in clients:
            await client.aclose()


async def open_loop(
    base_url: str,
    server: Child,
    make: Callable[[], tuple[bytes, dict[str, str]]],
    *,
    rate: float,
    seconds: float,
    backends: BackendCpu | None = None,
) -> Load:
    """Events due at a fixed rate whatever the answers do; latency counts from when each was
    due, so a slow answer holding up the next ones is counted too."""
    count = max(1, int(rate * seconds))
    async with _client(base_url, 256) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        load = Load(seconds)

        async def one(index: int) -> None:
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            body, headers = make()
            sent = loop.time()
            try:
                response = await client.post("/v1/events", content=body, headers=headers)
            except httpx.HTTPError as error:
                load.errors[type(error).__name__] += 1
                return
            load.statuses[response.status_code] += 1
            if response.status_code == 202:
                load.ok += 1
                answered = loop.time()
                load.latencies.append(answered - due)
                load.service_latencies.append(answered - sent)

        server_before, generator_before = server.cpu_seconds(), time.process_time()
        machine_before = machine_busy_seconds()
        backends_before = await backends.reading() if backends is not None else {}
        began = loop.time()
        await asyncio.gather(*(one(index) for index in range(count)))
        # The rate is what was sent over the time it took (ideally `seconds`).
        load.seconds = max(seconds, loop.time() - began - 0.5)
        load.server_cpu = server.cpu_seconds() - server_before
        load.generator_cpu = time.process_time() - generator_before
        load.machine_cpu = machine_busy_seconds() - machine_before
        if backends is not None:
            load.backend_cpu = BackendCpu.spent(backends_before, await backends.reading())
        return load


def _start_server(kind: str, env: dict[str, str], profile: str | None = None) -> tuple[str, Child]:
    port = free_port()
    extra = ["--profile", profile] if profile else []
    child = spawn(f"p1-{kind}", "bench._serve", [kind, "--port", str(port), *extra], env)
    base_url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base_url}/healthz", child)
    return base_url, child


async def _connect(values: dict[str, Any], services: Services, simulator_url: str) -> None:
    async with qbsync_in_process(settings_of(values), services) as api:
        await api.connect(CONNECTED_ORG, UK_REALM, simulator_url)


async def _stored(database_url: str) -> dict[str, int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(PlatformEvent.org_id, func.count()).group_by(PlatformEvent.org_id)
            )
            return {str(org): int(count) for org, count in rows}
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    _lean_httpcore()
    modes = ["pending", "held"] if args.mode == "both" else [args.mode]
    run_id = uuid.uuid4().hex[:8]
    with scratch_services("p1") as services:
        values: dict[str, Any]
        if "pending" in modes:
            config = SimulatorConfig(redirect_uris=("http://qbsync.bench/v1/quickbooks/callback",))
            with simulator_process(config) as (simulator_url, _):
                values = bench_settings_values(services, run_id, simulator_url)
                asyncio.run(_connect(values, services, simulator_url))
        else:
            values = bench_settings_values(services, run_id, None)
        env = env_of(values)

        def measure_bare(label: str) -> Load:
            base_url, server = _start_server("bare", env)
            try:
                load = asyncio.run(
                    closed_loop(
                        base_url,
                        server,
                        Events(UNCONNECTED_ORG).next,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=args.warmup,
                    )
                )
            finally:
                server.stop()
            print(f"  bare FastAPI ({label}): {load.rate:8.1f} events/s")
            return load

        print(f"P1 intake: {args.seconds:.0f} s per run, concurrency {args.concurrency}")
        bare = [measure_bare("before")]
        qbsync: dict[str, dict[str, Any]] = {}
        backends = BackendCpu(services.database_url, services.redis_url)
        base_url, server = _start_server("qbsync", env, args.profile_server)
        try:
            for mode in modes:
                org_id = CONNECTED_ORG if mode == "pending" else UNCONNECTED_ORG
                events = Events(org_id)
                load = asyncio.run(
                    closed_loop(
                        base_url,
                        server,
                        events.next,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        backends=backends,
                    )
                )
                half = asyncio.run(
                    open_loop(
                        base_url,
                        server,
                        events.next,
                        rate=load.rate / 2,
                        seconds=args.seconds,
                        backends=backends,
                    )
                )
                qbsync[mode] = {"max_rate": load, "half_rate": half}
                print(
                    f"  qbsync ({mode:7}):      {load.rate:8.1f} events/s; at "
                    f"{load.rate / 2:.0f}/s p99 {latency_summary_ms(half.latencies)['p99_ms']} ms"
                )
        finally:
            server.stop()
        bare.append(measure_bare("after"))
        stored = asyncio.run(_stored(services.database_url))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))

    baseline = sum(load.rate for load in bare) / len(bare)
    bare_cpu = sum(load.server_cpu for load in bare) / max(1, sum(load.ok for load in bare))
    headline_mode = modes[0]
    results: dict[str, Any] = {
        "settings": {
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "uvicorn": "1 process, httptools/uvloop (auto), access_log off, proxy_headers on",
            "database": services.database_source,
            "redis": services.redis_source,
        },
        "bare": [load.summary() for load in bare],
        "bare_per_second": round(baseline, 1),
        "bare_server_cpu_ms_per_event": round(1000 * bare_cpu, 3),
        "qbsync": {},
        "events_stored": stored,
    }
    for mode, loads in qbsync.items():
        top = loads["max_rate"]
        ratio = top.rate / baseline if baseline else 0.0
        p99 = latency_summary_ms(loads["half_rate"].latencies)["p99_ms"]
        # Where the generator, not the server, limits the baseline: what each event costs the
        # servers in CPU, bare against qbsync (its process plus Postgres and Redis).
        qbsync_cpu = (top.server_cpu + top.backend_cpu) / top.ok if top.ok else 0.0
        results["qbsync"][mode] = {
            "record_status": mode,
            "enqueues_push_job": mode == "pending",
            "max_rate": loads["max_rate"].summary(),
            "half_rate": loads["half_rate"].summary(),
            "ratio": round(ratio, 3),
            "cpu_cost_ratio": round(bare_cpu / qbsync_cpu, 3) if qbsync_cpu else None,
            "p99_at_half_rate_ms": p99,
            "meets_ratio": ratio >= RATIO_TARGET,
            "meets_p99": p99 < P99_TARGET_MS,
        }
    headline = results["qbsync"][headline_mode]
    results["ratio"] = headline["ratio"]
    results["p99_at_half_rate_ms"] = headline["p99_at_half_rate_ms"]
    results["headline_mode"] = headline_mode
    results["targets"] = {"ratio_at_least": RATIO_TARGET, "p99_below_ms": P99_TARGET_MS}
    print(f"  bare FastAPI baseline (mean): {baseline:.1f} events/s")
    for mode, entry in results["qbsync"].items():
        print(
            f"P1 [{mode}] ratio {entry['ratio']:.1%} (target >= {RATIO_TARGET:.0%}), "
            f"p99 at half rate {entry['p99_at_half_rate_ms']} ms (target < {P99_TARGET_MS:.0f}); "
            f"CPU per event bare/qbsync {entry['cpu_cost_ratio']:.1%}"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mode", choices=["both", "pending", "held"], default="both")
    parser.add_argument(
        "--profile-server", help="write cProfile stats of qbsync's server process to this file"
    )
    args = parser.parse_args()
    results = run(args)
    path = write_result(NAME, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
