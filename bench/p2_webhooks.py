"""P2, QuickBooks webhook acknowledgement: `POST /v1/quickbooks/webhooks` answered (signature
checked on the raw bytes, each change stored once in `qbo_webhook_events`, the org's pull job
queued in Redis, 200) with p99 <= 500 ms at 50 requests/s.

qbsync runs under uvicorn in its own process (`bench._serve qbsync`, the settings of `qbsync
serve`) on a scratch database and the configured Redis, with one org connected to the simulated
UK company beforehand through qbsync's real OAuth flow, so that the company's changes are stored
for that org and its pull is queued. The simulator is stopped before the load: nothing answers
at Intuit's address while qbsync acknowledges, as nothing there should be called.

The load is open loop: `--rate` deliveries a second for `--seconds` (after `--warmup` seconds at
the same rate, not measured), each due at its moment whatever the earlier answers do, so a slow
answer that holds up later ones is counted. Each delivery is a CloudEvents array
(`application/cloudevents+json`) of `--min-events`..`--max-events` changes with fresh ids
(Invoice, Payment, Customer; created or updated), signed as Intuit signs it: `intuit-signature`
= base64(HMAC-SHA256(verifier token, raw body)). `--redeliver F` resends that share of earlier
deliveries unchanged, as Intuit retries (they must store nothing). Latency is counted from when
each delivery was due (`latency`, the headline) and from when it was sent (`service_latency`).
Afterwards every acknowledged change must be in `qbo_webhook_events`, once.

    python -m bench.p2_webhooks [--rate 50] [--seconds 30] [--warmup 3] [--max-events 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from arq.connections import RedisSettings, create_pool
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    REDIRECT_URI,
    UK_REALM,
    BackendCpu,
    Child,
    Services,
    bench_settings_values,
    env_of,
    forget_redis_keys,
    free_port,
    machine,
    machine_busy_seconds,
    percentile,
    qbsync_in_process,
    scratch_services,
    settings_of,
    simulator_process,
    spawn,
    wait_for_http,
    write_result,
)
from qbsync.models import QboWebhookEvent
from qbsync.simulator.config import SimulatorConfig
from qbsync.sync.pull_schedule import PULL_JOB

NAME = "p2_webhooks"
ORG = "org_bench_webhooks"
WEBHOOK_PATH = "/v1/quickbooks/webhooks"
P99_TARGET_MS = 500.0
# (entity, operations, weight): what an accountant's day in QuickBooks mostly changes.
CHANGES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("Invoice", ("created", "updated"), 5),
    ("Payment", ("created", "updated"), 4),
    ("Customer", ("updated",), 1),
)


def latency_ms(latencies: list[float]) -> dict[str, float]:
    return {
        f"p{int(q * 100)}_ms": round(percentile(latencies, q) * 1000, 2) for q in (0.5, 0.95, 0.99)
    } | {"max_ms": round(max(latencies, default=0.0) * 1000, 2)}


def intuit_signature(body: bytes, token: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    event_ids: tuple[str, ...]
    redelivery: bool


class Deliveries:
    """Signed CloudEvents deliveries for one company: fresh event ids, or (a `redeliver` share)
    an earlier delivery resent byte for byte."""

    def __init__(
        self, realm_id: str, token: str, min_events: int, max_events: int, redeliver: float
    ) -> None:
        self.realm_id = realm_id
        self.token = token
        self.min_events = min_events
        self.max_events = max_events
        self.redeliver = redeliver
        self.random = random.Random(20261202)  # a load mix, not a secret
        self.sent: list[Delivery] = []
        self.run = uuid.uuid4().hex[:8]
        self.counter = 0
        kinds = [(entity, operations) for entity, operations, _ in CHANGES]
        weights = [weight for *_, weight in CHANGES]
        self.kinds = kinds
        self.weights = weights

    def _event(self) -> dict[str, Any]:
        self.counter += 1
        entity, operations = self.random.choices(self.kinds, self.weights)[0]
        operation = self.random.choice(operations)
        moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "specversion": "1.0",
            "id": f"bench-{self.run}-{self.counter:07d}",
            "source": "intuit.bench",
            "type": f"qbo.{entity.lower()}.{operation}.v1",
            "datacontenttype": "application/json",
            "time": moment,
            "intuitentityid": str(self.random.randint(1, 20_000)),
            "intuitaccountid": self.realm_id,
            "data": {},
        }

    def next(self) -> Delivery:
        if self.sent and self.random.random() < self.redeliver:
            earlier = self.random.choice(self.sent)
            return Delivery(earlier.body, earlier.headers, earlier.event_ids, redelivery=True)
        events = [
            self._event() for _ in range(self.random.randint(self.min_events, self.max_events))
        ]
        body = json.dumps(events, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/cloudevents+json",
            "intuit-signature": intuit_signature(body, self.token),
        }
        delivery = Delivery(body, headers, tuple(str(e["id"]) for e in events), redelivery=False)
        self.sent.append(delivery)
        return delivery


@dataclass
class Answer:
    index: int
    measured: bool
    delivery: Delivery
    due: float
    sent: float = 0.0
    answered: float = 0.0
    status: int | None = None
    error: str | None = None
    receipt: dict[str, Any] = field(default_factory=dict)


def _lean_httpcore() -> None:
    """As P1: httpcore's failed `import sniffio` searched sys.path on every request (0.3 ms of
    the generator's CPU each); None in sys.modules fails it at once. This process only."""
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


async def open_loop(
    base_url: str,
    server: Child,
    deliveries: Deliveries,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    client_timeout: float,
    backends: BackendCpu,
) -> tuple[list[Answer], dict[str, float]]:
    """Deliveries due every 1/rate s for warmup + seconds; each is sent at its moment on one
    shared client (keep-alive, up to 256 connections) without waiting for earlier answers."""
    warm = int(rate * warmup)
    total = warm + int(rate * seconds)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    answers: list[Answer] = []
    cpu: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=client_timeout
    ) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        marks: dict[str, Any] = {}

        async def one(index: int) -> None:
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            if index == warm:
                marks["server"], marks["generator"] = server.cpu_seconds(), time.process_time()
                marks["machine"], marks["at"] = machine_busy_seconds(), loop.time()
            delivery = deliveries.next()
            answer = Answer(index, index >= warm, delivery, due, sent=loop.time())
            answers.append(answer)
            try:
                response = await client.post(
                    WEBHOOK_PATH, content=delivery.body, headers=delivery.headers
                )
            except httpx.HTTPError as error:
                answer.answered = loop.time()
                answer.error = type(error).__name__
                return
            answer.answered = loop.time()
            answer.status = response.status_code
            if response.status_code == 200:
                answer.receipt = response.json()

        backends_before = await backends.reading()
        await asyncio.gather(*(one(index) for index in range(total)))
        ended = loop.time()
        cpu["seconds"] = ended - marks.get("at", start)
        cpu["server"] = server.cpu_seconds() - marks.get("server", 0.0)
        cpu["generator"] = time.process_time() - marks.get("generator", 0.0)
        cpu["machine"] = machine_busy_seconds() - marks.get("machine", 0.0)
        # Postgres backends and Redis over the warm-up too (their readings are not instant).
        cpu["backends"] = BackendCpu.spent(backends_before, await backends.reading())
    answers.sort(key=lambda answer: answer.index)
    return answers, cpu


def _start_server(env: dict[str, str], profile: str | None) -> tuple[str, Child]:
    port = free_port()
    extra = ["--profile", profile] if profile else []
    child = spawn("p2-qbsync", "bench._serve", ["qbsync", "--port", str(port), *extra], env)
    base_url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base_url}/healthz", child)
    return base_url, child


async def _connect(values: dict[str, Any], services: Services, simulator_url: str) -> None:
    async with qbsync_in_process(settings_of(values), services) as api:
        await api.connect(ORG, UK_REALM, simulator_url)


async def _stored(database_url: str) -> dict[str, Any]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            ids = list(await connection.scalars(select(QboWebhookEvent.event_id)))
            waiting = await connection.scalar(
                select(func.count()).where(
                    QboWebhookEvent.org_id == ORG, QboWebhookEvent.processed_at.is_(None)
                )
            )
            outcomes = await connection.execute(
                select(QboWebhookEvent.outcome, func.count()).group_by(QboWebhookEvent.outcome)
            )
            return {
                "event_ids": ids,
                "waiting_for_pull": int(waiting or 0),
                "outcomes": {str(outcome): int(count) for outcome, count in outcomes},
            }
    finally:
        await engine.dispose()


async def _queued_jobs(redis_url: str, queue_name: str) -> dict[str, int]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        jobs = await pool.queued_jobs(queue_name=queue_name)
        return dict(Counter(job.function for job in jobs))
    finally:
        await pool.aclose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    _lean_httpcore()
    run_id = uuid.uuid4().hex[:8]
    load_before = machine()["loadavg"]
    print(
        f"P2 webhooks: {args.rate:g} deliveries/s for {args.seconds:g} s (after {args.warmup:g} s "
        f"warm-up), {args.min_events}-{args.max_events} changes each; load average {load_before}"
    )
    with scratch_services("p2") as services:
        config = SimulatorConfig(redirect_uris=(REDIRECT_URI,))
        with simulator_process(config) as (simulator_url, _):
            values = bench_settings_values(services, run_id, simulator_url)
            asyncio.run(_connect(values, services, simulator_url))
        settings = settings_of(values)
        token = settings.intuit.webhook_verifier_token.get_secret_value()
        deliveries = Deliveries(UK_REALM, token, args.min_events, args.max_events, args.redeliver)
        backends = BackendCpu(services.database_url, services.redis_url)
        base_url, server = _start_server(env_of(values), args.profile_server)
        try:
            answers, cpu = asyncio.run(
                open_loop(
                    base_url,
                    server,
                    deliveries,
                    rate=args.rate,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    client_timeout=args.timeout,
                    backends=backends,
                )
            )
            server.check_alive()
        finally:
            server.stop()
        stored = asyncio.run(_stored(services.database_url))
        queued = asyncio.run(_queued_jobs(services.redis_url, settings.redis.queue_name))
        asyncio.run(forget_redis_keys(services.redis_url, [f"qbsync-bench-{run_id}"]))

    measured = [answer for answer in answers if answer.measured]
    ok = [answer for answer in measured if answer.status == 200]
    statuses = Counter(str(answer.status) for answer in answers if answer.status is not None)
    errors = Counter(answer.error for answer in answers if answer.error is not None)
    # Every change in a delivery qbsync acknowledged must be stored, once; a change first sent
    # in a delivery that failed may or may not be (its redelivery is what counts).
    acknowledged = {
        event_id
        for answer in answers
        if answer.status == 200
        for event_id in answer.delivery.event_ids
    }
    sent_ids = {event_id for answer in answers for event_id in answer.delivery.event_ids}
    stored_ids = stored["event_ids"]
    stored_set = set(stored_ids)
    lost = sorted(acknowledged - stored_set)
    unexpected = sorted(stored_set - sent_ids)
    fresh = [answer for answer in answers if not answer.delivery.redelivery]
    events_sent = sum(len(answer.delivery.event_ids) for answer in fresh)
    receipts_stored = sum(int(answer.receipt.get("stored", 0)) for answer in answers)
    receipts_duplicates = sum(int(answer.receipt.get("duplicates", 0)) for answer in answers)
    redelivered = [answer for answer in answers if answer.delivery.redelivery]
    # A redelivery answered 200 must store nothing: every change in it is a duplicate.
    redelivered_changes = sum(
        len(answer.delivery.event_ids) for answer in redelivered if answer.status == 200
    )
    latencies = [answer.answered - answer.due for answer in ok]
    service = [answer.answered - answer.sent for answer in ok]
    send_lag = [answer.sent - answer.due for answer in measured]
    seconds = cpu["seconds"]
    summary = latency_ms(latencies)
    # Second by second (by due time, warm-up included): where the slow answers were.
    start = answers[0].due if answers else 0.0
    by_second: dict[int, list[Answer]] = {}
    for answer in answers:
        by_second.setdefault(int(answer.due - start), []).append(answer)
    timeline = [
        {
            "second": second,
            "measured": group[0].measured,
            "deliveries": len(group),
            "not_200": sum(1 for answer in group if answer.status != 200),
            "p50_ms": round(
                percentile([a.answered - a.due for a in group if a.status == 200], 0.5) * 1000, 1
            ),
            "max_ms": round(
                max((a.answered - a.due for a in group if a.status == 200), default=0.0) * 1000,
                1,
            ),
        }
        for second, group in sorted(by_second.items())
    ]
    p99 = summary["p99_ms"]
    failures = sum(1 for answer in measured if answer.status != 200)
    results: dict[str, Any] = {
        "settings": {
            "rate_per_second": args.rate,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "events_per_delivery": [args.min_events, args.max_events],
            "redeliver_share": args.redeliver,
            "client_timeout_seconds": args.timeout,
            "content_type": "application/cloudevents+json",
            "uvicorn": "1 process, httptools/uvloop (auto), access_log off, proxy_headers on",
            "database": services.database_source,
            "redis": services.redis_source,
        },
        "loadavg_before": load_before,
        "deliveries": {
            "sent": len(answers),
            "measured": len(measured),
            "measured_ok_200": len(ok),
            "redeliveries": len(redelivered),
            "statuses": dict(sorted(statuses.items())),
            "errors": dict(errors),
            "achieved_per_second": round(len(measured) / seconds, 2) if seconds else None,
            # How late the generator sent each one (it must keep its schedule for the figure
            # to mean anything).
            "send_lag_p99_ms": round(percentile(send_lag, 0.99) * 1000, 2),
            "send_lag_max_ms": round(max(send_lag, default=0.0) * 1000, 2),
        },
        "latency": summary,
        "service_latency": latency_ms(service),
        "changes": {
            "sent": events_sent,
            "distinct_sent": len(sent_ids),
            "acknowledged": len(acknowledged),
            "stored_rows": len(stored_ids),
            "stored_distinct": len(stored_set),
            "lost": len(lost),
            "lost_examples": lost[:5],
            "unexpected_rows": len(unexpected),
            "receipts_stored": receipts_stored,
            "receipts_duplicates": receipts_duplicates,
            "redelivered_changes": redelivered_changes,
            "waiting_for_pull": stored["waiting_for_pull"],
            "outcomes": stored["outcomes"],
        },
        "queued_jobs": queued,
        "server_cpu_utilisation": round(cpu["server"] / seconds, 3) if seconds else None,
        "server_cpu_ms_per_delivery": round(1000 * cpu["server"] / len(measured), 3)
        if measured
        else None,
        "generator_cpu_utilisation": round(cpu["generator"] / seconds, 3) if seconds else None,
        "machine_cpu_utilisation": round(cpu["machine"] / seconds, 3) if seconds else None,
        "postgres_redis_cpu_ms_per_delivery": round(1000 * cpu["backends"] / len(answers), 3)
        if answers
        else None,
        "timeline": timeline,
        "p99_ms": p99,
        "targets": {"p99_at_most_ms": P99_TARGET_MS, "lost": 0, "failures": 0},
    }
    no_loss = (
        not lost
        and not unexpected
        and len(stored_ids) == len(stored_set) == len(sent_ids) == receipts_stored
        and receipts_duplicates == redelivered_changes
    )
    results["meets"] = {
        "p99": p99 <= P99_TARGET_MS,
        "no_failures": failures == 0,
        "no_loss": no_loss,
        "pull_queued": queued.get(PULL_JOB, 0) >= 1,
    }
    results["met"] = all(results["meets"].values())
    print(
        f"  {len(measured)} deliveries measured ({results['deliveries']['achieved_per_second']}/s),"
        f" {failures} not 200 {dict(statuses)} {dict(errors)}; send lag p99 "
        f"{results['deliveries']['send_lag_p99_ms']} ms"
    )
    print(
        f"  latency from due: p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
        f"p99 {p99} ms, max {summary['max_ms']} ms; server CPU "
        f"{results['server_cpu_ms_per_delivery']} ms a delivery"
    )
    print(
        f"  changes: {events_sent} sent (+{len(redelivered)} redeliveries), "
        f"{len(acknowledged)} acknowledged, {len(stored_ids)} rows stored, {len(lost)} lost; "
        f"queued jobs {queued}"
    )
    print(
        f"P2 p99 {p99} ms (target <= {P99_TARGET_MS:.0f} ms): "
        f"{'met' if results['meets']['p99'] else 'NOT met'}; "
        f"no loss: {'yes' if no_loss else 'NO'}; all 200: {'yes' if failures == 0 else 'NO'}"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=50.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--min-events", type=int, default=1, help="changes per delivery, least")
    parser.add_argument("--max-events", type=int, default=5, help="changes per delivery, most")
    parser.add_argument(
        "--redeliver",
        type=float,
        default=0.0,
        help="share of deliveries that resend an earlier one unchanged (0..1)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, seconds")
    parser.add_argument(
        "--profile-server", help="write cProfile stats of qbsync's server process to this file"
    )
    parser.add_argument("--name", default=NAME, help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    if not 1 <= args.min_events <= args.max_events:
        parser.error("need 1 <= --min-events <= --max-events")
    results = run(args)
    path = write_result(args.name, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
