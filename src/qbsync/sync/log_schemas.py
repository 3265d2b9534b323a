"""Response bodies of the sync log: what happened to each record, and the org's totals."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from qbsync.models import RecordKind, RecordStatus


class QboFault(BaseModel):
    """QuickBooks' own words for a refused request, as its Fault said them."""

    code: str | None = Field(default=None, description='Intuit\'s error code, e.g. "6140".')
    element: str | None = Field(default=None, description="The field QuickBooks objected to.")
    type: str | None = Field(default=None, description='e.g. "ValidationFault".')
    message: str | None = None
    detail: str | None = None


class RecordError(BaseModel):
    """Why the last push did not land, as the push engine stored it."""

    code: str = Field(description="Stable, for programs to branch on.")
    message: str = Field(description="For people: what happened and what to do.")
    fault: QboFault | None = Field(default=None, description="QuickBooks' Fault, when it sent one.")
    intuit_tid: str | None = Field(
        default=None, description="Intuit's transaction id, for a support case with Intuit."
    )


class RecordWarning(BaseModel):
    """A finding of the last push that did not stop it (e.g. `total_differs`)."""

    # Warnings may carry details of their own (amounts, ids); they are passed on as stored.
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class RecordItem(BaseModel):
    kind: RecordKind
    platform_id: str
    status: RecordStatus
    version: int = Field(description="Bumped by each newer snapshot from the platform.")
    qbo_id: str | None = Field(description="The QuickBooks id, once pushed.")
    qbo_doc_number: str | None = Field(description="The document number in QuickBooks.")
    attempts: int = Field(description="Push attempts of the current version.")
    warnings: list[RecordWarning]
    last_error: RecordError | None
    payment_status: str | None = Field(
        description="An invoice's status as QuickBooks last showed it: `unpaid`, "
        "`partially_paid`, `paid`, `voided` or `deleted` (null until QuickBooks reported one)."
    )
    removed_in_quickbooks: str | None = Field(
        description="`voided` or `deleted` when QuickBooks did it on its own: later platform "
        "changes fail `deleted_in_quickbooks` until the record is retried."
    )
    updated_at: dt.datetime


class ClientSummary(BaseModel):
    name: str | None
    email: str | None
    company_name: str | None


class InvoiceSummary(BaseModel):
    number: str | None
    client_name: str | None
    issue_date: str | None = Field(description="YYYY-MM-DD")
    currency: str | None
    total: str | None = Field(description="A decimal string.")
    status: str | None = Field(description="The platform's status of the invoice.")


class ExpenseSummary(BaseModel):
    supplier_name: str | None
    date: str | None = Field(description="YYYY-MM-DD")
    amount: str | None = Field(description="A decimal string.")
    currency: str | None
    category_code: str | None


class PaymentSummary(BaseModel):
    invoice_id: str | None
    amount: str | None = Field(description="A decimal string.")
    date: str | None = Field(description="YYYY-MM-DD")
    currency: str | None


SnapshotSummary = ClientSummary | InvoiceSummary | ExpenseSummary | PaymentSummary


class RecordDetail(RecordItem):
    operation: str = Field(description="What the platform last asked: `upsert`, `void`, `delete`.")
    synced_version: int | None = Field(description="The version QuickBooks holds.")
    synced_at: dt.datetime | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = Field(description="When the push tries again.")
    snapshot_summary: Annotated[
        SnapshotSummary,
        Field(
            description="The platform's snapshot in a few fields a person recognises (its "
            "kind's shape); a deleted entity's record keeps its last full snapshot."
        ),
    ]


class StatusCounts(BaseModel):
    pending: int
    in_progress: int
    synced: int
    failed: int
    held: int
    not_pushed: int
    ignored: int


class KindCounts(BaseModel):
    client: StatusCounts
    invoice: StatusCounts
    expense: StatusCounts
    payment: StatusCounts


# Every status and kind has its field: a new one without it fails at import, not in a response.
assert set(StatusCounts.model_fields) == {status.value for status in RecordStatus}
assert set(KindCounts.model_fields) == {kind.value for kind in RecordKind}


class CallsToday(BaseModel):
    core: int = Field(description="Writes.")
    coreplus: int = Field(description="Reads, queries and CDC: what Intuit meters.")
    date: dt.date = Field(description="The UTC day counted.")


class CallsThisMonth(BaseModel):
    core: int = Field(description="Writes.")
    coreplus: int = Field(description="Reads, queries and CDC: what Intuit meters.")
    month: str = Field(description="The UTC month counted, YYYY-MM.")
    budget: int = Field(
        description="The company's monthly CorePlus budget "
        "(QBSYNC_INTUIT__MONTHLY_COREPLUS_BUDGET)."
    )
    used_ratio: float = Field(description="coreplus / budget; a warning goes out at 0.8.")


class ReconciliationApplied(BaseModel):
    invoices_updated: int = Field(description="Invoices whose payment status changed.")
    events_sent: int = Field(description="payment_updated events sent to the platform.")
    mappings_moved: int = Field(description="Mappings moved to a record merged into another.")
    mappings_cleared: int = Field(
        description="Mappings (and settings' accounts) cleared: their record was made inactive "
        "or deleted in QuickBooks."
    )
    removed_in_quickbooks: int = Field(description="Invoices QuickBooks voided or deleted.")


APPLIED_FIELDS = tuple(ReconciliationApplied.model_fields)


class ReconciliationCalls(BaseModel):
    core: int = Field(description="Writes.")
    coreplus: int = Field(description="Reads, queries and CDC: what Intuit meters.")


class LastReconciliation(BaseModel):
    finished_at: dt.datetime
    mode: str | None = Field(
        description="`cdc`, or `full` when the last one was older than CDC reaches (30 days) "
        "and the open invoices were read again; null when the run failed (see `error`)."
    )
    applied: ReconciliationApplied
    calls: ReconciliationCalls = Field(description="QuickBooks calls the run spent.")
    error: str | None = Field(description="Why the run stopped early, if it did.")
    changes_read_up_to: dt.datetime = Field(
        description="QuickBooks' time up to which changes are applied (the next run reads from "
        "there, less an overlap)."
    )


class ReconcileRequested(BaseModel):
    status: str = Field(description="`queued`: a run starts shortly (one, however often asked).")
    last_reconciliation: LastReconciliation | None


class SyncSummary(BaseModel):
    counts: KindCounts = Field(description="Records by kind and status, zeros included.")
    last_push_at: dt.datetime | None = Field(description="When a record last reached QuickBooks.")
    quickbooks_calls_today: CallsToday = Field(
        description="Accounting API calls to the org's company today (UTC), by every process; "
        "zeros when the org is not connected."
    )
    quickbooks_calls_this_month: CallsThisMonth | None = Field(
        description="The same this UTC month, against the company's budget; null when the org "
        "is not connected."
    )
    last_reconciliation: LastReconciliation | None = Field(
        description="The company's last reconciliation: when, what it applied, what it cost."
    )
