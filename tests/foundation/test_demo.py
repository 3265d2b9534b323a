"""`qbsync demo` (`make demo`) end to end: real processes, real Postgres and Redis, the simulator;
its output read as a person (or a CI log, without a terminal) would read it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qbsync.cli import main
from qbsync.demo.scenario import Demo

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "qbsync.cli", "demo"]
ANSI = re.compile(r"\x1b\[")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _processes_on(port: int) -> list[int]:
    """Processes the demo started for the API on `port` (each child's environment says so)."""
    marker = f"QBSYNC_PORT={port}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _demo(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *arguments],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )


def test_the_demo_runs_to_the_end_and_prints_each_check() -> None:
    """Every step's ✓ line, with what it checked; the tables read as plain text in a log."""
    port = _free_port()
    started = time.monotonic()
    demo = _demo("--port", str(port))
    stdout, stderr = demo.communicate(timeout=90)
    assert demo.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert time.monotonic() - started < 60
    for number, title in enumerate(Demo.TITLES, start=1):
        assert f"✓ {number:>2}. {title} — " in stdout, title
    for checked in (
        "connected to Trafalgar Consulting Ltd (realm 9341450000000002)",
        "a copy with a bad signature refused (401)",
        "2 invoices ready, QuickBooks totals equal the platform's",
        "5 records synced, each with its QuickBooks id",
        "2 invoices, each once, totals equal",
        "inv_demo_1 paid; inv_demo_2 partially_paid",
    ):
        assert checked in stdout
    # Totals side by side, as the preview computed them on both sides.
    assert re.search(
        r"DEMO-1002 .*625\.00 \+ 91\.25 = 716\.25 .*625\.00 \+ 91\.25 = 716\.25", stdout
    )
    assert "✗" not in stdout
    assert not ANSI.search(stdout), "no terminal: no colours, no live display"
    assert "demo complete" in stdout
    assert _processes_on(port) == []


def test_a_step_that_fails_names_itself_exits_non_zero_and_stops_everything() -> None:
    """The API's port is taken: the start step fails with the API's own words, the exit code is
    1 and nothing the demo started is left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        demo = _demo("--port", str(port), "--quiet")
        stdout, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 1, stdout + stderr
    assert "✓  1. Start Postgres and Redis" in stdout
    assert "✗  2. Start the API, a worker and the QuickBooks simulator: the api process exited" in (
        stdout
    )
    assert "address already in use" in stdout.lower()
    assert (
        "qbsync demo: failed at step 2 (Start the API, a worker and the QuickBooks simulator)"
        in stderr
    )
    assert "✓  3." not in stdout
    assert _processes_on(port) == []


def test_ctrl_c_stops_every_process_the_demo_started() -> None:
    port = _free_port()
    demo = _demo("--port", str(port), "--quiet")
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("✓  3."):
            break
    else:
        raise AssertionError(demo.communicate(timeout=30))
    assert _processes_on(port), "the API, worker and simulator are running"
    demo.send_signal(signal.SIGINT)
    _, stderr = demo.communicate(timeout=30)
    assert demo.returncode == 130
    assert "stopped; every process it started is stopped" in stderr
    assert _processes_on(port) == []


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_not_a_port_is_refused_before_anything_starts(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--port", port, "--quiet"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert f"{port!r} is not a port (1-65535)" in err
    assert "✓" not in out


def test_the_simulator_dying_mid_run_is_named_and_everything_stops() -> None:
    """The step that meets the dead simulator names it (with the end of its log), not the
    refused connection or qbsync's 5xx it saw; the exit code is 1; nothing is left running."""
    port = _free_port()
    demo = _demo("--port", str(port), "--quiet")
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("✓  3."):
            break
    else:
        raise AssertionError(demo.communicate(timeout=30))
    simulators = [
        pid
        for pid in _processes_on(port)
        if b"simulator" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    ]
    assert len(simulators) == 1, simulators
    os.kill(simulators[0], signal.SIGKILL)
    rest, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 1, rest + stderr
    failed = [line for line in rest.splitlines() if line.startswith("✗")]
    assert len(failed) == 1, rest
    assert "the simulator process exited with code -9" in failed[0]
    assert "qbsync demo: failed at step" in stderr
    assert _processes_on(port) == []
