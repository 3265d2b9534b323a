"""The fault matrix's processes and services, shared by its cases and stopped after the last
one (package scope), so the rest of the suite does not run beside them.

`--chaos-full` runs each case at full size (hundreds of documents, repeated faults) and writes
bench/results/chaos.{json,md}; without it each case runs short (a handful of documents, seconds)
as part of the suite, and writes nothing."""

from __future__ import annotations

import glob
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from qbsync.embedded import ensure_database
from qbsync.runtime import migrate
from tests.chaos.harness import FULL, SHORT, Size
from tests.chaos.processes import Stack, Timing, running_stack
from tests.chaos.results import Matrix
from tests.chaos.services import OwnPostgres, OwnRedis


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-full",
        action="store_true",
        default=False,
        help="run the fault matrix (tests/chaos) at full size; results in bench/results/chaos.*",
    )


@pytest.fixture(scope="package")
def size(request: pytest.FixtureRequest) -> Size:
    return FULL if request.config.getoption("--chaos-full") else SHORT


@pytest.fixture(scope="package")
def matrix(size: Size) -> Iterator[Matrix]:
    results = Matrix(size.mode)
    yield results
    results.write()


@pytest.fixture(scope="package")
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("the fault matrix needs redis-server (apt-get install redis-server)")
    server = OwnRedis().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def own_postgres() -> Iterator[OwnPostgres]:
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        pytest.skip("the fault matrix needs PostgreSQL's server binaries (postgresql)")
    cluster = OwnPostgres().init()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="package")
async def stack(own_redis: OwnRedis, own_postgres: OwnPostgres, size: Size) -> AsyncIterator[Stack]:
    url = own_postgres.url("qbsync_chaos")
    await ensure_database(url)
    await migrate(url)
    timing = Timing(lease_seconds=size.lease_seconds)
    async with running_stack(own_redis, own_postgres, url, timing) as running:
        yield running
