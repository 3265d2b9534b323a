"""A Redis server and a Postgres cluster of the chaos run's own, on free loopback ports, so a case
can flush, stop and restart them: the shared servers on 6379 and 5432 are never touched."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis
from bench.common import free_port

POSTGRES_USER = "postgres"


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_USER, "--", *command]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


@dataclass
class OwnRedis:
    """`redis-server --save ""` on a free port: nothing persists, so a restart is empty, as a
    Redis that lost its memory would be."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=1.0)
        try:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"our redis-server on {self.port} did not start")
                time.sleep(0.05)
        finally:
            client.close()

    def flushall(self) -> None:
        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def queued(self, queue_name: str) -> int:
        """Jobs waiting in an arq queue."""
        client = redis.Redis(port=self.port)
        try:
            return int(cast(int, client.zcard(queue_name)))
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL: Redis gone at once, with whatever it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@dataclass
class OwnPostgres:
    """A throwaway cluster (initdb into a temporary folder, trust authentication) that a case
    may stop and start with pg_ctl."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qbsync-chaos-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> OwnPostgres:
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, POSTGRES_USER, POSTGRES_USER)
        subprocess.run(
            _as_postgres(
                [
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    POSTGRES_USER,
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return self.start()

    def _ctl(self, *args: str, extra: str = "", wait: bool = True) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -k {self.root}"
        options += extra
        subprocess.run(
            _as_postgres(
                [
                    str(_pg_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                    "-w" if wait else "-W",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> OwnPostgres:
        self._ctl("start")
        return self

    def stop(self) -> None:
        """`-m immediate`: every backend ends at once, as in a crash."""
        self._ctl("stop", "-m", "immediate")

    def start_refusing(self) -> None:
        """Up, but refusing every connection with SQLSTATE 57P03 ("not accepting connections"),
        as a server does while it recovers after a crash: a standby without hot standby, until
        `promote()`."""
        (self.data / "standby.signal").touch()
        if os.geteuid() == 0:
            shutil.chown(self.data / "standby.signal", POSTGRES_USER, POSTGRES_USER)
        self._ctl("start", extra=" -c hot_standby=off", wait=False)

    def promote(self) -> None:
        """Out of recovery: connections are accepted again."""
        self._ctl("promote")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
