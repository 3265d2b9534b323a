"""`qbsync dev` (what `make run` starts): ready within 60 s, Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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


def _start_dev(data_dir: Path, port: int, simulator_port: int) -> subprocess.Popen[bytes]:
    """`qbsync dev` as `make run` starts it; answers once /readyz and the simulator do."""
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
    deadline = time.monotonic() + 60
    ready = None
    while time.monotonic() < deadline and ready is None:
        time.sleep(0.25)
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if response.status_code == 200:
                ready = response.json()
        except httpx.HTTPError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode()[-2000:]) from None  # type: ignore[union-attr]
    assert ready == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert _answers(f"http://127.0.0.1:{simulator_port}/connect/oauth2", deadline)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)


def test_dev_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port, simulator_port = _free_port(), _free_port()
    data_dir = tmp_path / "qbsync-data"
    process = _start_dev(data_dir, port, simulator_port)
    _stop(process)
    time.sleep(0.5)
    assert _processes_mentioning(str(data_dir)) == []


def test_a_connection_made_in_dev_is_still_connected_after_a_restart(tmp_path: Path) -> None:
    """The newcomer's path end to end: dev token, connect, consent at the simulator, land on the
    dev settings page, confirm; then stop `make run`, start it again, and the company is still
    connected (the simulator keeps its companies and tokens under the data folder)."""
    port, simulator_port = _free_port(), _free_port()
    data_dir = tmp_path / "qbsync-data"
    api = f"http://127.0.0.1:{port}"
    process = _start_dev(data_dir, port, simulator_port)
    try:
        token = httpx.post(f"{api}/dev/token", json={"org_id": "org_dev"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        started = httpx.post(f"{api}/v1/quickbooks/connect", headers=headers).json()
        query = parse_qs(urlsplit(started["authorization_url"]).query)
        callback = httpx.post(
            f"http://127.0.0.1:{simulator_port}/_sim/authorize",
            json={
                "realm_id": "9341450000000001",
                "redirect_uri": query["redirect_uri"][0],
                "state": query["state"][0],
            },
        ).json()["location"]
        landed = httpx.get(callback)
        assert landed.status_code == 303
        page = landed.headers["location"]
        assert page.startswith(f"{api}/?quickbooks=confirm&handle=")
        assert httpx.get(page).headers["content-type"].startswith("text/html")
        handle = parse_qs(urlsplit(page).query)["handle"][0]
        confirmed = httpx.post(
            f"{api}/v1/quickbooks/connect/confirm", json={"handle": handle}, headers=headers
        )
        assert confirmed.json()["status"] == "connected", confirmed.text
    finally:
        _stop(process)
    process = _start_dev(data_dir, port, simulator_port)
    try:
        status = httpx.get(f"{api}/v1/quickbooks/connection", headers=headers).json()
        assert status["status"] == "connected"
        assert status["company_name"] == "Craig's Design and Landscaping"
        tested = httpx.post(f"{api}/v1/quickbooks/test-connection", headers=headers, timeout=30)
        assert tested.json()["ok"] is True, tested.text
    finally:
        _stop(process)
