"""The page's "platform" panel: a small form becomes the full-snapshot events the platform's
backend would send, signed with the platform's inbound secret and posted to qbsync's own
`POST /v1/events`. The page never holds the secret.

The post goes through the app itself (an in-process ASGI transport): the same bytes, signature
check, body limit and intake as a network delivery, without qbsync having to know the address it
is reachable at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from qbsync.deps import SettingsDep
from qbsync.devtools import platform_events
from qbsync.devtools.platform_events import InvoiceLine, TaxRounding
from qbsync.errors import PROBLEM_JSON
from qbsync.security import OrgDep
from qbsync.settings import Settings

router = APIRouter(prefix="/dev/platform", include_in_schema=False)

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=4)]
Rate = Annotated[Decimal, Field(ge=0, le=100, max_digits=6, decimal_places=2)]
MAX_LINES = 20


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientForm(Form):
    client_id: Id
    name: Name
    email: Annotated[str, Field(max_length=100, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


class InvoiceForm(ClientForm):
    """An invoice of one line, repeated `lines` times; its client, service and tax rate are
    sent first, in the same batch. `tax_rounding` is how the platform rounds the tax."""

    invoice_id: Id
    number: Annotated[str, Field(min_length=1, max_length=21, pattern=r"^[A-Za-z0-9-]+$")]
    currency: Currency
    service_id: Id
    service_name: Name
    description: Annotated[str, Field(max_length=200)] = ""
    quantity: Quantity
    unit_price: Amount
    tax_rate_id: Id | None = None
    tax_rate_name: Name = "Tax"
    tax_rate: Rate = Decimal("0")
    lines: Annotated[int, Field(ge=1, le=MAX_LINES)] = 1
    tax_rounding: TaxRounding = "per_rate"


class ExpenseForm(Form):
    expense_id: Id
    supplier_id: Id
    supplier_name: Name
    amount: Amount
    currency: Currency
    category_code: Id | None = None
    description: Annotated[str, Field(max_length=200)] = ""
    tax_rate_id: Id | None = None


class PaymentForm(Form):
    payment_id: Id
    invoice_id: Id
    amount: Amount
    currency: Currency


class Sent(BaseModel):
    types: list[str]
    event_ids: list[str]
    accepted: int
    duplicates: int


@router.post("/clients", response_model=Sent)
async def send_client(
    form: ClientForm, org: OrgDep, request: Request, settings: SettingsDep
) -> Any:
    data = platform_events.client_snapshot(form.client_id, form.name, email=form.email)
    return await _send(request, settings, org.org_id, [("client.upserted", data)])


class PreviewRequest(BaseModel):
    """The body for `POST /v1/quickbooks/preview`: what the invoice form would send."""

    clients: list[dict[str, Any]]
    services: list[dict[str, Any]]
    tax_rates: list[dict[str, Any]]
    invoices: list[dict[str, Any]]


@router.post("/invoices/preview-body", response_model=PreviewRequest)
async def invoice_preview_body(form: InvoiceForm, _: OrgDep) -> PreviewRequest:
    """The page previews with the very snapshots it would send; totals stay Decimal here."""
    events = _invoice_events(form)

    def of_type(event_type: str) -> list[dict[str, Any]]:
        return [data for name, data in events if name == event_type]

    return PreviewRequest(
        clients=of_type("client.upserted"),
        services=of_type("service.upserted"),
        tax_rates=of_type("tax_rate.upserted"),
        invoices=of_type("invoice.upserted"),
    )


@router.post("/invoices", response_model=Sent)
async def send_invoice(
    form: InvoiceForm, org: OrgDep, request: Request, settings: SettingsDep
) -> Any:
    return await _send(request, settings, org.org_id, _invoice_events(form))


def _invoice_events(form: InvoiceForm) -> list[tuple[str, dict[str, Any]]]:
    client = platform_events.client_snapshot(form.client_id, form.name, email=form.email)
    events: list[tuple[str, dict[str, Any]]] = [
        ("client.upserted", client),
        ("service.upserted", platform_events.service_snapshot(form.service_id, form.service_name)),
    ]
    if form.tax_rate_id:
        rate = platform_events.tax_rate_snapshot(
            form.tax_rate_id, form.tax_rate_name, form.tax_rate
        )
        events.append(("tax_rate.upserted", rate))
    line = InvoiceLine(
        service_id=form.service_id,
        description=form.description or form.service_name,
        quantity=form.quantity,
        unit_price=form.unit_price,
        tax_rate_id=form.tax_rate_id,
        tax_rate=form.tax_rate if form.tax_rate_id else Decimal("0"),
    )
    invoice = platform_events.invoice_snapshot(
        form.invoice_id,
        number=form.number,
        client=client,
        lines=[line] * form.lines,
        currency=form.currency,
        issue_date=_today(),
        tax_rounding=form.tax_rounding,
    )
    events.append(("invoice.upserted", invoice))
    return events


@router.post("/expenses", response_model=Sent)
async def send_expense(
    form: ExpenseForm, org: OrgDep, request: Request, settings: SettingsDep
) -> Any:
    data = platform_events.expense_snapshot(
        form.expense_id,
        supplier_id=form.supplier_id,
        supplier_name=form.supplier_name,
        amount=form.amount,
        currency=form.currency,
        spent_on=_today(),
        category_code=form.category_code,
        description=form.description or None,
        tax_rate_id=form.tax_rate_id,
    )
    return await _send(request, settings, org.org_id, [("expense.upserted", data)])


@router.post("/payments", response_model=Sent)
async def send_payment(
    form: PaymentForm, org: OrgDep, request: Request, settings: SettingsDep
) -> Any:
    data = platform_events.payment_snapshot(
        form.payment_id,
        invoice_id=form.invoice_id,
        amount=form.amount,
        currency=form.currency,
        paid_on=_today(),
    )
    return await _send(request, settings, org.org_id, [("payment.recorded", data)])


async def _send(
    request: Request, settings: Settings, org_id: str, events: Sequence[tuple[str, dict[str, Any]]]
) -> Sent | JSONResponse:
    """Sent as one batch, signed with the platform's inbound secret; qbsync's refusal (401,
    413, 422) is passed on as it answered."""
    secret = settings.platform.webhook_secret.get_secret_value()
    envelopes = [platform_events.event(kind, org_id, data) for kind, data in events]
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.internal") as http:
        answer = await platform_events.send_events(
            http, "http://qbsync.internal", secret, envelopes
        )
    if answer.status_code != 202:
        return JSONResponse(answer.json(), status_code=answer.status_code, media_type=PROBLEM_JSON)
    counts = answer.json()
    return Sent(
        types=[kind for kind, _ in events],
        event_ids=[envelope["id"] for envelope in envelopes],
        accepted=counts["accepted"],
        duplicates=counts["duplicates"],
    )


def _today() -> date:
    return datetime.now(UTC).date()
