"""The system under fault, as real processes: the simulator, qbsync's API (uvicorn) and arq
worker(s), each a child process on loopback, over a Redis and a Postgres of the run's own; the
platform's receiver of outbound events is served in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    REDIRECT_URI,
    Child,
    Services,
    bench_settings_values,
    env_of,
    free_port,
    settings_of,
    spawn,
    wait_for_http,
)

from qbsync.settings import Settings
from qbsync.simulator.config import CompanySpec, SimulatorConfig
from qbsync.simulator.testing import serving
from tests.chaos.receiver import EVENTS_SECRET, ChaosReceiver
from tests.chaos.services import OwnPostgres, OwnRedis

# Every case pushes into a company of its own, so its documents are only its own.
REALM_BASE = 9341460000000000
COMPANIES = 40
WORKER_READY = '"chaos_worker_ready"'


def realm_of(index: int) -> str:
    return str(REALM_BASE + index)


@dataclass(frozen=True)
class Timing:
    """How far time is compressed (see tests/chaos/worker.py) and how long a claim lasts."""

    lease_seconds: float
    # A 429's or 5xx's 60 s wait becomes this many seconds.
    wait_seconds: float = 1.0
    redrive_every: int = 1
    # Outbound retries: 10 s, 30 s, 2 min … divided by this.
    delivery_time_scale: float = 80.0
    # Each call to Intuit (the token endpoint included) gives up after this long.
    intuit_timeout_seconds: float = 1.5


@dataclass
class Stack:
    redis: OwnRedis
    postgres: OwnPostgres
    database_url: str
    timing: Timing
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    receiver: ChaosReceiver = field(default_factory=lambda: ChaosReceiver(EVENTS_SECRET))
    simulator: Child | None = None
    api: Child | None = None
    workers: list[Child] = field(default_factory=list)
    simulator_url: str = ""
    api_url: str = ""
    receiver_url: str = ""
    _next_realm: int = 0

    def values(self) -> dict[str, Any]:
        services = Services(self.database_url, self.redis.url, "chaos", "chaos")
        return bench_settings_values(
            services,
            f"chaos-{self.run_id}",
            self.simulator_url,
            log_level="INFO",
            push={"lease_seconds": self.timing.lease_seconds},
            intuit={"timeout_seconds": self.timing.intuit_timeout_seconds},
            platform={
                "events_url": self.receiver_url,
                "events_secret": EVENTS_SECRET,
                "delivery_time_scale": self.timing.delivery_time_scale,
            },
        )

    def env(self) -> dict[str, str]:
        """The QBSYNC_ variables of the stack's qbsync processes."""
        return env_of(self.values())

    @property
    def settings(self) -> Settings:
        return settings_of(self.values())

    def take_realm(self) -> str:
        if self._next_realm >= COMPANIES:
            raise RuntimeError("every simulated company is used: raise COMPANIES")
        self._next_realm += 1
        return realm_of(self._next_realm)

    # -- processes ------------------------------------------------------------------------

    def start_simulator(self) -> None:
        config = SimulatorConfig(
            redirect_uris=(REDIRECT_URI,),
            companies=tuple(
                CompanySpec(realm_id=realm_of(i), name=f"Chaos Company {i}", country="GB")
                for i in range(1, COMPANIES + 1)
            ),
        )
        port = free_port()
        self.simulator = spawn(
            "chaos-simulator",
            "bench._simulator",
            ["--port", str(port), "--config", config.model_dump_json()],
            {},
        )
        self.simulator_url = f"http://127.0.0.1:{port}"

    def start_api(self) -> None:
        port = free_port()
        self.api = spawn("chaos-api", "bench._serve", ["qbsync", "--port", str(port)], self.env())
        self.api_url = f"http://127.0.0.1:{port}"

    def start_worker(self, *options: str) -> Child:
        """A worker; `options` go to tests/chaos/worker.py after the stack's own."""
        worker = spawn(
            "chaos-worker",
            "tests.chaos.worker",
            [
                "--wait-seconds",
                str(self.timing.wait_seconds),
                "--redrive-every",
                str(self.timing.redrive_every),
                *options,
            ],
            env_of(self.values()),
        )
        self.workers.append(worker)
        return worker

    async def worker_ready(self, worker: Child, limit_seconds: float = 60.0) -> None:
        deadline = time.monotonic() + limit_seconds
        while WORKER_READY not in worker.log_path.read_text(errors="replace"):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{worker.log_tail()}")
            await asyncio.sleep(0.05)

    async def ensure_workers(self, *options: str, count: int = 1) -> None:
        """As a supervisor would: a worker that died is replaced, up to `count` running."""
        self.workers = [worker for worker in self.workers if worker.process.poll() is None]
        started = [self.start_worker(*options) for _ in range(count - len(self.workers))]
        for worker in started:
            await self.worker_ready(worker)

    def kill_workers(self) -> int:
        """SIGKILL, by pid, to every worker of this stack; how many were running."""
        killed = 0
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
                killed += 1
        self.workers = []
        return killed

    def stop_workers(self) -> None:
        """SIGTERM: each worker finishes its jobs and leaves the rest queued."""
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        for child in (self.api, self.simulator):
            if child is not None:
                child.stop()


@contextlib.asynccontextmanager
async def running_stack(
    redis: OwnRedis, postgres: OwnPostgres, database_url: str, timing: Timing
) -> AsyncIterator[Stack]:
    stack = Stack(redis, postgres, database_url, timing)
    async with serving(stack.receiver.app()) as receiver_base:
        stack.receiver_url = f"{receiver_base}/events"
        try:
            stack.start_simulator()
            assert stack.simulator is not None
            # The API and the worker read the simulator's address from their settings only.
            stack.start_api()
            assert stack.api is not None
            worker = stack.start_worker()
            await asyncio.to_thread(
                wait_for_http, f"{stack.simulator_url}/_sim/companies", stack.simulator
            )
            await asyncio.to_thread(wait_for_http, f"{stack.api_url}/healthz", stack.api)
            await stack.worker_ready(worker)
            yield stack
        finally:
            await asyncio.to_thread(stack.stop)
