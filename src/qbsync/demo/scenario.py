"""The demo's steps, in order: each drives the real API (or the simulator's admin API, as the
accountant) and checks what a person would look at."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.engine import make_url

from qbsync.demo import books
from qbsync.demo.api import Api
from qbsync.demo.display import Display, Step, StepFailedError
from qbsync.demo.platform import Accountant, PlatformSender
from qbsync.demo.stack import DEV_EVENTS_PATH, Stack, backing_services, start_processes
from qbsync.security import mint_dev_token

WAIT_SECONDS = 40.0
POLL_SECONDS = 0.25
T = TypeVar("T")


class Demo:
    """One run: the stack, the platform's two sides, the accountant, and what earlier steps
    found."""

    TITLES = (
        "Start Postgres and Redis",
        "Start the API, a worker and the QuickBooks simulator",
        "Connect the QuickBooks company",
        "Read the company's reference lists",
        "Save the sync settings",
        "Map services to items and tax rates to tax codes",
        "Preview the invoices",
        "Send the platform's clients, services and tax rates",
        "Enable invoice auto-push",
        "Push two invoices and an expense",
        "Check each document in QuickBooks",
        "Record payments in QuickBooks as the accountant",
        "See the payment status come back",
    )

    def __init__(self, stack: Stack, display: Display, cleanup: ExitStack) -> None:
        self.stack = stack
        self.display = display
        self.cleanup = cleanup
        self.issued = books.today()
        self.invoices = books.invoices(self.issued)
        self.expense = books.expense(self.issued)
        self.accounts: dict[str, str] = {}
        # What the pushes produced, by (kind, platform id), and the payments the accountant made.
        self.synced: dict[tuple[str, str], dict[str, Any]] = {}
        self.paid: dict[str, tuple[str, Decimal]] = {}
        # The platform's frontend (a JWT it minted for the org's user) and its backend (signed
        # events): clients only, nothing connects until the API is up.
        settings = stack.settings()
        token = mint_dev_token(
            settings.auth, org_id=books.ORG_ID, user_id=books.USER_ID, minutes=30
        )
        self.api = Api(stack.api_url, token)
        cleanup.callback(self.api.close)
        self.sender = PlatformSender(
            stack.api_url, settings.platform.webhook_secret.get_secret_value(), books.ORG_ID
        )
        self.accountant = Accountant(stack.simulator_url, books.REALM_ID)

    def run(self) -> None:
        steps: tuple[Callable[[Step], None], ...] = (
            self.start_services,
            self.start_processes,
            self.connect,
            self.reference_lists,
            self.save_settings,
            self.map_references,
            self.preview,
            self.send_references,
            self.enable,
            self.push,
            self.check_quickbooks,
            self.record_payments,
            self.payment_status,
        )
        for title, action in zip(self.TITLES, steps, strict=True):
            with self.display.step(title) as step:
                try:
                    action(step)
                except Exception:
                    # A process that died (the simulator, say) is the cause worth naming, not
                    # the refused connection or the 503 the step met after it.
                    self.stack.check_alive()
                    raise

    # -----------------------------------------------------------------------------------------

    def start_services(self, step: Step) -> None:
        step.waiting("starting Postgres and Redis, migrating a scratch database")
        settings = self.stack.settings()
        self.cleanup.enter_context(backing_services(self.stack))
        where = "configured" if settings.database.url else "embedded"
        redis = "configured" if settings.redis.url else "embedded"
        step.check(f"{where} Postgres, {redis} Redis")
        step.check(f"scratch database {make_url(self.stack.database_url).database} migrated")

    def start_processes(self, step: Step) -> None:
        stack = self.stack
        start_processes(stack)
        step.waiting("waiting for /readyz")
        stack.wait_until_answers("API", f"{stack.api_url}/readyz")
        ready = httpx.get(f"{stack.api_url}/readyz", timeout=5).json()
        if ready.get("checks") != {"database": "ok", "redis": "ok"}:
            raise StepFailedError(f"/readyz answered {ready}")
        step.check(f"API on :{stack.ports.api} ready (database ok, redis ok)")
        step.waiting("waiting for the simulator")
        stack.wait_until_answers("simulator", f"{stack.simulator_url}/_sim/companies")
        companies = httpx.get(f"{stack.simulator_url}/_sim/companies", timeout=5).json()
        if books.REALM_ID not in {company["realm_id"] for company in companies}:
            raise StepFailedError(f"the simulator does not hold company {books.REALM_ID}")
        step.check(f"simulator on :{stack.ports.simulator} with {len(companies)} companies")
        step.waiting("waiting for the worker to reach the queue")
        stack.wait_for_worker()
        step.check("worker on the queue")

    def connect(self, step: Step) -> None:
        api = self.api
        started = api.post("/v1/quickbooks/connect")
        consent = urlsplit(started["authorization_url"])
        query = parse_qs(consent.query)
        if not consent.geturl().startswith(self.stack.simulator_url):
            raise StepFailedError(f"consent is not at the simulator: {consent.geturl()}")
        if "com.intuit.quickbooks.accounting" not in query.get("scope", [""])[0]:
            raise StepFailedError("the consent URL does not ask for the accounting scope")
        step.check("consent URL with a state and the accounting scope")
        # The user picks the company and consents: the simulator's admin API does what the
        # consent page's form would, and answers where the browser would be sent.
        decision = httpx.post(
            f"{self.stack.simulator_url}/_sim/authorize",
            json={
                "realm_id": books.REALM_ID,
                "redirect_uri": query["redirect_uri"][0],
                "state": query["state"][0],
            },
            timeout=10,
        )
        if decision.status_code != 200:
            raise StepFailedError(f"the simulator refused the consent: {decision.text[:300]}")
        landed = httpx.get(decision.json()["location"], timeout=30)
        page = landed.headers.get("location", "")
        page_query = parse_qs(urlsplit(page).query)
        if landed.status_code != 303 or page_query.get("quickbooks") != ["confirm"]:
            reason = page_query.get("reason", [landed.text[:200]])[0]
            raise StepFailedError(
                f"the callback did not ask to confirm ({landed.status_code}): {reason}"
            )
        step.check("callback checked the state and sent the browser to confirm")
        confirmed = api.post("/v1/quickbooks/connect/confirm", {"handle": page_query["handle"][0]})
        if confirmed.get("status") != "connected":
            raise StepFailedError(f"confirm answered {confirmed}")
        status = api.get("/v1/quickbooks/connection")
        if status.get("company_name") != books.COMPANY_NAME or status.get("status") != "connected":
            raise StepFailedError(f"the connection reads {status}")
        step.check(f"connected to {status['company_name']} (realm {status['realm_id']})")

    def reference_lists(self, step: Step) -> None:
        api = self.api
        counts = []
        for name in ("accounts", "items", "tax-codes", "customers", "vendors"):
            found = api.get(f"/v1/quickbooks/{name}", limit=200)["items"]
            if not found:
                raise StepFailedError(f"the company lists no {name}")
            counts.append(f"{len(found)} {name}")
            if name == "accounts":
                self.accounts = {row["name"]: row["id"] for row in found}
            if name == "tax-codes":
                step.table(
                    "Tax codes",
                    ("id", "name", "sales %"),
                    [(row["id"], row["name"] or "", str(row["sales_percent"])) for row in found],
                )
        step.check(", ".join(counts))

    def save_settings(self, step: Step) -> None:
        body = {
            "customer_sync_mode": "match_then_create",
            "invoice_auto_push": False,
            "default_income_account_id": self._account("Consulting Income"),
            "expense_mode": "bill",
            "default_expense_account_id": self._account("Office Expenses"),
            "ap_account_id": self._account("Accounts Payable (Creditors)"),
        }
        saved = self.api.put("/v1/quickbooks/settings", body)
        if not saved.get("saved") or saved["ap_account_id"] != body["ap_account_id"]:
            raise StepFailedError(f"the settings read back as {saved}")
        step.check("match-then-create customers, bills on Accounts Payable, auto-push off")

    def map_references(self, step: Step) -> None:
        api = self.api
        found = api.post(
            "/v1/quickbooks/preview", {"services": books.SERVICES, "tax_rates": books.TAX_RATES}
        )
        rows = []
        for service in found["services"]:
            chosen = _first(service["candidates"], f"an item for {service['name']}")
            api.put(
                f"/v1/quickbooks/mappings/services/{service['platform_id']}",
                {"qbo_id": chosen["qbo_id"]},
            )
            rows.append(("service", service["name"], f"{chosen['name']} (item {chosen['qbo_id']})"))
        for rate in found["tax_rates"]:
            chosen = _first(rate["candidates"], f"a tax code at {rate['rate']} %")
            api.put(
                f"/v1/quickbooks/mappings/tax-rates/{rate['platform_id']}",
                {"qbo_id": chosen["qbo_id"], "rate": str(rate["rate"])},
            )
            rows.append(("tax rate", rate["name"], f"{chosen['name']} (code {chosen['qbo_id']})"))
        travel = self._account(books.EXPENSE_ACCOUNT)
        api.put(
            f"/v1/quickbooks/mappings/expense-categories/{books.EXPENSE_CATEGORY}",
            {"qbo_id": travel},
        )
        rows.append(
            (
                "expense category",
                books.EXPENSE_CATEGORY,
                f"{books.EXPENSE_ACCOUNT} (account {travel})",
            )
        )
        step.table("Suggested and mapped", ("kind", "platform", "QuickBooks"), rows)
        stored = sum(
            len(api.get(f"/v1/quickbooks/mappings/{kind}")["items"])
            for kind in ("services", "tax-rates", "expense-categories")
        )
        if stored != len(rows):
            raise StepFailedError(f"{len(rows)} mappings saved, {stored} read back")
        suggested = len(found["services"]) + len(found["tax_rates"])
        step.check(
            f"{suggested} suggestions taken, {stored} mappings stored (each checked in QuickBooks)"
        )

    def send_references(self, step: Step) -> None:
        sender = self.sender
        events = (
            [("client.upserted", client) for client in books.CLIENTS]
            + [("service.upserted", service) for service in books.SERVICES]
            + [("tax_rate.upserted", rate) for rate in books.TAX_RATES]
        )
        for event_type, data in events:
            sender.send(event_type, data)
        step.check(f"{len(events)} signed events accepted (202)")
        refused = sender.send_tampered("client.upserted", books.ACME)
        step.check(f"a copy with a bad signature refused ({refused})")

    def preview(self, step: Step) -> None:
        api = self.api
        found = api.post(
            "/v1/quickbooks/preview",
            {
                "clients": books.CLIENTS,
                "services": books.SERVICES,
                "tax_rates": books.TAX_RATES,
                "invoices": self.invoices,
            },
        )
        step.table(
            "Clients",
            ("client", "action", "rule", "QuickBooks customer"),
            [
                (
                    client["name"],
                    client["action"],
                    client["rule"],
                    client["customer"]["display_name"] if client["customer"] else "(new)",
                )
                for client in found["clients"]
            ],
        )
        rows = []
        for invoice in found["invoices"]:
            ours, theirs = invoice["platform_totals"], invoice["quickbooks_totals"]
            if invoice["status"] != "ready" or theirs is None:
                blockers = "; ".join(b["message"] for b in invoice["blocked_by"])
                raise StepFailedError(
                    f"invoice {invoice['number']} is {invoice['status']}: {blockers}"
                )
            if invoice["differences"]:
                raise StepFailedError(
                    f"invoice {invoice['number']} differs: "
                    + "; ".join(
                        f"{d['field']} {d['platform']} on the platform, {d['quickbooks']} in "
                        f"QuickBooks ({d['reason']})"
                        for d in invoice["differences"]
                    )
                )
            rows.append(
                (
                    invoice["number"] or invoice["platform_id"],
                    f"{ours['subtotal']} + {ours['tax_total']} = {ours['total']}",
                    f"{theirs['subtotal']} + {theirs['tax_total']} = {theirs['total']}",
                )
            )
        step.table("Totals", ("invoice", "platform", "QuickBooks"), rows)
        links = [c["platform_id"] for c in found["clients"] if c["action"] == "link"]
        if links and found["preview_id"]:
            applied = api.post(
                "/v1/quickbooks/preview/apply",
                {"preview_id": found["preview_id"], "client_ids": links},
            )
            step.check(f"{len(applied['applied'])} client link(s) confirmed")
        step.check(f"{len(rows)} invoices ready, QuickBooks totals equal the platform's")

    def enable(self, step: Step) -> None:
        api = self.api
        current = api.get("/v1/quickbooks/settings")
        body = {k: v for k, v in current.items() if k not in ("saved", "updated_at")}
        saved = api.put("/v1/quickbooks/settings", body | {"invoice_auto_push": True})
        if saved.get("invoice_auto_push") is not True:
            raise StepFailedError(f"the settings read back as {saved}")
        step.check("invoice_auto_push on")

    def push(self, step: Step) -> None:
        sender = self.sender
        for invoice in self.invoices:
            sender.send("invoice.upserted", invoice)
        sender.send("expense.upserted", self.expense)
        step.check("3 signed events accepted (202)")
        expected = {("client", c["id"]) for c in books.CLIENTS}
        expected |= {("invoice", i["id"]) for i in self.invoices}
        expected.add(("expense", self.expense["id"]))

        def synced() -> tuple[list[dict[str, Any]] | None, str]:
            records = self.api.get("/v1/quickbooks/sync/records", limit=200)["items"]
            failed = [r for r in records if r["status"] == "failed"]
            if failed:
                first = failed[0]
                raise StepFailedError(
                    f"{first['kind']} {first['platform_id']} failed: {first['last_error']}"
                )
            ours = [r for r in records if (r["kind"], r["platform_id"]) in expected]
            done = [r for r in ours if r["status"] == "synced"]
            step.waiting("waiting for the pushes", done=len(done), total=len(expected))
            seen = ", ".join(f"{r['kind']} {r['platform_id']} {r['status']}" for r in ours)
            return (done if len(done) == len(expected) else None), seen or "no records"

        records = self._wait("every record to be synced", synced)
        step.table(
            "Sync log",
            ("kind", "platform id", "status", "QuickBooks id", "number"),
            [
                (
                    r["kind"],
                    r["platform_id"],
                    r["status"],
                    r["qbo_id"] or "",
                    r["qbo_doc_number"] or "",
                )
                for r in sorted(records, key=lambda r: (r["kind"], r["platform_id"]))
            ],
        )
        self.synced = {(r["kind"], r["platform_id"]): r for r in records}
        step.check(f"{len(records)} records synced, each with its QuickBooks id")

    def check_quickbooks(self, step: Step) -> None:
        accountant = self.accountant
        stored = accountant.invoices()
        for invoice in self.invoices:
            qbo_id = self.synced[("invoice", invoice["id"])]["qbo_id"]
            same_number = [d for d in stored if d.doc_number == invoice["number"]]
            if len(same_number) != 1 or same_number[0].id != qbo_id:
                raise StepFailedError(
                    f"QuickBooks holds {len(same_number)} invoice(s) numbered {invoice['number']}"
                )
            total = same_number[0].total
            if total != Decimal(invoice["total"]):
                raise StepFailedError(
                    f"{invoice['number']} totals {total} in QuickBooks, "
                    f"{invoice['total']} on the platform"
                )
        step.check(f"{len(self.invoices)} invoices, each once, totals equal")
        bill_id = self.synced[("expense", self.expense["id"])]["qbo_id"]
        bills = [d for d in accountant.documents("Bill") if d["Id"] == bill_id]
        if len(bills) != 1 or Decimal(str(bills[0]["TotalAmt"])) != Decimal(self.expense["amount"]):
            raise StepFailedError(f"bill {bill_id} reads {bills}")
        step.check(f"the expense is bill {bill_id} of {self.expense['amount']}")
        customers = accountant.documents("Customer")
        for client in books.CLIENTS:
            named = [c for c in customers if c.get("DisplayName") == client["name"]]
            if len(named) != 1:
                raise StepFailedError(
                    f"QuickBooks holds {len(named)} customers named {client['name']}"
                )
        step.check("one customer per client (Acme Ltd linked, not copied)")

    def record_payments(self, step: Step) -> None:
        accountant = self.accountant
        full, part = self.invoices
        self.paid = {
            full["id"]: ("paid", Decimal(full["total"])),
            part["id"]: ("partially_paid", Decimal("300.00")),
        }
        for invoice_id, (_, amount) in self.paid.items():
            qbo_id = self.synced[("invoice", invoice_id)]["qbo_id"]
            payment = accountant.record_payment(qbo_id, amount)
            step.check(f"payment {payment} of {amount} on invoice {qbo_id}")

    def payment_status(self, step: Step) -> None:
        api = self.api

        def came_back() -> tuple[dict[str, tuple[str, dict[str, Any]]] | None, str]:
            seen: dict[str, tuple[str, dict[str, Any]]] = {}
            states = []
            for invoice_id, (status, _) in self.paid.items():
                record = api.get(f"/v1/quickbooks/sync/records/invoice/{invoice_id}")
                told = [
                    event["data"]
                    for event in self.received("quickbooks.invoice.payment_updated")
                    if event["data"].get("invoice_id") == invoice_id
                ]
                last = told[0]["status"] if told else None
                states.append(
                    f"{invoice_id}: sync log {record['payment_status']}, platform told {last}"
                )
                if record["payment_status"] == status and last == status:
                    seen[invoice_id] = (status, told[0])
            step.waiting(
                "waiting for the webhook, the pull and the platform's event",
                done=len(seen),
                total=len(self.paid),
            )
            return (seen if len(seen) == len(self.paid) else None), "; ".join(states)

        seen = self._wait("the payment status in the sync log and the platform's events", came_back)
        step.table(
            "Payment status",
            ("invoice", "sync log", "event to the platform", "paid", "balance"),
            [
                (invoice_id, status, event["status"], event["amount_paid"], event["balance"])
                for invoice_id, (status, event) in seen.items()
            ],
        )
        for invoice_id, (status, event) in seen.items():
            _, amount = self.paid[invoice_id]
            if Decimal(event["amount_paid"]) != amount:
                raise StepFailedError(
                    f"{invoice_id}: the platform was told {event['amount_paid']} paid, not {amount}"
                )
            step.check(f"{invoice_id} {status}")
        synced_events = len(self.received("quickbooks.record.synced"))
        step.check(
            f"the platform's receiver verified {synced_events} record.synced and "
            f"{len(self.paid)} payment_updated events"
        )

    # -----------------------------------------------------------------------------------------

    def _wait(self, what: str, probe: Callable[[], tuple[T | None, str]]) -> T:
        """Polls until `probe` finds what it looks for; a timeout names what it saw last."""
        deadline = time.monotonic() + WAIT_SECONDS
        seen = "nothing yet"
        while time.monotonic() < deadline:
            self.stack.check_alive()
            found, seen = probe()
            if found is not None:
                return found
            time.sleep(POLL_SECONDS)
        raise StepFailedError(f"waited {WAIT_SECONDS:.0f} s for {what}; last seen: {seen}")

    def _account(self, name: str) -> str:
        if name not in self.accounts:
            raise StepFailedError(f"the company has no account named {name!r}")
        return self.accounts[name]

    def received(self, event_type: str) -> list[dict[str, Any]]:
        """What the dev receiver accepted for the org, newest first: only deliveries whose
        signature it verified are kept."""
        items: list[dict[str, Any]] = self.api.get(DEV_EVENTS_PATH)["items"]
        return [e for e in items if e["type"] == event_type and e["signature_verified"]]


def _first(candidates: list[dict[str, Any]], what: str) -> dict[str, Any]:
    if not candidates:
        raise StepFailedError(f"no suggestion of {what}")
    return candidates[0]
