"""Everything one simulator process holds in memory, and the ledger for each company."""

from __future__ import annotations

import asyncio

from qbsync.simulator import invoices, payments, purchases
from qbsync.simulator.clock import SimClock
from qbsync.simulator.companies.seed import seed_company
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.entities import NAME_LIST_RULES
from qbsync.simulator.errors import object_not_found
from qbsync.simulator.faults import FaultInjector
from qbsync.simulator.ledger import Ledger
from qbsync.simulator.limits import RateLimiter
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
        self.companies = {spec.realm_id: Company(spec) for spec in config.companies}
        for realm_id in self.companies:
            seed_company(self.ledger(realm_id))

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
