"""Name-list entities (Customer, Vendor, Item, Account): naming, uniqueness, references."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from qbsync.simulator.currency import (
    account_currency,
    check_account_currency,
    name_list_currency,
)
from qbsync.simulator.errors import (
    business_rule,
    duplicate_name,
    invalid_enum,
    invalid_property,
    required,
)
from qbsync.simulator.fields import decimal, max_length, money, ref_id, text
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import EntityRules, Ledger, Normalizer, WriteRequest
from qbsync.simulator.lines import ZERO, account_of_type, optional_account
from qbsync.simulator.store import writable_copy

_NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
# QBO renames an inactive customer or vendor, which frees the name for a new record.
DELETED_SUFFIX = " (deleted)"
ITEM_TYPES = frozenset({"Service", "NonInventory"})

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Accounts Receivable": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Other Current Liability": "Liability",
    "Long Term Liability": "Liability",
    "Equity": "Equity",
    "Income": "Revenue",
    "Other Income": "Revenue",
    "Cost of Goods Sold": "Expense",
    "Expense": "Expense",
    "Other Expense": "Expense",
}
_SUBTYPES = {
    "Bank": ("Checking", "Savings", "CashOnHand", "MoneyMarket"),
    "Accounts Receivable": ("AccountsReceivable",),
    "Other Current Asset": ("OtherCurrentAssets", "UndepositedFunds", "PrepaidExpenses"),
    "Fixed Asset": ("OtherFixedAssets", "MachineryAndEquipment", "FurnitureAndFixtures"),
    "Other Asset": ("OtherLongTermAssets",),
    "Accounts Payable": ("AccountsPayable",),
    "Credit Card": ("CreditCard",),
    "Other Current Liability": (
        "OtherCurrentLiabilities",
        "SalesTaxPayable",
        "GlobalTaxPayable",
    ),
    "Long Term Liability": ("OtherLongTermLiabilities", "NotesPayable"),
    "Equity": ("OwnersEquity", "OpeningBalanceEquity", "RetainedEarnings"),
    "Income": ("ServiceFeeIncome", "SalesOfProductIncome", "OtherPrimaryIncome"),
    "Other Income": ("OtherMiscellaneousIncome", "InterestEarned"),
    "Cost of Goods Sold": ("SuppliesMaterialsCogs", "OtherCostsOfServiceCos"),
    "Expense": (
        "OtherMiscellaneousServiceCost",
        "OfficeGeneralAdministrativeExpenses",
        "DuesSubscriptions",
        "Travel",
        "AdvertisingPromotional",
        "LegalProfessionalFees",
        "Insurance",
    ),
    "Other Expense": ("OtherMiscellaneousExpense",),
}
_TYPE_OF_SUBTYPE = {sub: kind for kind, subs in _SUBTYPES.items() for sub in subs}


# QBO refuses these in names; an Account name may not hold a double quote either.
_FORBIDDEN_IN_NAMES = (":", "\t", "\n")
_PERSON_NAME_FIELDS = ("DisplayName", *_NAME_PARTS, "PrintOnCheckName")
# The account types a reference of an item may point at (Intuit's entity reference: income
# from an Income account, purchases to an expense or cost-of-sales account, stock to an Other
# Current Asset). "Other Income" is left out of income accounts: stricter than QBO may be.
ITEM_ACCOUNT_TYPES = {
    "IncomeAccountRef": frozenset({"Income"}),
    "ExpenseAccountRef": frozenset({"Expense", "Other Expense", "Cost of Goods Sold"}),
    "AssetAccountRef": frozenset({"Other Current Asset"}),
}


def _check_name_characters(candidate: JsonObject, keys: tuple[str, ...], extra: str = "") -> None:
    for key in keys:
        value = candidate.get(key)
        if isinstance(value, str) and any(char in value for char in (*_FORBIDDEN_IN_NAMES, *extra)):
            forbidden = "a colon (:), a tab or a newline" + (f" or {extra}" if extra else "")
            raise business_rule(f"{key} can't contain {forbidden}.", key)


def _active(candidate: JsonObject) -> bool:
    value = candidate.get("Active", True)
    if not isinstance(value, bool):
        raise invalid_property("Active", "Active must be true or false")
    return value


def _unique(ledger: Ledger, index: str, name: str, own: tuple[str, str] | None, kind: str) -> None:
    if ledger.company.holders(index, name) - {own}:
        raise duplicate_name(kind)


def _party(entity: str) -> Normalizer:
    """Customer and Vendor share QBO's naming rules: one DisplayName space across both."""

    def normalize(
        ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
    ) -> JsonObject:
        _check_name_characters(candidate, _PERSON_NAME_FIELDS)
        parts = [part for key in _NAME_PARTS if (part := text(candidate, key))]
        display = text(candidate, "DisplayName") or " ".join(parts) or None
        if display is None:
            raise required("DisplayName")
        active = _active(candidate)
        was_active = previous is None or previous.get("Active") is not False
        # A merge moves what the customer owes to the survivor: no open balance stays behind.
        closing = was_active and not active and not request.merging
        if entity == "Customer" and previous is not None and closing:
            _refuse_open_balance(ledger, previous)
        if not active and was_active and not display.endswith(DELETED_SUFFIX):
            display += DELETED_SUFFIX
        elif active and not was_active and display.endswith(DELETED_SUFFIX):
            display = display.removesuffix(DELETED_SUFFIX)
        max_length(display, "DisplayName", 500)
        own = (entity, previous["Id"]) if previous else None
        _unique(ledger, "names", display, own, "customer, vendor or employee")
        currency = name_list_currency(ledger, candidate, previous, entity.lower())
        candidate.update(
            DisplayName=display,
            FullyQualifiedName=display,
            PrintOnCheckName=text(candidate, "PrintOnCheckName") or display,
            Active=active,
            CurrencyRef=currency,
        )
        if previous is None:
            # The opening balance; read-only afterwards, when the store keeps a customer's
            # Balance in step with its invoices and payments (store.Company.replace).
            candidate["Balance"] = money(candidate.get("Balance", 0), "Balance")
        if entity == "Customer" and ledger.company.is_us:
            candidate.setdefault("Taxable", True)
        if entity == "Customer":
            account = optional_account(ledger, candidate, "ARAccountRef", "Accounts Receivable")
        else:
            account = optional_account(ledger, candidate, "APAccountRef", "Accounts Payable")
        if account is not None:
            element = "ARAccountRef" if entity == "Customer" else "APAccountRef"
            check_account_currency(ledger, account, currency["value"], element, home_allowed=False)
        return candidate

    return normalize


def _refuse_open_balance(ledger: Ledger, customer: JsonObject) -> None:
    """A customer with an open balance stays active.

    QBO's API does not document what it does here (its web form offers to write the balance
    off); refusing is the stricter choice. The balance is the opening balance, plus what open
    invoices are owed, less unapplied payments; any of the three not zero refuses, even when
    they cancel out [stricter]. Objects made by earlier items of the same batch count too.
    """
    company = ledger.company
    balance = customer["Balance"]
    customer_id = customer["Id"]
    owed = sum(
        (
            invoice["Balance"]
            for invoice in company.table("Invoice").values()
            if invoice["CustomerRef"]["value"] == customer_id
        ),
        ZERO,
    )
    credit = sum(
        (
            payment["UnappliedAmt"]
            for payment in company.table("Payment").values()
            if payment["CustomerRef"]["value"] == customer_id
        ),
        ZERO,
    )
    # The stored Balance follows invoices and payments; what they do not explain is the
    # opening balance.
    opening = balance - owed + credit
    if owed or credit or opening:
        raise business_rule(
            f"Customer {customer['DisplayName']} has an open balance of "
            f"{balance} (opening balance {opening}, open invoices {owed}, "
            f"unapplied payments {credit}). Settle it, or remove the open invoices and "
            "payments, before making the customer inactive.",
            "Active",
        )


def _employee(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    """Employees share the customers' and vendors' name space; deactivation keeps the name."""
    _check_name_characters(candidate, _PERSON_NAME_FIELDS)
    if text(candidate, "GivenName") is None and text(candidate, "FamilyName") is None:
        raise required("GivenName")
    parts = [part for key in _NAME_PARTS if (part := text(candidate, key))]
    display = text(candidate, "DisplayName") or " ".join(parts)
    max_length(display, "DisplayName", 500)
    own = ("Employee", previous["Id"]) if previous else None
    _unique(ledger, "names", display, own, "customer, vendor or employee")
    candidate.update(
        DisplayName=display,
        PrintOnCheckName=text(candidate, "PrintOnCheckName") or display,
        Active=_active(candidate),
        BillableTime=candidate.get("BillableTime") is True,
    )
    return candidate


def _item(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    _check_name_characters(candidate, ("Name",))
    name = text(candidate, "Name")
    if name is None:
        raise required("Name")
    max_length(name, "Name", 100)
    item_type = candidate.get("Type", "Service")
    if item_type not in ITEM_TYPES:
        raise invalid_enum("Type", item_type)
    income = ref_id(candidate, "IncomeAccountRef")
    expense = ref_id(candidate, "ExpenseAccountRef")
    if income is None and (item_type == "Service" or expense is None):
        raise required("IncomeAccountRef")
    for key, allowed in ITEM_ACCOUNT_TYPES.items():
        account_id = ref_id(candidate, key)
        if account_id is not None:
            account = account_of_type(ledger, account_id, key, allowed)
            candidate[key] = ledger.named_ref("Account", account)
    for key in ("SalesTaxCodeRef", "PurchaseTaxCodeRef"):
        code = ref_id(candidate, key)
        if code is not None:
            candidate[key] = ledger.named_ref("TaxCode", ledger.resolve("TaxCode", code, key))
    _unique(ledger, "items", name, ("Item", previous["Id"]) if previous else None, "item")
    unit_price = candidate.get("UnitPrice", 0)
    candidate.update(
        Name=name,
        FullyQualifiedName=name,
        Type=item_type,
        Active=_active(candidate),
        UnitPrice=decimal(unit_price, "UnitPrice"),
    )
    if ledger.company.is_us:
        candidate.setdefault("Taxable", False)
    return candidate


def _account(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, request: WriteRequest
) -> JsonObject:
    _check_name_characters(candidate, ("Name",), extra='"')
    name = text(candidate, "Name")
    if name is None:
        raise required("Name")
    max_length(name, "Name", 100)
    account_type = text(candidate, "AccountType")
    subtype = text(candidate, "AccountSubType")
    if account_type is None and subtype is None:
        raise required("AccountType")
    if account_type is None:
        account_type = _TYPE_OF_SUBTYPE.get(subtype or "")
        if account_type is None:
            raise invalid_enum("AccountSubType", subtype)
    if account_type not in ACCOUNT_CLASSIFICATION:
        raise invalid_enum("AccountType", account_type)
    if subtype is not None and _TYPE_OF_SUBTYPE.get(subtype, account_type) != account_type:
        raise invalid_enum("AccountSubType", subtype)
    max_length(text(candidate, "AcctNum"), "AcctNum", 7)
    _unique(ledger, "accounts", name, ("Account", previous["Id"]) if previous else None, "account")
    balance = previous["CurrentBalance"] if previous else Decimal("0")
    currency = account_currency(ledger, candidate, previous, account_type)
    candidate.update(
        Name=name,
        FullyQualifiedName=name,
        SubAccount=False,
        AccountType=account_type,
        AccountSubType=subtype or _SUBTYPES[account_type][0],
        Classification=ACCOUNT_CLASSIFICATION[account_type],
        Active=_active(candidate),
        CurrentBalance=balance,
        CurrentBalanceWithSubAccounts=balance,
        CurrencyRef=currency,
    )
    return candidate


MergeRule = Callable[[Ledger, JsonObject, JsonObject], None]


def _same(*keys: str) -> MergeRule:
    """QBO merges only records that agree on these: customers and vendors of one currency,
    items of one type, accounts of one type, detail type and currency [U: QuickBooks' help
    pages say so for currencies and accounts; items are a guess, stricter]."""

    def check(ledger: Ledger, merged_away: JsonObject, survivor: JsonObject) -> None:
        for key in keys:
            if merged_away.get(key) != survivor.get(key):
                raise business_rule(
                    f"{merged_away['Id']} and {survivor['Id']} have different {key} values "
                    "and can't be merged.",
                    key,
                )

    return check


# Where transactions name a customer or a vendor: (entity, reference). A Purchase's EntityRef
# names either, by its `type`.
_PARTY_REFERENCES = {
    "Customer": (("Invoice", "CustomerRef"), ("Payment", "CustomerRef"), ("Purchase", "EntityRef")),
    "Vendor": (("Bill", "VendorRef"), ("Purchase", "EntityRef")),
}


def _move_party(entity: str) -> MergeRule:
    """A merged customer's or vendor's transactions become the survivor's, each rewritten with a
    new SyncToken and an Update webhook [U: QBO does not say; the stricter reading]. The
    opening balance moves too, so that the survivor owes (or is owed) what both did."""

    def move(ledger: Ledger, merged_away: JsonObject, survivor: JsonObject) -> None:
        ref = ledger.named_ref(entity, survivor)
        for txn_entity, key in _PARTY_REFERENCES[entity]:
            for stored in list(ledger.company.table(txn_entity).values()):
                current = stored.get(key)
                if (
                    not isinstance(current, dict)
                    or current.get("value") != merged_away["Id"]
                    or current.get("type", entity) != entity
                ):
                    continue
                body = writable_copy(stored)
                body[key] = {**current, **ref}  # an EntityRef keeps its type
                ledger.touch(txn_entity, stored, body)
        ledger.company.move_balance(entity, merged_away["Id"], survivor["Id"])

    return move


# Items and accounts merge without moving lines: transactions keep naming the inactive record
# (QBO repoints them; the simulator does not model it).
NAME_LIST_RULES: dict[str, EntityRules] = {
    "Customer": EntityRules(
        _party("Customer"), check_merge=_same("CurrencyRef"), after_merge=_move_party("Customer")
    ),
    "Vendor": EntityRules(
        _party("Vendor"), check_merge=_same("CurrencyRef"), after_merge=_move_party("Vendor")
    ),
    "Employee": EntityRules(_employee),
    "Item": EntityRules(_item, check_merge=_same("Type")),
    "Account": EntityRules(
        _account, check_merge=_same("AccountType", "AccountSubType", "CurrencyRef")
    ),
}
