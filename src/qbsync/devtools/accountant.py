"""Play the accountant in QuickBooks through the simulator's admin API (`/_sim/…`, see
docs/simulator.md): record or delete a payment, void an invoice, list invoices with balances or
any entity's stored documents.

Each change is one a person makes in QuickBooks' own screens, so the simulator notifies qbsync
by webhook exactly as Intuit would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

# Intuit's fault code for an id that names nothing in the company (or something deleted).
OBJECT_NOT_FOUND = "610"


class SimulatorRefusedError(Exception):
    """The simulator answered with an error; `message` is Intuit's fault message and
    `fault_code` its code, when given."""

    def __init__(self, status_code: int, message: str, fault_code: str | None = None) -> None:
        super().__init__(f"the simulator answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fault_code = fault_code

    @property
    def not_found(self) -> bool:
        return self.fault_code == OBJECT_NOT_FOUND


@dataclass(frozen=True)
class InvoiceSummary:
    """An invoice as the accountant's list shows it."""

    id: str
    doc_number: str | None
    customer: str | None
    total: Decimal
    balance: Decimal
    voided: bool


async def list_documents(
    http: httpx.AsyncClient, simulator_url: str, realm_id: str, entity: str
) -> list[dict[str, Any]]:
    """Every stored object of `entity` ("Invoice", "Bill", "Customer", …) as QuickBooks holds
    it, inactive and voided ones included; money as Decimal."""
    if not entity.isascii() or not entity.isalpha():
        # The name becomes a path segment of the admin URL.
        raise ValueError(f"not a QuickBooks entity name: {entity!r}")
    body = await _call(http, "GET", _company(simulator_url, realm_id, f"documents/{entity}"))
    found = body.get(entity)
    if not isinstance(found, list):
        raise SimulatorRefusedError(200, f"an answer without a list of {entity}")
    return found


async def list_invoices(
    http: httpx.AsyncClient, simulator_url: str, realm_id: str
) -> list[InvoiceSummary]:
    """Every invoice of the company, voided ones included, newest (highest id) first."""
    found = await list_documents(http, simulator_url, realm_id, "Invoice")
    invoices = [_summary(invoice) for invoice in found]
    return sorted(invoices, key=lambda invoice: int(invoice.id), reverse=True)


async def record_payment(
    http: httpx.AsyncClient,
    simulator_url: str,
    realm_id: str,
    invoice_id: str,
    amount: Decimal,
    *,
    paid_on: date | None = None,
) -> str:
    """A payment of `amount` applied to one invoice; answers the new Payment's id."""
    request: dict[str, Any] = {"invoice_id": invoice_id, "amount": str(amount)}
    if paid_on is not None:
        request["txn_date"] = paid_on.isoformat()
    url = _company(simulator_url, realm_id, "payments")
    body = await _call(http, "POST", url, json_body=request)
    return str(body["Payment"]["Id"])


async def delete_payment(
    http: httpx.AsyncClient, simulator_url: str, realm_id: str, payment_id: str
) -> None:
    """The payment is deleted; its invoices' balances come back."""
    await _call(http, "DELETE", _company(simulator_url, realm_id, f"payments/{payment_id}"))


async def void_invoice(
    http: httpx.AsyncClient, simulator_url: str, realm_id: str, invoice_id: str
) -> None:
    """The invoice stays, zeroed, its balance 0 (QuickBooks' void)."""
    await _call(http, "POST", _company(simulator_url, realm_id, f"invoices/{invoice_id}/void"))


async def payments_by_invoice(
    http: httpx.AsyncClient, simulator_url: str, realm_id: str
) -> dict[str, list[str]]:
    """The ids of the payments applied to each invoice, oldest first (what Delete offers)."""
    payments = await list_documents(http, simulator_url, realm_id, "Payment")
    found: dict[str, list[str]] = {}
    for payment in sorted(payments, key=lambda payment: int(payment["Id"])):
        invoices = {
            str(linked.get("TxnId"))
            for line in payment.get("Line", [])
            for linked in line.get("LinkedTxn", [])
            if linked.get("TxnType") == "Invoice"
        }
        for invoice_id in sorted(invoices):
            found.setdefault(invoice_id, []).append(str(payment["Id"]))
    return found


def _company(simulator_url: str, realm_id: str, path: str) -> str:
    return f"{simulator_url.rstrip('/')}/_sim/companies/{realm_id}/{path}"


async def _call(
    http: httpx.AsyncClient, method: str, url: str, *, json_body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await http.request(method, url, json=json_body)
    # The simulator writes money exactly; floats would round it.
    body: Any = json.loads(response.content, parse_float=Decimal) if response.content else {}
    if response.status_code >= 400:
        raise SimulatorRefusedError(response.status_code, _fault_message(body), _fault_code(body))
    if not isinstance(body, dict):
        raise SimulatorRefusedError(response.status_code, "an answer that is not an object")
    return body


def _fault_message(body: Any) -> str:
    errors = body.get("Fault", {}).get("Error", []) if isinstance(body, dict) else []
    if errors:
        first = errors[0]
        return " ".join(part for part in (first.get("Message"), first.get("Detail")) if part)
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or "no detail")


def _fault_code(body: Any) -> str | None:
    errors = body.get("Fault", {}).get("Error", []) if isinstance(body, dict) else []
    code = errors[0].get("code") if errors else None
    return str(code) if code is not None else None


def _summary(invoice: dict[str, Any]) -> InvoiceSummary:
    customer = invoice.get("CustomerRef") or {}
    return InvoiceSummary(
        id=str(invoice["Id"]),
        doc_number=invoice.get("DocNumber"),
        customer=customer.get("name"),
        total=Decimal(str(invoice.get("TotalAmt", "0"))),
        balance=Decimal(str(invoice.get("Balance", "0"))),
        # QuickBooks marks a voided invoice only in its note (and zeroes it).
        voided=str(invoice.get("PrivateNote", "")).startswith("Voided"),
    )
