"""Security tests run end to end: qbsync over HTTP on real Postgres and Redis, QuickBooks played
by the simulator. test_fuzz.py serves its own stack from a thread (schemathesis blocks)."""

from tests.connections.conftest import consent, simulator
from tests.mappings.conftest import settings

__all__ = ["consent", "settings", "simulator"]
