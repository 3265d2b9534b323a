"""Currencies: the home currency, multicurrency, and which currency a document is in.

Without multicurrency everything is in the home currency, and a document naming another one is
refused [stricter: one third-party report says QBO then creates it in the home currency
silently, which hides the mismatch]. With multicurrency (`Preferences.CurrencyPrefs
.MultiCurrencyEnabled`, which QBO never turns off again) a customer, vendor or balance-sheet
account gets its currency when it is created and keeps it; a transaction must name its currency
(Intuit: CurrencyRef "must be defined if multicurrency is enabled") and it must be the currency of
its customer or vendor.
"""

from __future__ import annotations

from decimal import Decimal

from qbsync.simulator.errors import business_rule, invalid_reference, required
from qbsync.simulator.fields import optional_decimal, ref_id, round_money
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import Ledger, WriteRequest
from qbsync.simulator.store import Company

# ISO 4217 codes with the names QBO shows. A code outside the list is refused [stricter: QBO's
# list is longer]; currencies without cents (JPY, KRW, ...) are left out because amounts here
# are always rounded to cents.
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "GBP": "British Pound Sterling",
    "EUR": "Euro",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "NZD": "New Zealand Dollar",
    "CHF": "Swiss Franc",
    "SEK": "Swedish Krona",
    "NOK": "Norwegian Krone",
    "DKK": "Danish Krone",
    "INR": "Indian Rupee",
    "MXN": "Mexican Peso",
    "ZAR": "South African Rand",
    "SGD": "Singapore Dollar",
    "HKD": "Hong Kong Dollar",
}
# Only these account types may hold a foreign currency; income and expense accounts are always
# in the home currency in QBO. Other balance-sheet types are refused [stricter].
FOREIGN_ACCOUNT_TYPES = frozenset(
    {"Bank", "Credit Card", "Accounts Receivable", "Accounts Payable"}
)


def home_code(company: Company) -> str:
    code: str = company.home_currency["value"]
    return code


def currency_ref(code: str) -> JsonObject:
    return {"value": code, "name": CURRENCY_NAMES[code]}


def code_of(company: Company, holder: JsonObject) -> str:
    """The currency of a stored object; employees and old objects without one are home."""
    ref = holder.get("CurrencyRef")
    code: str = ref["value"] if isinstance(ref, dict) else home_code(company)
    return code


def _usable(company: Company, code: str) -> str:
    home = home_code(company)
    if code == home:
        return code
    if not company.multicurrency:
        raise business_rule(
            f"Multicurrency is off in this company, so everything is in its home currency "
            f"{home}; the currency {code} can't be used. Turn on multicurrency to use "
            "other currencies.",
            "CurrencyRef",
        )
    if code not in CURRENCY_NAMES:
        raise invalid_reference("CurrencyRef", code)
    return code


def name_list_currency(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, kind: str
) -> JsonObject:
    """A customer's, vendor's or account's currency: chosen at create (home if none), then fixed.

    QBO shows a customer's currency as read-only after create; a request asking for another one
    is refused rather than ignored [stricter].
    """
    company = ledger.company
    sent = ref_id(candidate, "CurrencyRef")
    code = home_code(company) if sent is None else _usable(company, sent)
    if previous is not None:
        fixed = code_of(company, previous)
        if sent is not None and code != fixed:
            raise business_rule(
                f"The currency of this {kind} can't be changed once it is created: it is in "
                f"{fixed}, the request asks for {code}.",
                "CurrencyRef",
            )
        code = fixed
    return currency_ref(code)


def account_currency(
    ledger: Ledger, candidate: JsonObject, previous: JsonObject | None, account_type: str
) -> JsonObject:
    ref = name_list_currency(ledger, candidate, previous, "account")
    if ref["value"] != home_code(ledger.company) and account_type not in FOREIGN_ACCOUNT_TYPES:
        raise business_rule(
            f"An account of type {account_type} is always in the home currency "
            f"{home_code(ledger.company)}; only {', '.join(sorted(FOREIGN_ACCOUNT_TYPES))} "
            f"accounts can be in {ref['value']}.",
            "CurrencyRef",
        )
    return ref


def transaction_currency(
    ledger: Ledger,
    entity: str,
    candidate: JsonObject,
    previous: JsonObject | None,
    party: tuple[str, JsonObject] | None,
) -> str:
    """Set a transaction's CurrencyRef and ExchangeRate; the currency's code.

    `party` is the customer, vendor or payee ("customer", the object) whose currency the
    transaction must share.
    """
    company = ledger.company
    home = home_code(company)
    sent = ref_id(candidate, "CurrencyRef")
    if not company.multicurrency:
        if sent is not None:
            _usable(company, sent)
        candidate["CurrencyRef"] = company.home_currency
        # Single-currency companies have no exchange rates (python-quickbooks sends 0 or 1).
        candidate.pop("ExchangeRate", None)
        return home
    if sent is None:
        raise required("CurrencyRef")
    code = _usable(company, sent)
    if previous is not None and code != code_of(company, previous):
        raise business_rule(
            f"The currency of this {entity} can't be changed once it is created: it is in "
            f"{code_of(company, previous)}, the request asks for {code}.",
            "CurrencyRef",
        )
    if party is not None:
        kind, holder = party
        party_code = code_of(company, holder)
        if party_code != code:
            name = holder.get("DisplayName", holder["Id"])
            raise business_rule(
                f"The {entity} is in {code} but its {kind} {name} is in {party_code}: a "
                f"transaction must be in the currency of its {kind}.",
                "CurrencyRef",
            )
    candidate["CurrencyRef"] = currency_ref(code)
    if code == home:
        candidate["ExchangeRate"] = Decimal(1)
        return code
    rate = optional_decimal(candidate, "ExchangeRate", "ExchangeRate")
    # QBO would look up its own rate for the date; the simulator has none, so the rate must be
    # sent [stricter]. python-quickbooks' default of 0 is refused like any rate that isn't
    # positive.
    if rate is None:
        raise required("ExchangeRate")
    if rate <= 0:
        raise business_rule(f"The exchange rate must be positive: {rate}.", "ExchangeRate")
    candidate["ExchangeRate"] = rate
    return code


def check_account_currency(
    ledger: Ledger, account: JsonObject, code: str, element: str, *, home_allowed: bool
) -> None:
    """An account a transaction in `code` posts to must be in `code` (or, where `home_allowed`,
    in the home currency, as Undeposited Funds is)."""
    company = ledger.company
    account_code = code_of(company, account)
    if account_code == code or (home_allowed and account_code == home_code(company)):
        return
    wanted = f"{home_code(company)} or {code}" if home_allowed else code
    raise business_rule(
        f"Account {account.get('Name', account['Id'])} is in {account_code}; a transaction in "
        f"{code} needs an account in {wanted}.",
        element,
    )


def payables_account(ledger: Ledger, code: str) -> JsonObject:
    """The Accounts Payable account of a currency; QBO creates one for a foreign currency the
    first time a bill needs it."""
    company = ledger.company
    for account in company.table("Account").values():
        if (
            account.get("AccountType") == "Accounts Payable"
            and account.get("Active")
            and code_of(company, account) == code
        ):
            return account
    body = {
        "Name": f"Accounts Payable (A/P) - {code}",
        "AccountType": "Accounts Payable",
        "AccountSubType": "AccountsPayable",
        "CurrencyRef": {"value": code},
    }
    return ledger.create("Account", WriteRequest(body))


def set_home_amounts(company: Company, body: JsonObject) -> None:
    """HomeTotalAmt (and HomeBalance where there is a Balance) of a foreign-currency transaction.

    Read-only and the server's: whatever a client sent back is dropped and recomputed.
    """
    body.pop("HomeTotalAmt", None)
    body.pop("HomeBalance", None)
    rate = body.get("ExchangeRate")
    if rate is None or code_of(company, body) == home_code(company):
        return
    body["HomeTotalAmt"] = round_money(body["TotalAmt"] * rate)
    if "Balance" in body:
        body["HomeBalance"] = round_money(body["Balance"] * rate)
