"""Play the platform's backend: full-snapshot events, signed with Standard Webhooks, sent to
qbsync's `POST /v1/events` (architecture.md §3, "Platform event shapes").

The snapshot builders return plain dicts in the event's `data` shape; money goes out as decimal
strings. `send_event` signs the exact bytes it posts, as the platform does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import httpx
from standardwebhooks.webhooks import Webhook

CENT = Decimal("0.01")
AmountsAre = Literal["tax_exclusive", "no_tax"]
TaxRounding = Literal["per_rate", "per_line"]


@dataclass(frozen=True)
class InvoiceLine:
    """One line as the platform holds it; `tax_rate` is the percentage of `tax_rate_id`."""

    service_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate_id: str | None = None
    tax_rate: Decimal = Decimal("0")

    @property
    def net(self) -> Decimal:
        return _cents(self.quantity * self.unit_price)


def client_snapshot(
    client_id: str, name: str, *, email: str | None = None, currency: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"id": client_id, "name": name}
    if email:
        data["email"] = email
    if currency:
        data["currency"] = currency
    return data


def service_snapshot(
    service_id: str, name: str, *, unit_price: Decimal | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"id": service_id, "name": name}
    if unit_price is not None:
        data["unit_price"] = str(unit_price)
    return data


def tax_rate_snapshot(tax_rate_id: str, name: str, rate: Decimal) -> dict[str, Any]:
    return {"id": tax_rate_id, "name": name, "rate": str(rate.quantize(CENT))}


def invoice_snapshot(
    invoice_id: str,
    *,
    number: str,
    client: Mapping[str, Any],
    lines: Sequence[InvoiceLine],
    currency: str,
    issue_date: date,
    due_date: date | None = None,
    status: str = "sent",
    tax_rounding: TaxRounding = "per_rate",
) -> dict[str, Any]:
    """Totals as the platform computes them, rounded half up to the cent: by default tax per
    rate on that rate's net total (UK VAT's rule, and QuickBooks'); `per_line` rounds each
    line's tax, as some platforms do, which can differ from QuickBooks by a cent or more."""
    subtotal = sum((line.net for line in lines), Decimal("0"))
    rates = {line.tax_rate_id: line.tax_rate for line in lines if line.tax_rate_id}
    if tax_rounding == "per_line":
        taxed = [_cents(line.net * line.tax_rate / 100) for line in lines if line.tax_rate_id]
    else:
        taxed = [
            _cents(
                sum((x.net for x in lines if x.tax_rate_id == rate_id), Decimal("0")) * rate / 100
            )
            for rate_id, rate in rates.items()
        ]
    tax = sum(taxed, Decimal("0"))
    amounts_are: AmountsAre = "tax_exclusive" if rates else "no_tax"
    data: dict[str, Any] = {
        "id": invoice_id,
        "number": number,
        "status": status,
        "currency": currency,
        "issue_date": issue_date.isoformat(),
        "amounts_are": amounts_are,
        "client": {key: client[key] for key in ("id", "name", "email") if client.get(key)},
        "lines": [_line(line) for line in lines],
        "subtotal": str(subtotal),
        "tax_total": str(tax),
        "total": str(subtotal + tax),
    }
    if due_date is not None:
        data["due_date"] = due_date.isoformat()
    return data


def expense_snapshot(
    expense_id: str,
    *,
    supplier_id: str,
    supplier_name: str,
    amount: Decimal,
    currency: str,
    spent_on: date,
    category_code: str | None = None,
    description: str | None = None,
    tax_rate_id: str | None = None,
    paid: bool = False,
) -> dict[str, Any]:
    """An expense whose `amount` includes its tax when a tax rate is given."""
    data: dict[str, Any] = {
        "id": expense_id,
        "date": spent_on.isoformat(),
        "supplier": {"id": supplier_id, "name": supplier_name},
        "amount": str(_cents(amount)),
        "amounts_are": "tax_inclusive" if tax_rate_id else "no_tax",
        "currency": currency,
        "paid": paid,
    }
    optional = {
        "category_code": category_code,
        "description": description,
        "tax_rate_id": tax_rate_id,
    }
    data.update({key: value for key, value in optional.items() if value})
    return data


def payment_snapshot(
    payment_id: str,
    *,
    invoice_id: str,
    amount: Decimal,
    currency: str,
    paid_on: date,
    method: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": payment_id,
        "invoice_id": invoice_id,
        "amount": str(_cents(amount)),
        "date": paid_on.isoformat(),
        "currency": currency,
    }
    if method:
        data["method"] = method
    return data


def event(
    event_type: str,
    org_id: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The envelope: a fresh id (qbsync deduplicates by it) and the time it happened."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "organization_id": org_id,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "data": dict(data),
    }


def signed_headers(
    secret: str, body: bytes, *, message_id: str | None = None, now: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed with a `whsec_…` secret."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    now = now or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
    }


async def send_events(
    http: httpx.AsyncClient, base_url: str, secret: str, events: Sequence[Mapping[str, Any]]
) -> httpx.Response:
    """POST one event (a batch when several) to `{base_url}/v1/events`, signed; the answer is
    returned as it came (202 when stored, 401 or 422 with a problem body when refused)."""
    document: Any = dict(events[0]) if len(events) == 1 else [dict(item) for item in events]
    body = json.dumps(document).encode()
    return await http.post(
        f"{base_url.rstrip('/')}/v1/events", content=body, headers=signed_headers(secret, body)
    )


def _line(line: InvoiceLine) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service_id": line.service_id,
        "description": line.description,
        "quantity": str(line.quantity),
        "unit_price": str(line.unit_price),
    }
    if line.tax_rate_id:
        data["tax_rate_id"] = line.tax_rate_id
    return data


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
