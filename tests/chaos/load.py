"""A load of platform events (clients, invoices, expenses) and the verdict on it, judged only
from outside: the sync log, the simulator's documents and what the platform's receiver got."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import event

from tests.chaos.platform import Platform
from tests.chaos.receiver import ChaosReceiver

VAT = Decimal("0.20")
CENT = Decimal("0.01")
SYNCED_EVENT = "quickbooks.record.synced"
# What a load pushes, and the QuickBooks entity each kind becomes.
ENTITIES = {"client": "Customer", "invoice": "Invoice", "expense": "Bill"}


@dataclass(frozen=True)
class Document:
    kind: str
    platform_id: str
    data: dict[str, Any]
    # What QuickBooks must hold: DisplayName for a customer, TotalAmt for the rest.
    name: str | None = None
    total: Decimal | None = None
    number: str | None = None


@dataclass(frozen=True)
class Load:
    org_id: str
    documents: tuple[Document, ...]

    def events(self) -> list[dict[str, Any]]:
        start = datetime.now(UTC) - timedelta(hours=1)
        tax_rate = event(
            self.org_id,
            "tax_rate.upserted",
            {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"},
            start,
        )
        return [tax_rate] + [
            event(
                self.org_id,
                f"{document.kind}.upserted",
                document.data,
                start + timedelta(milliseconds=index + 1),
            )
            for index, document in enumerate(self.documents)
        ]

    def of(self, kind: str) -> list[Document]:
        return [document for document in self.documents if document.kind == kind]


def make_load(org_id: str, count: int) -> Load:
    """`count` documents: a quarter clients, half invoices (each to one of those clients, so
    some customers come from an invoice's own client first), a quarter bills."""
    clients = max(1, count // 4)
    expenses = max(1, count // 4)
    invoices = max(1, count - clients - expenses)
    tag = org_id.rsplit("_", 1)[-1]
    people = [
        {"id": f"cl_{n}", "name": f"Chaos Client {tag} {n}", "email": f"c{n}@chaos.test"}
        for n in range(clients)
    ]
    documents = [Document("client", person["id"], person, name=person["name"]) for person in people]
    for n in range(invoices):
        price = Decimal("10.00") + n
        number = f"CH-{tag}-{n:05d}"
        documents.append(
            Document(
                "invoice",
                f"inv_{n}",
                _invoice(f"inv_{n}", number, people[n % clients], price),
                total=(price * (1 + VAT)).quantize(CENT),
                number=number,
            )
        )
    for n in range(expenses):
        amount = Decimal("30.00") + n
        documents.append(
            Document("expense", f"exp_{n}", _expense(f"exp_{n}", amount), total=amount)
        )
    return Load(org_id, tuple(documents))


def _invoice(
    invoice_id: str, number: str, client: dict[str, str], price: Decimal
) -> dict[str, Any]:
    tax = (price * VAT).quantize(CENT)
    return {
        "id": invoice_id,
        "number": number,
        "status": "sent",
        "currency": "GBP",
        "issue_date": "2026-11-20",
        "due_date": "2026-12-20",
        "amounts_are": "tax_exclusive",
        "client": client,
        "lines": [
            {
                "service_id": "svc_consulting",
                "quantity": "1",
                "unit_price": str(price),
                "tax_rate_id": "tr_vat20",
            }
        ],
        "subtotal": str(price),
        "tax_total": str(tax),
        "total": str(price + tax),
    }


def _expense(expense_id: str, amount: Decimal) -> dict[str, Any]:
    return {
        "id": expense_id,
        "date": "2026-11-21",
        # Three suppliers: most bills find their vendor made by an earlier one.
        "supplier": {"id": f"sup_{int(expense_id[4:]) % 3}", "name": _supplier(expense_id)},
        "category_code": "travel",
        "description": "Airport",
        "amount": str(amount),
        "amounts_are": "tax_inclusive",
        "tax_rate_id": "tr_vat20",
        "currency": "GBP",
        "paid": False,
        "due_date": "2026-12-21",
    }


def _supplier(expense_id: str) -> str:
    return f"Chaos Taxi {int(expense_id[4:]) % 3}"


# ---------------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """The company's document ids before the load: anything else is the load's."""

    ids: dict[str, set[str]]

    @classmethod
    async def read(cls, platform: Platform, realm_id: str) -> Baseline:
        ids = {}
        for entity in (*ENTITIES.values(), "Vendor"):
            ids[entity] = {row["Id"] for row in await platform.sim.documents(realm_id, entity)}
        return cls(ids)


@dataclass
class Verdict:
    documents: int
    lost: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    def lose(self, what: str) -> None:
        self.lost += 1
        self.problems.append(f"lost: {what}")

    def twice(self, what: str, extra: int = 1) -> None:
        self.duplicates += extra
        self.problems.append(f"twice: {what}")

    def wrong(self, what: str) -> None:
        self.problems.append(what)


async def until_settled(
    platform: Platform, receiver: ChaosReceiver, load: Load, seconds: float
) -> None:
    """Until every record of the load is synced and the platform has heard of each, or the time
    is up (the verdict then says what is missing). The API may be down meanwhile."""
    deadline = time.monotonic() + seconds
    wanted = {(document.kind, document.platform_id) for document in load.documents}
    while time.monotonic() < deadline:
        try:
            records = await platform.records(load.org_id)
        except Exception:
            records = []
        synced = {(r["kind"], r["platform_id"]) for r in records if r["status"] == "synced"}
        if wanted <= synced and wanted <= _announced(receiver, load.org_id):
            return
        await asyncio.sleep(0.25)


def _announced(receiver: ChaosReceiver, org_id: str) -> set[tuple[str, str]]:
    return {
        (payload["data"]["kind"], payload["data"]["platform_id"])
        for payload in receiver.accepted
        if payload["type"] == SYNCED_EVENT and payload["organization_id"] == org_id
    }


async def judge(
    platform: Platform, receiver: ChaosReceiver, load: Load, realm_id: str, baseline: Baseline
) -> Verdict:
    verdict = Verdict(documents=len(load.documents))
    records = {(r["kind"], r["platform_id"]): r for r in await platform.records(load.org_id)}
    for document in load.documents:
        record = records.get((document.kind, document.platform_id))
        if record is None or record["status"] != "synced":
            status = record["status"] if record else "no record"
            error = (record or {}).get("last_error")
            verdict.lose(f"{document.kind} {document.platform_id} is {status} ({error})")
    new: dict[str, list[dict[str, Any]]] = {}
    for entity, known in baseline.ids.items():
        rows = await platform.sim.documents(realm_id, entity)
        new[entity] = [row for row in rows if row["Id"] not in known]
    _judge_customers(verdict, load, new["Customer"])
    _judge_by_number(verdict, load, new["Invoice"])
    _judge_bills(verdict, load, records, new["Bill"], new["Vendor"])
    _judge_announcements(verdict, receiver, load, records)
    return verdict


def _judge_customers(verdict: Verdict, load: Load, customers: list[dict[str, Any]]) -> None:
    names = Counter(str(row["DisplayName"]) for row in customers)
    expected = {str(document.name) for document in load.of("client")}
    for name in sorted(expected):
        same = sum(count for shown, count in names.items() if _named(shown, name))
        if same == 0:
            verdict.lose(f"customer {name}")
        elif same > 1:
            verdict.twice(f"customer {name} x{same}", same - 1)
    for name in names:
        if not any(_named(name, wanted) for wanted in expected):
            verdict.wrong(f"an unexpected customer {name!r}")


def _named(shown: str, name: str) -> bool:
    """The name, or the name with something QuickBooks or qbsync added after a space (a second
    create would come back so, never under the very same name)."""
    return shown == name or shown.startswith(name + " ")


def _judge_by_number(verdict: Verdict, load: Load, invoices: list[dict[str, Any]]) -> None:
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in invoices:
        by_number.setdefault(str(row.get("DocNumber")), []).append(row)
    for document in load.of("invoice"):
        rows = by_number.pop(str(document.number), [])
        if not rows:
            verdict.lose(f"invoice {document.number}")
            continue
        if len(rows) > 1:
            verdict.twice(f"invoice {document.number} x{len(rows)}", len(rows) - 1)
        if Decimal(str(rows[0]["TotalAmt"])) != document.total:
            verdict.wrong(f"invoice {document.number} totals {rows[0]['TotalAmt']}")
    for number, rows in by_number.items():
        verdict.twice(f"an invoice no record asked for: {number}", len(rows))


def _judge_bills(
    verdict: Verdict,
    load: Load,
    records: dict[tuple[str, str], dict[str, Any]],
    bills: list[dict[str, Any]],
    vendors: list[dict[str, Any]],
) -> None:
    by_id = {str(row["Id"]): row for row in bills}
    for document in load.of("expense"):
        record = records.get(("expense", document.platform_id)) or {}
        bill = by_id.pop(str(record.get("qbo_id")), None)
        if bill is None:
            verdict.lose(f"bill of {document.platform_id}")
        elif Decimal(str(bill["TotalAmt"])) != document.total:
            verdict.wrong(f"bill of {document.platform_id} totals {bill['TotalAmt']}")
    for bill_id in by_id:
        verdict.twice(f"a bill no record holds: {bill_id}")
    names = Counter(str(row["DisplayName"]) for row in vendors)
    for name in sorted({_supplier(document.platform_id) for document in load.of("expense")}):
        same = sum(count for shown, count in names.items() if _named(shown, name))
        if same > 1:
            verdict.twice(f"vendor {name} x{same}", same - 1)


def _judge_announcements(
    verdict: Verdict,
    receiver: ChaosReceiver,
    load: Load,
    records: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Once or more under one webhook-id (the platform drops repeats); never two ids for the
    same record's version, never none."""
    ids: dict[tuple[str, str, int], set[str]] = {}
    for webhook_id, payloads in receiver.deliveries_by_id().items():
        for payload in payloads:
            if payload["type"] != SYNCED_EVENT or payload["organization_id"] != load.org_id:
                continue
            if str(payload["id"]) != webhook_id:
                verdict.wrong(f"event {payload['id']} delivered under webhook-id {webhook_id}")
            data = payload["data"]
            key = (data["kind"], data["platform_id"], int(data["version"]))
            ids.setdefault(key, set()).add(webhook_id)
    for document in load.documents:
        record = records.get((document.kind, document.platform_id)) or {}
        key = (document.kind, document.platform_id, int(record.get("version") or 1))
        sent = ids.get(key, set())
        if not sent:
            verdict.lose(f"the platform never heard {document.kind} {document.platform_id}")
        elif len(sent) > 1:
            verdict.twice(f"{len(sent)} synced events for {key}", len(sent) - 1)
