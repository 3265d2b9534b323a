"""`python -m bench._simulator --port N --config JSON [--seed JSON]`: the simulator in a process
of its own.

`--seed` (P5) fills one company's books before the simulator serves, through the simulator's own
ledger (the same validation, VAT and numbering as its API, without HTTP or request counting):
`{"realm_id", "invoices", "age_days", "out"}`. Everything in that company (its seeded lists and
the invoices) is stamped `age_days` ago: the simulator's clock is moved back while they are
written and forward again before it serves, so Change Data Capture since any later moment does
not see them, as if they had been pushed long before the watermark. Each invoice is one
10.00 consulting line at 20 % VAT to Acme Ltd, DocNumber `QBS-00000`… ; one JSON line per
invoice (Id, DocNumber, SyncToken, TotalAmt) is written to `out`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn

from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.companies.seed import seed_company
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.server import serve
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.store import Company

DAY = 86_400.0


def seed_invoice_number(index: int) -> str:
    return f"QBS-{index:05d}"


def _named(company: Company, entity: str, key: str, name: str) -> str:
    for object_id, row in company.table(entity).items():
        if row.get(key) == name:
            return str(object_id)
    raise RuntimeError(f"no {entity} named {name!r} in {company.realm_id}")


def seeded_state(config: SimulatorConfig, seed: dict[str, Any]) -> SimulatorState:
    """A simulator whose company `seed["realm_id"]` holds `seed["invoices"]` invoices, all of
    it (lists and invoices) stamped `seed["age_days"]` ago."""
    realm_id = str(seed["realm_id"])
    age = float(seed["age_days"]) * DAY
    # Companies are added by hand below, once the clock is set back, instead of by __init__.
    state = SimulatorState(config.model_copy(update={"companies": ()}))
    state.config = config
    state.clock.advance(-age)
    try:
        for spec in config.companies:
            state.companies[spec.realm_id] = Company(spec)
            seed_company(state.ledger(spec.realm_id))
        ledger = state.ledger(realm_id)
        customer = _named(ledger.company, "Customer", "DisplayName", "Acme Ltd")
        item = _named(ledger.company, "Item", "Name", "Consulting")
        rows: list[JsonObject] = []
        for index in range(int(seed["invoices"])):
            body: JsonObject = {
                "CustomerRef": {"value": customer},
                "DocNumber": seed_invoice_number(index),
                "GlobalTaxCalculation": "TaxExcluded",
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": Decimal("10.00"),
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": item},
                            "Qty": Decimal("1"),
                            "UnitPrice": Decimal("10.00"),
                            "TaxCodeRef": {"value": "3"},
                        },
                    }
                ],
            }
            rows.append(ledger.create("Invoice", WriteRequest(body)))
    finally:
        state.clock.advance(age)
    with Path(str(seed["out"])).open("w") as out:
        for row in rows:
            line = {
                "Id": row["Id"],
                "DocNumber": row["DocNumber"],
                "SyncToken": row["SyncToken"],
                "TotalAmt": format(row["TotalAmt"], "f"),
            }
            out.write(json.dumps(line) + "\n")
    return state


async def serve_state(config: SimulatorConfig, state: SimulatorState, port: int) -> None:
    """As `qbsync.simulator.server.serve`, for a state built beforehand."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_simulator_app(config, state=state),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    await server.serve()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True, help="a SimulatorConfig as JSON")
    parser.add_argument(
        "--seed", help='{"realm_id", "invoices", "age_days", "out"} as JSON (see above)'
    )
    args = parser.parse_args()
    config = SimulatorConfig.model_validate_json(args.config)

    async def run() -> None:
        if args.seed is None:
            await serve(config, "127.0.0.1", args.port)
            return
        state = seeded_state(config, json.loads(args.seed))
        await serve_state(config, state, args.port)

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run())


if __name__ == "__main__":
    main()
