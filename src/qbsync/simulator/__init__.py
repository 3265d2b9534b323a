"""A QuickBooks Online simulator: Intuit's OAuth and OpenID, the Accounting API subset, webhooks.

`create_simulator_app(config)` builds the ASGI app, `server.serve()` runs it, and
`testing.running_simulator()` (or `testing.simulator_in_thread()` for blocking clients) runs it
inside a test with access to its state. URL shapes are Intuit's, so a client only changes hosts;
`/_sim/...` is the simulator's own admin API (consent without a browser, a person's edits in
QuickBooks, faults, clock, inspection). State is in memory unless `SimulatorConfig.data_dir` names
a folder to keep it in across restarts.

It imports nothing from the rest of qbsync. docs/simulator.md documents the admin API, how to
point intuit-oauth and python-quickbooks at it, what it refuses as QuickBooks does, and where it
simplifies Intuit's behaviour.
"""

from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.config import CompanySpec, LimitsConfig, SimulatorConfig

__all__ = ["CompanySpec", "LimitsConfig", "SimulatorConfig", "create_simulator_app"]
