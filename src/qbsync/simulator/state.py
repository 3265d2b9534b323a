"""Everything one simulator holds (in memory, and in its state file), and each company's ledger."""

from __future__ import annotations

import asyncio

from qbsync.simulator import invoices, payments, purchases
from qbsync.simulator.clock import SimClock
from qbsync.simulator.companies.seed import seed_company
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.entities import NAME_LIST_RULES
from qbsync.simulator.errors import object_not_found
from qbsync.simulator.faults import FaultInjector
from qbsync.simulator.identity import SigningKey
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import Ledger
from qbsync.simulator.limits import RateLimiter
from qbsync.simulator.persistence import Saver, StateFile
from qbsync.simulator.stats import Stats
from qbsync.simulator.store import Company
from qbsync.simulator.tokens import TokenStore
from qbsync.simulator.webhooks import WebhookHub

RULES = {**NAME_LIST_RULES, **invoices.RULES, **payments.RULES, **purchases.RULES}


class SimulatorState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock = SimClock(config.time_scale)
        self.tokens = TokenStore(config, self.clock)
        self.stats = Stats()
        self.faults = FaultInjector()
        self.limiter = RateLimiter(config.limits, self.clock)
        self.webhooks = WebhookHub(config, self.clock, self.tokens.is_connected)
        # Set when the server stops, so that stalled (fault-delayed) requests let go.
        self.stopping = asyncio.Event()
        self.signing_key = SigningKey()
        self.companies: dict[str, Company] = {}
        self.file = StateFile(config.data_dir) if config.data_dir is not None else None
        saved = self.file.load() if self.file is not None else None
        if saved is not None:
            self._restore(saved)
        for spec in config.companies:
            if spec.realm_id not in self.companies:
                self.companies[spec.realm_id] = Company(spec)
                seed_company(self.ledger(spec.realm_id))
        self.saver = (
            Saver(self.file, self.snapshot, config.save_delay_real_seconds)
            if self.file is not None
            else None
        )

    def changed(self) -> None:
        """Something may have changed: the state file is rewritten shortly."""
        if self.saver is not None:
            self.saver.changed()

    def snapshot(self) -> JsonObject:
        return {
            "clock": self.clock.timestamp(),
            "signing_key": self.signing_key.pem,
            "tokens": self.tokens.snapshot(),
            "companies": [company.snapshot() for company in self.companies.values()],
        }

    def _restore(self, saved: JsonObject) -> None:
        self.clock.resume_from(saved["clock"])
        self.signing_key = SigningKey(saved["signing_key"])
        self.tokens.restore(saved["tokens"])
        for data in saved["companies"]:
            company = Company.restore(data)
            self.companies[company.realm_id] = company

    def company(self, realm_id: str) -> Company:
        company = self.companies.get(realm_id)
        if company is None:
            raise object_not_found("Company", realm_id)
        return company

    def ledger(self, realm_id: str) -> Ledger:
        return Ledger(self.company(realm_id), self.clock, RULES, self.webhooks.record)

    def response_time(self, realm_id: str | None) -> str:
        """The `time` field of a response, in the company's offset."""
        company = self.companies.get(realm_id or "") or next(iter(self.companies.values()))
        return company.response_time(self.clock.timestamp())

    async def stall(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
