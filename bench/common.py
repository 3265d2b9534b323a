"""What the benchmarks share: Postgres and Redis (a scratch database), child processes, the
simulator and qbsync settings, signed platform events, connecting an org, and the results file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from qbsync.embedded import EmbeddedServices, drop_database
from qbsync.main import create_app
from qbsync.runtime import migrate
from qbsync.security import mint_dev_token
from qbsync.settings import DEV_PLATFORM_WEBHOOK_SECRET, Settings
from qbsync.simulator.config import SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
UK_REALM = "9341450000000002"
US_REALM = "9341450000000001"
REDIRECT_URI = "http://qbsync.bench/v1/quickbooks/callback"
SETTINGS_URL = "https://platform.bench/settings/integrations"
WEBHOOK_SECRET = DEV_PLATFORM_WEBHOOK_SECRET
ACME = {"id": "cl_acme", "name": "Acme Ltd", "email": "accounts@acme.test"}


# ---------------------------------------------------------------------------------------------
# The machine and the results file


def machine() -> dict[str, Any]:
    model = "unknown"
    load = ["?"]
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        # Other work on the machine (the load average when the results were written).
        "loadavg": " ".join(load),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


def machine_busy_seconds() -> float:
    """CPU time every core has spent busy since boot (Linux /proc/stat, all but idle/iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU spent by the Postgres backends serving one database and by the Redis server, when
    they run on this machine: the part of a request's cost that is not in qbsync's process.

    Backends are found in pg_stat_activity at each reading; one that started between two
    readings counts from zero, one that ended between them is missed (pooled connections
    rarely end)."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        parsed = make_url(database_url)
        self._connect = {
            "user": parsed.username,
            "password": parsed.password,
            "host": str(parsed.query.get("host") or parsed.host or "127.0.0.1"),
            "port": parsed.port,
            "database": parsed.database,
        }
        self._redis_url = redis_url
        self._redis_pid: int | None = None

    async def pids(self) -> tuple[list[int], int | None]:
        connection = await asyncpg.connect(**self._connect)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()
        if self._redis_pid is None:
            client = Redis.from_url(self._redis_url)
            try:
                info = await client.info("server")
                self._redis_pid = int(info["process_id"])
            finally:
                await client.aclose()
        return [int(row["pid"]) for row in rows], self._redis_pid

    async def reading(self) -> dict[int, float]:
        backends, redis_pid = await self.pids()
        pids = [*backends, *([redis_pid] if redis_pid else [])]
        return {pid: process_cpu_seconds(pid) for pid in pids}

    @staticmethod
    def spent(before: Mapping[int, float], after: Mapping[int, float]) -> float:
        return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary_ms(latencies: Sequence[float]) -> dict[str, float]:
    return {
        f"p{int(q * 100)}_ms": round(percentile(latencies, q) * 1000, 2) for q in (0.5, 0.9, 0.99)
    } | {"max_ms": round(max(latencies, default=0.0) * 1000, 2)}


# ---------------------------------------------------------------------------------------------
# Postgres and Redis: the configured servers, or the embedded ones


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    # Where they came from: "QBSYNC_DATABASE__URL" / "embedded", for the results file.
    database_source: str
    redis_source: str


@contextlib.contextmanager
def scratch_services(name: str) -> Iterator[Services]:
    """A fresh, migrated database on the configured (or embedded) Postgres, dropped at the end,
    and the configured (or embedded) Redis."""
    configured_db = os.environ.get("QBSYNC_DATABASE__URL")
    configured_redis = os.environ.get("QBSYNC_REDIS__URL")
    embedded: EmbeddedServices | None = None
    if not (configured_db and configured_redis):
        embedded = EmbeddedServices(ROOT / ".qbsync" / "bench").start(
            postgres=configured_db is None, redis=configured_redis is None
        )
    try:
        base = configured_db or (embedded.database_url if embedded else "")
        redis_url = configured_redis or (embedded.redis_url if embedded else "")
        database = f"qbsync_bench_{name}_{uuid.uuid4().hex[:8]}"
        url = make_url(base).set(database=database).render_as_string(hide_password=False)
        asyncio.run(migrate(url))
        try:
            yield Services(
                database_url=url,
                redis_url=redis_url,
                database_source="QBSYNC_DATABASE__URL" if configured_db else "embedded",
                redis_source="QBSYNC_REDIS__URL" if configured_redis else "embedded",
            )
        finally:
            asyncio.run(drop_database(url))
    finally:
        if embedded is not None:
            embedded.stop()


async def forget_redis_keys(redis_url: str, prefixes: Sequence[str]) -> int:
    """Remove this run's keys (queue, limiter, caches) from a shared Redis."""
    client = Redis.from_url(redis_url)
    removed = 0
    try:
        for prefix in prefixes:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    removed += await client.delete(*batch)
                    batch = []
            if batch:
                removed += await client.delete(*batch)
    finally:
        await client.aclose()
    return removed


# ---------------------------------------------------------------------------------------------
# qbsync's settings: one dict, given to this process as Settings and to children as QBSYNC_ env


def bench_settings_values(
    services: Services, run_id: str, simulator_url: str | None, **extra: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "env": "test",
        "log_level": "INFO",
        "log_json": True,
        "database": {"url": services.database_url},
        "redis": {
            "url": services.redis_url,
            "queue_name": f"qbsync-bench-{run_id}:queue",
            "key_prefix": f"qbsync-bench-{run_id}",
        },
        "platform": {"settings_url": SETTINGS_URL, "webhook_secret": WEBHOOK_SECRET},
        "intuit": {"environment": "simulator", "redirect_uri": REDIRECT_URI},
    }
    if simulator_url is not None:
        values["intuit"] |= {
            "authorize_url": f"{simulator_url}/connect/oauth2",
            "token_url": f"{simulator_url}/oauth2/v1/tokens/bearer",
            "revoke_url": f"{simulator_url}/v2/oauth2/tokens/revoke",
            "api_base_url": simulator_url,
        }
    for group, fields in extra.items():
        if isinstance(fields, dict):
            values.setdefault(group, {}).update(fields)
        else:
            values[group] = fields
    return values


def settings_of(values: Mapping[str, Any]) -> Settings:
    return Settings(**values)


def env_of(values: Mapping[str, Any]) -> dict[str, str]:
    """The same values as the QBSYNC_ variables a child process reads."""
    env: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            for field, inner in value.items():
                env[f"QBSYNC_{key.upper()}__{field.upper()}"] = _env_text(inner)
        else:
            env[f"QBSYNC_{key.upper()}"] = _env_text(value)
    return env


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Child processes


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not end in time; only this child, by its pid."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, module: str, args: Sequence[str], env: Mapping[str, str]) -> Child:
    """`python -m module args…` from the repository root, its output in a log file."""
    log_dir = Path(tempfile.gettempdir()) / "qbsync-bench"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path)


def wait_for_http(url: str, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout} s:\n{child.log_tail()}")


@contextlib.contextmanager
def simulator_process(
    config: SimulatorConfig, extra_args: Sequence[str] = (), start_timeout: float = 60.0
) -> Iterator[tuple[str, Child]]:
    """The simulator in a process of its own (its CPU is not the benchmarked process's);
    `extra_args` go to `bench._simulator` (`--seed`)."""
    port = free_port()
    child = spawn(
        "simulator",
        "bench._simulator",
        ["--port", str(port), "--config", config.model_dump_json(), *extra_args],
        {},
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/_sim/companies", child, timeout=start_timeout)
        yield base_url, child
    finally:
        child.stop()


# ---------------------------------------------------------------------------------------------
# Platform events


class Signer:
    """Standard Webhooks headers for a body, as the platform signs its events."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def headers(self, body: bytes, msg_id: str | None = None) -> dict[str, str]:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        stamp = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": self._webhook.sign(msg_id, stamp, body.decode()),
        }


def invoice_data(invoice_id: str, number: str) -> dict[str, Any]:
    """A UK invoice of one 10.00 consulting line at 20 % VAT, to Acme Ltd."""
    return {
        "id": invoice_id,
        "number": number,
        "status": "sent",
        "currency": "GBP",
        "issue_date": "2026-11-20",
        "due_date": "2026-12-20",
        "amounts_are": "tax_exclusive",
        "client": ACME,
        "lines": [
            {
                "service_id": "svc_consulting",
                "quantity": "1",
                "unit_price": "10.00",
                "tax_rate_id": "tr_vat20",
            }
        ],
        "subtotal": "10.00",
        "tax_total": "2.00",
        "total": "12.00",
    }


def event(org_id: str, event_type: str, data: dict[str, Any], occurred: datetime) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "type": event_type,
        "organization_id": org_id,
        "occurred_at": occurred.isoformat(),
        "data": data,
    }


# ---------------------------------------------------------------------------------------------
# qbsync in this process (setup only) and an org connected to a simulated company


@contextlib.asynccontextmanager
async def qbsync_in_process(settings: Settings, services: Services) -> AsyncIterator[QbsyncApi]:
    app = create_app(settings, database_url=services.database_url, redis_url=services.redis_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://qbsync.bench", timeout=60
        ) as client:
            yield QbsyncApi(app, client, settings)


@dataclass
class QbsyncApi:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    def headers(self, org_id: str) -> dict[str, str]:
        token = mint_dev_token(self.settings.auth, org_id=org_id, user_id="user_bench")
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, org_id: str, body: Any = None, expect: int = 200
    ) -> Any:
        response = await self.client.request(
            method, f"/v1/quickbooks/{path}", json=body, headers=self.headers(org_id)
        )
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def connect(self, org_id: str, realm_id: str, simulator_url: str) -> None:
        """OAuth as the tests drive it: qbsync's connect, consent at the simulator, qbsync's
        callback, and the frontend's confirm."""
        started = await self.call("POST", "connect", org_id)
        state = parse_qs(urlsplit(str(started["authorization_url"])).query)["state"][0]
        async with httpx.AsyncClient(timeout=30) as sim:
            consent = await sim.post(
                f"{simulator_url}/_sim/authorize",
                json={"realm_id": realm_id, "redirect_uri": REDIRECT_URI, "state": state},
            )
            consent.raise_for_status()
        callback = urlsplit(str(consent.json()["location"]))
        back = await self.client.get(f"{callback.path}?{callback.query}")
        if back.status_code != 303:
            raise RuntimeError(f"callback: {back.status_code} {back.text}")
        handle = parse_qs(urlsplit(back.headers["location"]).query)["handle"][0]
        confirmed = await self.call("POST", "connect/confirm", org_id, {"handle": handle})
        if confirmed["status"] != "connected":
            raise RuntimeError(f"not connected: {confirmed}")

    async def send(self, body: Any) -> dict[str, Any]:
        raw = json.dumps(body).encode()
        response = await self.client.post(
            "/v1/events", content=raw, headers=Signer(WEBHOOK_SECRET).headers(raw)
        )
        if response.status_code != 202:
            raise RuntimeError(f"events: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result


async def simulator_documents(simulator_url: str, realm_id: str, entity: str) -> list[Any]:
    async with httpx.AsyncClient(timeout=60) as sim:
        response = await sim.get(f"{simulator_url}/_sim/companies/{realm_id}/documents/{entity}")
        response.raise_for_status()
        rows: list[Any] = response.json()[entity]
        return rows


async def simulator_stats(simulator_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as sim:
        response = await sim.get(f"{simulator_url}/_sim/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def id_named(rows: Sequence[Mapping[str, Any]], name: str, key: str = "Name") -> str:
    for row in rows:
        if row.get(key) == name:
            return str(row["Id"])
    raise RuntimeError(f"nothing named {name!r}")
