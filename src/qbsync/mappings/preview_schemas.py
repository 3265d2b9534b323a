"""The dry-run preview's request and answer, and the apply step's."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from qbsync.mappings.matching import Candidate
from qbsync.mappings.schemas import MappingView, Strict
from qbsync.mappings.snapshots import (
    ClientSnapshot,
    InvoiceSnapshot,
    PlatformId,
    ServiceSnapshot,
    TaxRateSnapshot,
)
from qbsync.models import CustomerSyncMode

MAX_CLIENTS = 500
MAX_SERVICES = 500
MAX_TAX_RATES = 200
MAX_INVOICES = 100

ClientAction = Literal["link", "create", "ambiguous", "skip"]
ReferenceStatus = Literal["mapped", "missing", "not_needed"]
InvoiceStatus = Literal["ready", "blocked", "skipped"]


class PreviewBody(Strict):
    clients: Annotated[list[ClientSnapshot], Field(max_length=MAX_CLIENTS)] = []
    services: Annotated[list[ServiceSnapshot], Field(max_length=MAX_SERVICES)] = []
    tax_rates: Annotated[list[TaxRateSnapshot], Field(max_length=MAX_TAX_RATES)] = []
    invoices: Annotated[list[InvoiceSnapshot], Field(max_length=MAX_INVOICES)] = []


class CustomerView(BaseModel):
    qbo_id: str
    display_name: str
    email: str | None
    active: bool


class CandidateView(CustomerView):
    reason: str
    score: float


class ClientPreview(BaseModel):
    platform_id: str
    name: str
    listed: bool = Field(description="False for a client only named on an invoice.")
    action: ClientAction
    rule: Literal["mapping", "email", "name", "none"]
    confidence: float
    customer: CustomerView | None
    candidates: list[CandidateView]
    note: str | None


class QboRefView(BaseModel):
    qbo_id: str
    name: str | None


class ServicePreview(BaseModel):
    platform_id: str
    name: str
    status: ReferenceStatus
    item: QboRefView | None
    would_create: bool = Field(description="The push would create an item for it.")
    income_account: QboRefView | None = Field(
        description="The account a created item would post to."
    )
    candidates: list[QboRefView] = Field(description="Items of the same name.")
    note: str | None


class TaxRatePreview(BaseModel):
    platform_id: str
    name: str
    rate: Decimal
    status: ReferenceStatus
    tax_code: QboRefView | None
    candidates: list[QboRefView] = Field(description="Codes whose sales rate is this rate.")
    note: str | None


class Totals(BaseModel):
    subtotal: Decimal = Field(description="Before tax.")
    tax_total: Decimal
    total: Decimal


class TaxLineView(BaseModel):
    rate_id: str
    name: str
    percent: Decimal
    net_amount_taxable: Decimal
    amount: Decimal


class QuickBooksTotals(Totals):
    tax_lines: list[TaxLineView]


class Difference(BaseModel):
    field: str
    platform: str
    quickbooks: str
    reason: str


class Blocker(BaseModel):
    code: str
    field: str
    message: str


class LinePreview(BaseModel):
    index: int
    service_id: str | None
    item: QboRefView | None = Field(description="Null when the push would create the item.")
    income_account: QboRefView | None
    tax_code: QboRefView | None
    amount: Decimal = Field(description="Line.Amount as QuickBooks will store it.")


class InvoiceCustomer(BaseModel):
    platform_id: str
    action: ClientAction
    customer: CustomerView | None


class InvoicePreview(BaseModel):
    platform_id: str
    number: str | None
    status: InvoiceStatus
    doc_number: str | None = Field(description="Null when QuickBooks numbers it itself.")
    global_tax_calculation: str | None = Field(description="Null for a US company.")
    customer: InvoiceCustomer
    lines: list[LinePreview]
    platform_totals: Totals
    quickbooks_totals: QuickBooksTotals | None = Field(
        description="Null while a blocker leaves a line's tax unknown."
    )
    differences: list[Difference]
    blocked_by: list[Blocker]
    notes: list[str]


class CompanyView(BaseModel):
    realm_id: str
    company_name: str | None
    country: str | None
    automated_sales_tax: bool
    customer_sync_mode: CustomerSyncMode


class PreviewSummary(BaseModel):
    clients: dict[str, int]
    services: dict[str, int]
    tax_rates: dict[str, int]
    invoices: dict[str, int]


class PreviewResult(BaseModel):
    preview_id: str | None = Field(
        description="Pass to `POST /v1/quickbooks/preview/apply` to store the proposed links."
    )
    expires_at: datetime | None
    company: CompanyView
    clients: list[ClientPreview]
    services: list[ServicePreview]
    tax_rates: list[TaxRatePreview]
    invoices: list[InvoicePreview]
    summary: PreviewSummary


class ApplyBody(Strict):
    preview_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    # Every client a preview can propose: those listed and those only named on an invoice.
    client_ids: Annotated[
        list[PlatformId], Field(min_length=1, max_length=MAX_CLIENTS + MAX_INVOICES)
    ]


class SkippedLink(BaseModel):
    platform_id: str
    code: str
    reason: str


class ApplyResult(BaseModel):
    applied: list[MappingView]
    skipped: list[SkippedLink]


def customer_view(candidate: Candidate) -> CustomerView:
    return CustomerView(
        qbo_id=candidate.qbo_id,
        display_name=candidate.display_name,
        email=candidate.email,
        active=candidate.active,
    )
