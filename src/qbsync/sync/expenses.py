"""An expense as a Bill (owed to the supplier, on the AP account) or a Purchase (paid from the
payment account), as `expense_mode` says when it is first pushed; its line on the account mapped
to its category, else the default expense account; its supplier a QuickBooks vendor."""

from __future__ import annotations

from qbsync.mappings.matching import normalise_name
from qbsync.mappings.names import DISPLAY_NAME_LENGTH, quickbooks_name
from qbsync.mappings.preview_invoices import MODES
from qbsync.mappings.references import by_id, is_active
from qbsync.mappings.snapshots import ExpenseSnapshot, Supplier
from qbsync.models import ExpenseMode, MappingKind, MappingSource, SyncRecord
from qbsync.qbo import (
    Bill,
    Line,
    Purchase,
    QboDuplicateNameError,
    QboError,
    Ref,
    Vendor,
    quote,
)
from qbsync.qbo.entities import AccountBasedExpenseLineDetail, EmailAddress
from qbsync.qbo.query import EVERY_STATUS
from qbsync.sync.context import PushContext
from qbsync.sync.customers import display_name_held, request_id, suffixed
from qbsync.sync.failures import PushFailedError, failure_for
from qbsync.sync.invoices import check_currency, document_marker
from qbsync.sync.plans import Plan, Write, in_quickbooks, removal

# What kind of payment a Purchase is, by the account it was paid from.
PAYMENT_TYPES = {"Bank": "Cash", "Credit Card": "CreditCard"}


async def plan_expense(ctx: PushContext, record: SyncRecord) -> Plan:
    stored_type: type[Bill] | type[Purchase] = Purchase if record.qbo_entity == "Purchase" else Bill
    if record.operation == "delete":
        what = f"Deleting expense {record.platform_id!r}"
        return removal(ctx, record, stored_type, "delete", what)
    in_qbo = in_quickbooks(ctx, record)
    expense = ExpenseSnapshot.model_validate(record.snapshot)
    check_currency(ctx, expense.currency, "expense")
    line = await _line(ctx, expense)
    vendor_id = await vendor_for(ctx, expense.supplier)
    document: Bill | Purchase
    # Once in QuickBooks, an expense stays the kind of document it was first sent as.
    as_bill = stored_type is Bill if in_qbo else ctx.settings.expense_mode == ExpenseMode.BILL
    if as_bill:
        document = Bill(vendor_ref=Ref(value=vendor_id), txn_date=expense.date, line=[line])
        if expense.due_date is not None:
            document.due_date = expense.due_date
        if ctx.settings.ap_account_id:
            document.ap_account_ref = Ref(value=ctx.settings.ap_account_id)
    else:
        document = await _purchase(ctx, expense, vendor_id, line)
    document.private_note = document_marker(record)
    if ctx.company.multi_currency:
        document.currency_ref = Ref(value=expense.currency)
    if not ctx.company.is_us:
        document.global_tax_calculation = MODES[expense.amounts_are]
    label = f"expense {expense.id!r} ({expense.supplier.name}, {expense.date})"
    if in_qbo:
        qbo_id = record.qbo_id or ""
        document.id = qbo_id
        document.sync_token = record.qbo_sync_token or "0"
        return Write(
            "update",
            document,
            f"Updating {label}",
            reread=lambda: ctx.client.get(type(document), qbo_id),
        )
    return Write("create", document, f"Creating {label}")


async def _line(ctx: PushContext, expense: ExpenseSnapshot) -> Line:
    account_id = None
    if expense.category_code is not None:
        account_id = ctx.mapped(MappingKind.EXPENSE_CATEGORY, expense.category_code)
    account_id = account_id or ctx.settings.default_expense_account_id
    if account_id is None:
        category = repr(expense.category_code) if expense.category_code else "(none)"
        raise PushFailedError(
            "unmapped_expense_category",
            f"Expense category {category} is not mapped to a QuickBooks account and no default "
            "expense account is set: map the category, or choose a default expense account.",
        )
    detail = AccountBasedExpenseLineDetail(account_ref=Ref(value=account_id))
    if not ctx.company.is_us and expense.amounts_are != "no_tax":
        detail.tax_code_ref = Ref(value=await _purchase_code(ctx, expense))
    line = Line(
        detail_type="AccountBasedExpenseLineDetail",
        amount=expense.amount,
        account_based_expense_line_detail=detail,
    )
    if expense.description:
        line.description = expense.description
    return line


async def _purchase_code(ctx: PushContext, expense: ExpenseSnapshot) -> str:
    rate_id = expense.tax_rate_id
    if rate_id is None:
        raise PushFailedError(
            "untaxed_line_needs_tax_code",
            "QuickBooks needs a VAT/GST code on a taxed expense: give the expense a tax rate "
            '(a 0 % or exempt one where none is due), or send it as "no_tax".',
        )
    code_id = ctx.mapped(MappingKind.TAX_RATE, rate_id)
    code = by_id(await ctx.refs.tax_codes(), code_id) if code_id else None
    if code is None or not is_active(code) or code.purchase_tax_rate_list is None:
        what = "is not mapped" if code_id is None else "is mapped to a code QuickBooks can't use"
        raise PushFailedError(
            "unmapped_tax_rate",
            f"Tax rate {rate_id!r} {what} for purchases: map it to a QuickBooks tax code with a "
            "purchase rate so the VAT/GST is right.",
        )
    return code_id or ""


async def _purchase(
    ctx: PushContext, expense: ExpenseSnapshot, vendor_id: str, line: Line
) -> Purchase:
    account_id = ctx.settings.payment_account_id
    account = by_id(await ctx.refs.accounts(), account_id) if account_id else None
    if account is None or not is_active(account) or account.account_type not in PAYMENT_TYPES:
        raise PushFailedError(
            "no_payment_account",
            "Expenses are sent as expense entries, which need the Bank or Credit Card account "
            "they were paid from: choose a payment account in the settings.",
        )
    return Purchase(
        payment_type=PAYMENT_TYPES[account.account_type or ""],
        account_ref=Ref(value=account_id or ""),
        entity_ref=Ref(value=vendor_id, type="Vendor"),
        txn_date=expense.date,
        line=[line],
    )


async def vendor_for(ctx: PushContext, supplier: Supplier) -> str:
    """The supplier's vendor: its mapping, else an active vendor of the same email or name,
    else a vendor created under a name no customer, vendor or employee holds."""
    mapped = ctx.mapped(MappingKind.SUPPLIER, supplier.id)
    if mapped is not None:
        return mapped
    vendors = [row for row in await ctx.refs.vendors() if is_active(row) and row.id]
    email = (supplier.email or "").casefold()
    by_email = [
        row
        for row in vendors
        if email
        and row.primary_email_addr
        and (row.primary_email_addr.address or "").casefold() == email
    ]
    by_name = [
        row
        for row in vendors
        if normalise_name(row.display_name or "") == normalise_name(supplier.name)
    ]
    found = by_email if len(by_email) == 1 else by_name if len(by_name) == 1 else []
    if found:
        vendor = found[0]
        await ctx.remember(
            MappingKind.SUPPLIER,
            supplier.id,
            vendor.id or "",
            vendor.display_name,
            MappingSource.MATCHED,
        )
        return vendor.id or ""
    return await _create_vendor(ctx, supplier)


async def _create_vendor(ctx: PushContext, supplier: Supplier) -> str:
    base = quickbooks_name(supplier.name, DISPLAY_NAME_LENGTH)
    names = [base, suffixed(base, supplier.id)]
    if await display_name_held(ctx, base):
        names = names[1:]
    created: Vendor | None = None
    clash: QboDuplicateNameError | None = None
    for name in names:
        vendor = Vendor(display_name=name)
        if supplier.email:
            vendor.primary_email_addr = EmailAddress(address=supplier.email)
        try:
            created = await ctx.client.create(
                vendor, requestid=request_id(ctx.company.realm_id, "vendor", supplier.id, name)
            )
            break
        except QboDuplicateNameError as taken:
            # A vendor of this very name (an earlier create whose answer was lost, or one made
            # meanwhile) is this supplier; a customer or employee holding it is not.
            rows = await ctx.client.query_all(
                Vendor, f"DisplayName = {quote(name)} AND {EVERY_STATUS}"
            )
            created = next((row for row in rows if is_active(row)), None)
            if created is not None:
                break
            clash = taken
        except QboError as error:
            if error.retryable:
                raise
            raise failure_for(error, f"Creating vendor {name!r}") from error
    if created is None or created.id is None:
        raise PushFailedError(
            "vendor_name_taken",
            f"QuickBooks already has customers or employees named {names[0]!r} and "
            f"{names[-1]!r}: map the supplier {supplier.id!r} to a vendor, then retry.",
            fault=clash,
        )
    ctx.refs.created(created)
    await ctx.remember(
        MappingKind.SUPPLIER, supplier.id, created.id, created.display_name, MappingSource.CREATED
    )
    return created.id
