"""`python -m bench._simulator --port N --config JSON`: the simulator in a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.server import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True, help="a SimulatorConfig as JSON")
    args = parser.parse_args()
    config = SimulatorConfig.model_validate_json(args.config)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve(config, "127.0.0.1", args.port))


if __name__ == "__main__":
    main()
