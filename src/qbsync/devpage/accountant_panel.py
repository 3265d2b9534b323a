"""The page's "QuickBooks" panel: the accountant's own changes in the org's connected company,
made through the simulator's admin API, so QuickBooks' webhooks then reach qbsync as they
would from Intuit. Only while qbsync runs against the simulator.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from qbsync.connections.intuit import intuit_endpoints
from qbsync.deps import DatabaseDep, SettingsDep
from qbsync.devtools import accountant
from qbsync.errors import AppError, ConflictError
from qbsync.mappings.company import connected_company
from qbsync.security import OrgDep
from qbsync.settings import Settings

router = APIRouter(prefix="/dev/accountant", include_in_schema=False)
QboIdPath = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,31}$")]


class InvoiceRow(BaseModel):
    id: str
    doc_number: str | None
    customer: str | None
    total: Decimal
    balance: Decimal
    voided: bool
    payment_ids: list[str]


class Invoices(BaseModel):
    realm_id: str
    items: list[InvoiceRow]


class PaymentForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_id: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,31}$")]
    amount: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]


class RecordedPayment(BaseModel):
    payment_id: str


class QuickBooksRefusedError(AppError):
    status = 422
    code = "quickbooks_refused"


@router.get("/invoices", response_model=Invoices)
async def invoices(
    org: OrgDep, db: DatabaseDep, settings: SettingsDep, request: Request
) -> Invoices:
    simulator, realm_id = await _target(org.org_id, db, settings)
    http = request.app.state.http
    try:
        found = await accountant.list_invoices(http, simulator, realm_id)
        payments = await accountant.payments_by_invoice(http, simulator, realm_id)
        rows = [
            InvoiceRow(**asdict(invoice), payment_ids=payments.get(invoice.id, []))
            for invoice in found
        ]
    except accountant.SimulatorRefusedError as error:
        raise QuickBooksRefusedError(error.message) from error
    return Invoices(realm_id=realm_id, items=rows)


@router.post("/payments", response_model=RecordedPayment)
async def record_payment(
    form: PaymentForm, org: OrgDep, db: DatabaseDep, settings: SettingsDep, request: Request
) -> RecordedPayment:
    simulator, realm_id = await _target(org.org_id, db, settings)
    try:
        payment_id = await accountant.record_payment(
            request.app.state.http, simulator, realm_id, form.invoice_id, form.amount
        )
    except accountant.SimulatorRefusedError as error:
        # An invoice QuickBooks does not hold is the invoice's fault, anything else the amount's.
        field = "invoice_id" if error.not_found else "amount"
        raise QuickBooksRefusedError(error.message, field=field) from error
    return RecordedPayment(payment_id=payment_id)


@router.delete("/payments/{payment_id}", status_code=204)
async def delete_payment(
    payment_id: QboIdPath, org: OrgDep, db: DatabaseDep, settings: SettingsDep, request: Request
) -> None:
    simulator, realm_id = await _target(org.org_id, db, settings)
    try:
        await accountant.delete_payment(request.app.state.http, simulator, realm_id, payment_id)
    except accountant.SimulatorRefusedError as error:
        raise QuickBooksRefusedError(error.message, field="payment_id") from error


@router.post("/invoices/{invoice_id}/void", status_code=204)
async def void_invoice(
    invoice_id: QboIdPath, org: OrgDep, db: DatabaseDep, settings: SettingsDep, request: Request
) -> None:
    simulator, realm_id = await _target(org.org_id, db, settings)
    try:
        await accountant.void_invoice(request.app.state.http, simulator, realm_id, invoice_id)
    except accountant.SimulatorRefusedError as error:
        raise QuickBooksRefusedError(error.message, field="invoice_id") from error


async def _target(org_id: str, db: DatabaseDep, settings: Settings) -> tuple[str, str]:
    """The simulator's base URL and the org's connected realm."""
    if not settings.uses_simulator:
        raise ConflictError(
            "The QuickBooks panel works against the simulator only; qbsync is configured for "
            "Intuit.",
            code="simulator_not_in_use",
        )
    company = await connected_company(db, org_id, purpose="act as its accountant")
    return intuit_endpoints(settings).api_base_url, company.realm_id
