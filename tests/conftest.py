"""Real Postgres and Redis for the suite: the configured URLs, or embedded ones under .qbsync/test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["QBSYNC_ENV"] = "test"

from qbsync.embedded import EmbeddedServices  # noqa: E402

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedServices]:
    services = EmbeddedServices(Path(".qbsync") / "test", database=f"qbsync_test_{RUN_ID}")
    services.start(
        postgres="QBSYNC_DATABASE__URL" not in os.environ,
        redis="QBSYNC_REDIS__URL" not in os.environ,
    )
    yield services
    services.stop()


@pytest.fixture(scope="session")
def redis_url(embedded: EmbeddedServices) -> str:
    return os.environ.get("QBSYNC_REDIS__URL") or embedded.redis_url


@pytest.fixture(scope="session")
def key_prefix() -> str:
    """A Redis key prefix (and arq queue name stem) no other test run shares."""
    return f"qbsync-test-{RUN_ID}"
