"""Sync settings: read with defaults, replace whole after checking each account in QuickBooks.

The accounts are read as QuickBooks holds them now, in one query, before any transaction is
opened (R13). The save then re-reads the connection under a share lock: a company switched
while the accounts were being checked refuses the save instead of storing another company's ids.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from qbsync.db import Database
from qbsync.errors import AppError
from qbsync.mappings.company import Company, connected_company, same_company
from qbsync.mappings.references import (
    AP_TYPES,
    EXPENSE_TYPES,
    INCOME_TYPES,
    PAYMENT_TYPES,
    References,
    check_account,
)
from qbsync.mappings.schemas import SyncSettingsBody, SyncSettingsView
from qbsync.models import SyncSettings
from qbsync.models.base import utcnow
from qbsync.qbo import Account

ACCOUNT_FIELDS: tuple[tuple[str, frozenset[str], str], ...] = (
    ("default_income_account_id", INCOME_TYPES, "an active Income account"),
    (
        "default_expense_account_id",
        EXPENSE_TYPES,
        "an active Expense, Other Expense or Cost of Goods Sold account",
    ),
    ("ap_account_id", AP_TYPES, "an active Accounts Payable account"),
    ("payment_account_id", PAYMENT_TYPES, "an active Bank or Credit Card account"),
)


async def read_settings(db: Database, org_id: str) -> SyncSettingsView:
    async with db.sessions() as session:
        row = await session.get(SyncSettings, org_id)
        if row is None:
            return SyncSettingsView(**SyncSettingsBody().model_dump(), saved=False)
        return _view(row)


def account_ids_given(body: SyncSettingsBody) -> bool:
    return any(getattr(body, field) is not None for field, _, _ in ACCOUNT_FIELDS)


async def check_accounts(body: SyncSettingsBody, refs: References) -> None:
    """Every account field at fault, in one 422; the accounts are read as they are now, in one
    query."""
    given = {field: getattr(body, field) for field, _, _ in ACCOUNT_FIELDS}
    accounts = await refs.current(Account, [value for value in given.values() if value])
    errors: list[dict[str, object]] = []
    first: AppError | None = None
    for field, allowed, want in ACCOUNT_FIELDS:
        account_id = given[field]
        if account_id is None:
            continue
        try:
            check_account(accounts.get(account_id), account_id, allowed, field, want)
        except AppError as error:
            first = first or error
            errors.append(
                {"field": field, "code": error.code, "message": error.detail, **error.extra}
            )
    if first is not None:
        raise AppError(
            first.detail
            if len(errors) == 1
            else f"{len(errors)} accounts can't be used: "
            + " ".join(str(error["message"]) for error in errors),
            status=422,
            code=first.code,
            extra={"errors": errors},
        )


async def save_settings(
    db: Database, org_id: str, body: SyncSettingsBody, checked_for: Company | None
) -> SyncSettingsView:
    """Store `body`; `checked_for` is the company its account ids were checked against."""
    values = body.model_dump()
    async with db.sessions() as session, session.begin():
        if checked_for is not None:
            await same_company(session, checked_for)
        now = utcnow()
        statement = insert(SyncSettings).values(org_id=org_id, updated_at=now, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[SyncSettings.org_id], set_={**values, "updated_at": now}
        )
        await session.execute(statement)
        row = await session.get(SyncSettings, org_id, populate_existing=True)
        assert row is not None
        return _view(row)


async def company_for_accounts(db: Database, org_id: str) -> Company:
    return await connected_company(db, org_id, purpose="choose its accounts")


def _view(row: SyncSettings) -> SyncSettingsView:
    return SyncSettingsView(
        customer_sync_mode=row.customer_sync_mode,
        invoice_auto_push=row.invoice_auto_push,
        default_income_account_id=row.default_income_account_id,
        expense_mode=row.expense_mode,
        default_expense_account_id=row.default_expense_account_id,
        ap_account_id=row.ap_account_id,
        payment_account_id=row.payment_account_id,
        sync_start_date=row.sync_start_date,
        reconcile_interval_minutes=row.reconcile_interval_minutes,
        saved=True,
        updated_at=row.updated_at,
    )
