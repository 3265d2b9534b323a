"""`qbsync dev` (what `make run` starts): ready within 60 s, Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            found.append(int(entry.name))
    return found


def _answers(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            time.sleep(0.25)
        else:
            return True
    return False


def test_dev_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, simulator_port = _free_port(), _free_port()
    data_dir = tmp_path / "qbsync-data"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"QBSYNC_DATABASE__URL", "QBSYNC_REDIS__URL", "QBSYNC_ENV"}
    }
    env |= {
        "QBSYNC_DATA_DIR": str(data_dir),
        "QBSYNC_SIMULATOR__PORT": str(simulator_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "qbsync.cli", "dev", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and ready is None:
            time.sleep(0.25)
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if response.status_code == 200:
                    ready = response.json()
            except httpx.HTTPError:
                assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert ready == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
        assert _answers(f"http://127.0.0.1:{simulator_port}/connect/oauth2", deadline)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    time.sleep(0.5)
    assert _processes_mentioning(str(data_dir)) == []
