"""What the fault matrix does and sees from outside qbsync: the platform's calls to qbsync's API
(connect, settings, signed events, the sync log) and the simulator's admin API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from bench.common import REDIRECT_URI, WEBHOOK_SECRET, Signer

from qbsync.security import mint_dev_token
from qbsync.settings import Settings
from qbsync.simulator.faults import FaultSpec

# Answers the platform's sender retries: qbsync stored nothing. R1 wants a 503 while a part is
# down; a 500 would be a bug, so it fails the case.
RETRIED = frozenset({502, 503, 504})


@dataclass
class Intake:
    """Every answer `POST /v1/events` gave, in order: 202 (stored) or a status the sender
    retries; anything else is a defect."""

    statuses: list[int] = field(default_factory=list)
    transport_errors: int = 0

    @property
    def unexpected(self) -> list[int]:
        return [status for status in self.statuses if status != 202 and status not in RETRIED]


class Platform:
    """The platform's backend and frontend, talking to qbsync's API process."""

    def __init__(self, api_url: str, simulator_url: str, settings: Settings) -> None:
        self.api = httpx.AsyncClient(base_url=api_url, timeout=30)
        self.sim = Simulator(simulator_url)
        self.settings = settings
        self.intake = Intake()

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.sim.aclose()

    def headers(self, org_id: str) -> dict[str, str]:
        token = mint_dev_token(self.settings.auth, org_id=org_id, user_id="user_chaos")
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, org_id: str, body: Any = None) -> Any:
        response = await self.api.request(
            method, f"/v1/quickbooks/{path}", json=body, headers=self.headers(org_id)
        )
        if response.status_code != 200:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def connect(self, org_id: str, realm_id: str) -> None:
        """OAuth as a person does it: qbsync's connect, consent at the simulator, qbsync's
        callback in the browser, the frontend's confirm."""
        started = await self.call("POST", "connect", org_id)
        state = parse_qs(urlsplit(str(started["authorization_url"])).query)["state"][0]
        location = await self.sim.consent(realm_id, state)
        callback = urlsplit(location)
        back = await self.api.get(f"{callback.path}?{callback.query}")
        assert back.status_code == 303, back.text
        handle = parse_qs(urlsplit(back.headers["location"]).query)["handle"][0]
        confirmed = await self.call("POST", "connect/confirm", org_id, {"handle": handle})
        assert confirmed["status"] == "connected", confirmed

    async def set_up(self, org_id: str, realm_id: str) -> None:
        """Connected, VAT 20 % and consulting mapped, travel expenses to Travel, auto-push on."""
        await self.connect(org_id, realm_id)
        items = await self.sim.documents(realm_id, "Item")
        accounts = await self.sim.documents(realm_id, "Account")
        for path, mapping in (
            ("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"}),
            ("mappings/services/svc_consulting", {"qbo_id": _id_named(items, "Consulting")}),
            ("mappings/expense-categories/travel", {"qbo_id": _id_named(accounts, "Travel")}),
        ):
            await self.call("PUT", path, org_id, mapping)
        current = await self.call("GET", "settings", org_id)
        body = {key: value for key, value in current.items() if key not in ("saved", "updated_at")}
        body |= {
            "invoice_auto_push": True,
            "default_income_account_id": _id_named(accounts, "Consulting Income"),
        }
        await self.call("PUT", "settings", org_id, body)

    async def send(self, events: Sequence[dict[str, Any]], *, give_up_after: float = 300.0) -> None:
        """One signed delivery, retried as the platform's sender does while qbsync answers
        503 or cannot be reached; every answer is kept in `intake`."""
        raw = json.dumps(list(events)).encode()
        headers = Signer(WEBHOOK_SECRET).headers(raw)
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                response = await self.api.post("/v1/events", content=raw, headers=headers)
            except httpx.TransportError:
                self.intake.transport_errors += 1
            else:
                self.intake.statuses.append(response.status_code)
                if response.status_code == 202:
                    return
                if response.status_code not in RETRIED:
                    raise AssertionError(f"events: {response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError("qbsync did not take the events in time")
            await asyncio.sleep(0.2)
            # The same webhook-id, so a delivery stored before its answer was lost is a
            # duplicate qbsync drops; a fresh timestamp, as a sender's retry signs anew.
            headers = Signer(WEBHOOK_SECRET).headers(raw, msg_id=headers["webhook-id"])

    async def records(self, org_id: str) -> list[dict[str, Any]]:
        """Every sync record of the org, from the sync log, page by page."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            response = await self.api.get(
                "/v1/quickbooks/sync/records", params=params, headers=self.headers(org_id)
            )
            response.raise_for_status()
            page = response.json()
            rows += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return rows

    async def connection_status(self, org_id: str) -> str:
        status: str = (await self.call("GET", "connection", org_id))["status"]
        return status


class Simulator:
    """The simulator's admin API (`/_sim/…`): consent, documents, injected faults."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def consent(self, realm_id: str, state: str) -> str:
        response = await self.http.post(
            "/_sim/authorize",
            json={"realm_id": realm_id, "redirect_uri": REDIRECT_URI, "state": state},
        )
        response.raise_for_status()
        return str(response.json()["location"])

    async def documents(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/_sim/companies/{realm_id}/documents/{entity}")
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()[entity]
        return rows

    async def inject(self, spec: FaultSpec) -> None:
        response = await self.http.post("/_sim/faults", json=spec.model_dump(exclude_none=True))
        response.raise_for_status()

    async def faults_left(self) -> int:
        response = await self.http.get("/_sim/faults")
        response.raise_for_status()
        return sum(int(rule["remaining"]) for rule in response.json())

    async def clear_faults(self) -> None:
        (await self.http.delete("/_sim/faults")).raise_for_status()

    async def expire_access_tokens(self, realm_id: str) -> None:
        response = await self.http.post(
            "/_sim/tokens/expire", json={"kind": "access", "realm_id": realm_id}
        )
        response.raise_for_status()


def _id_named(rows: Sequence[dict[str, Any]], name: str) -> str:
    for row in rows:
        if row.get("Name") == name:
            return str(row["Id"])
    raise AssertionError(f"nothing named {name!r}")
