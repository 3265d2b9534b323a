"""The embedded Redis: data kept across runs, never shared or stopped by a concurrent run."""

from __future__ import annotations

from pathlib import Path

import redis

from qbsync.embedded import EmbeddedRedis


def _ping(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return bool(client.ping())
    finally:
        client.close()


def test_two_runs_at_once_each_get_a_working_server(tmp_path: Path) -> None:
    first, second = EmbeddedRedis(tmp_path), EmbeddedRedis(tmp_path)
    first_url = first.start()
    try:
        second_url = second.start()
        assert second_url != first_url
        assert _ping(first_url)
        assert _ping(second_url)
        second.stop()
        assert _ping(first_url), "stopping one run leaves the other's server alone"
        assert [path.name for path in tmp_path.glob("run-*")] == []
    finally:
        second.stop()
        first.stop()


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next(tmp_path: Path) -> None:
    killed = EmbeddedRedis(tmp_path)
    killed.start()
    orphan = killed._process
    assert orphan is not None
    # A run killed outright releases its lock (the OS closes the file) but stops nothing.
    assert killed._lock is not None
    killed._lock.close()
    killed._lock = None
    killed._process = None

    successor = EmbeddedRedis(tmp_path)
    try:
        url = successor.start()
        orphan.wait(timeout=10)
        assert orphan.returncode is not None
        assert _ping(url)
    finally:
        successor.stop()
        if orphan.poll() is None:
            orphan.kill()
