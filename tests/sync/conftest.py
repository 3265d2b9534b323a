"""Sync tests run end to end: qbsync over HTTP, QuickBooks played by the simulator."""

from tests.connections.conftest import consent, live, prefix, settings, simulator

__all__ = ["consent", "live", "prefix", "settings", "simulator"]
