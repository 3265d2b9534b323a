"""What `qbsync dev` starts, for one demo run: Postgres and Redis (embedded unless URLs are
set), a scratch database, then the API, an arq worker and the simulator as child processes on
free ports, each logging to a file in a scratch folder. Everything is stopped on the way out."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis import Redis
from sqlalchemy.engine import make_url

from qbsync.demo.display import StepFailedError
from qbsync.embedded import drop_database
from qbsync.runtime import migrate, services
from qbsync.settings import Settings

READY_WITHIN_SECONDS = 45.0
STOP_WITHIN_SECONDS = 15.0
LOG_TAIL_LINES = 12
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
# The dev page's stand-in for the platform's receiver: it verifies each delivery's signature.
DEV_EVENTS_PATH = "/dev/platform/events"


def new_events_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    api: int
    simulator: int

    @classmethod
    def choose(cls, api: int | None) -> Ports:
        return cls(api=api or free_port(), simulator=free_port())


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        # The dev log renderer colours its lines; a message is plain text.
        return ANSI_CODES.sub("", "\n".join(lines[-LOG_TAIL_LINES:]))


@dataclass
class Stack:
    """The running parts of one demo and where to reach them."""

    ports: Ports
    scratch: Path
    run_id: str
    environment: dict[str, str]
    database_url: str = ""
    redis_url: str = ""
    children: list[Child] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.simulator}"

    @property
    def queue_name(self) -> str:
        return self.environment["QBSYNC_REDIS__QUEUE_NAME"]

    def settings(self) -> Settings:
        """The settings every child reads from its environment, as this process sees them."""
        saved = dict(os.environ)
        os.environ.update(self.environment)
        try:
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def spawn(self, name: str, arguments: list[str]) -> Child:
        log = self.scratch / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "qbsync.cli", *arguments],
                env={**os.environ, **self.environment},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches the demo alone, which then stops each child in order.
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def check_alive(self) -> None:
        child = self.exited()
        if child is not None:
            raise StepFailedError(
                f"the {child.name} process exited with code {child.process.returncode}; "
                f"the end of {child.log.name}:\n{child.tail()}"
            )

    def wait_until_answers(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(url, timeout=1.0)
            except httpx.HTTPError as error:
                last = type(error).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            time.sleep(0.2)
        raise StepFailedError(
            f"the {name} did not answer {url} within {READY_WITHIN_SECONDS:.0f} s ({last})"
        )

    def wait_for_worker(self) -> None:
        """arq writes its health-check key as its first act once connected to the queue."""
        key = f"{self.queue_name}:health-check"
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        client = Redis.from_url(self.redis_url)
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if client.exists(key):
                    return
                time.sleep(0.2)
        finally:
            client.close()
        raise StepFailedError(
            f"the worker did not reach the queue within {READY_WITHIN_SECONDS:.0f} s"
        )

    def stop(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN_SECONDS
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def demo_environment(
    ports: Ports, scratch: Path, run_id: str, events_secret: str
) -> dict[str, str]:
    """What `qbsync dev` would set, on this run's ports, plus the platform's events URL."""
    prefix = f"qbsync-demo-{run_id}"
    return {
        "QBSYNC_ENV": "dev",
        "QBSYNC_LOG_JSON": "false",
        "QBSYNC_DATA_DIR": str(scratch / "data"),
        "QBSYNC_PORT": str(ports.api),
        "QBSYNC_SIMULATOR__PORT": str(ports.simulator),
        # The simulator even where Intuit app keys are configured: the demo never calls Intuit.
        "QBSYNC_INTUIT__ENVIRONMENT": "simulator",
        "QBSYNC_INTUIT__REDIRECT_URI": f"http://127.0.0.1:{ports.api}/v1/quickbooks/callback",
        # Outbound events go to the dev receiver, signed with a secret of this run only.
        "QBSYNC_PLATFORM__EVENTS_URL": f"http://127.0.0.1:{ports.api}{DEV_EVENTS_PATH}",
        "QBSYNC_PLATFORM__EVENTS_SECRET": events_secret,
        # A shared Redis keeps this run's queue and keys apart from everyone else's.
        "QBSYNC_REDIS__QUEUE_NAME": f"{prefix}:queue",
        "QBSYNC_REDIS__KEY_PREFIX": prefix,
    }


@contextmanager
def scratch_folder(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="qbsync-demo-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def backing_services(stack: Stack) -> Iterator[None]:
    """Postgres and Redis as `qbsync dev` finds them, and a database of this run's own on that
    Postgres, migrated, then dropped (a configured server is shared with others)."""
    settings = stack.settings()
    with services(settings) as urls:
        scratch_db = f"qbsync_demo_{stack.run_id}"
        database_url = (
            make_url(urls.database_url)
            .set(database=scratch_db)
            .render_as_string(hide_password=False)
        )
        asyncio.run(migrate(database_url))
        stack.database_url = database_url
        stack.redis_url = urls.redis_url
        stack.environment["QBSYNC_DATABASE__URL"] = database_url
        stack.environment["QBSYNC_REDIS__URL"] = urls.redis_url
        try:
            yield
        finally:
            stack.stop()
            asyncio.run(drop_database(database_url))
            _forget_keys(urls.redis_url, stack.environment["QBSYNC_REDIS__KEY_PREFIX"])


def _forget_keys(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def start_processes(stack: Stack) -> None:
    stack.spawn("api", ["serve", "--port", str(stack.ports.api)])
    stack.spawn("worker", ["worker"])
    simulator_data = stack.scratch / "data" / "simulator"
    stack.spawn(
        "simulator",
        ["simulator", "--port", str(stack.ports.simulator), "--data-dir", str(simulator_data)],
    )


@contextmanager
def running_stack(api_port: int | None, *, keep: bool) -> Iterator[Stack]:
    """Yields once the scratch folder exists; the caller starts the parts as steps of its own."""
    run_id = uuid.uuid4().hex[:10]
    with scratch_folder(keep) as scratch:
        ports = Ports.choose(api_port)
        environment = demo_environment(ports, scratch, run_id, new_events_secret())
        stack = Stack(ports=ports, scratch=scratch, run_id=run_id, environment=environment)
        try:
            yield stack
        finally:
            stack.stop()
