"""The simulator qbsync's own settings expect; the simulator itself knows nothing of qbsync."""

from __future__ import annotations

from pathlib import Path

from qbsync.settings import Settings
from qbsync.simulator.config import SimulatorConfig


def simulator_config(settings: Settings, *, data_dir: Path | None = None) -> SimulatorConfig:
    """Same credentials as qbsync's, webhooks to qbsync, the consent page naming qbsync."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    intuit = settings.intuit
    return SimulatorConfig(
        client_id=intuit.client_id,
        client_secret=intuit.client_secret.get_secret_value(),
        verifier_token=intuit.webhook_verifier_token.get_secret_value(),
        app_name="qbsync",
        redirect_uris=(intuit.redirect_uri,),
        webhook_url=f"http://{host}:{settings.port}/v1/quickbooks/webhooks",
        webhook_format=settings.simulator.webhook_format,
        time_scale=settings.simulator.time_scale,
        data_dir=data_dir,
    )
