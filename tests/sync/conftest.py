"""Sync tests run end to end: qbsync over HTTP, QuickBooks played by the simulator."""

import pytest

from tests.connections.conftest import consent, live, prefix, settings, simulator

__all__ = ["consent", "live", "prefix", "settings", "simulator"]


@pytest.fixture
def webhook_format() -> str:
    """The format the simulator sends its webhooks in (a test may parametrize it)."""
    return "cloudevents"


@pytest.fixture
def cdc_max_objects() -> int:
    """QuickBooks' cap on one CDC answer (a test may lower it)."""
    return 1000
