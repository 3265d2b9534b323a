"""Seeded books: a US company with automated sales tax and a GB company with VAT codes."""

from __future__ import annotations

from decimal import Decimal

from qbsync.simulator.config import CompanySpec
from qbsync.simulator.jsonio import JsonObject
from qbsync.simulator.ledger import Ledger, WriteRequest
from qbsync.simulator.store import Company

US_SALES_TAX_PERCENT = Decimal("8.25")
US_TAX_CODE_ID = "2"

_ADDRESSES = {
    "US": {
        "Line1": "123 Sierra Way",
        "City": "San Pablo",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "87999",
        "Country": "US",
    },
    "GB": {
        "Line1": "1 Trafalgar Square",
        "City": "London",
        "PostalCode": "WC2N 5DN",
        "Country": "GB",
    },
}

_ACCOUNTS = {
    "US": [
        ("Services", "Income", "ServiceFeeIncome"),
        ("Sales of Product Income", "Income", "SalesOfProductIncome"),
        ("Office Expenses", "Expense", "OfficeGeneralAdministrativeExpenses"),
        ("Dues & Subscriptions", "Expense", "DuesSubscriptions"),
        ("Travel", "Expense", "Travel"),
        ("Legal & Professional Fees", "Expense", "LegalProfessionalFees"),
        ("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable"),
        ("Checking", "Bank", "Checking"),
        ("Savings", "Bank", "Savings"),
        ("Mastercard", "Credit Card", "CreditCard"),
        ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
        ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
        ("Board of Equalization Payable", "Other Current Liability", "SalesTaxPayable"),
    ],
    "GB": [
        ("Consulting Income", "Income", "ServiceFeeIncome"),
        ("Sales", "Income", "SalesOfProductIncome"),
        ("Office Expenses", "Expense", "OfficeGeneralAdministrativeExpenses"),
        ("Subscriptions", "Expense", "DuesSubscriptions"),
        ("Travel", "Expense", "Travel"),
        ("Legal and professional fees", "Expense", "LegalProfessionalFees"),
        ("Accounts Payable (Creditors)", "Accounts Payable", "AccountsPayable"),
        ("Current Account", "Bank", "Checking"),
        ("Savings Account", "Bank", "Savings"),
        ("Business Credit Card", "Credit Card", "CreditCard"),
        ("Accounts Receivable (Debtors)", "Accounts Receivable", "AccountsReceivable"),
        ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
        ("VAT Control", "Other Current Liability", "GlobalTaxPayable"),
    ],
}
# (name, type, income account, unit price, US taxable, GB VAT code)
_ITEMS: dict[str, list[tuple[str, str, str, str, bool, str | None]]] = {
    "US": [
        ("Services", "Service", "Services", "0", False, None),
        ("Design", "Service", "Services", "75", True, None),
        ("Hours", "Service", "Services", "0", False, None),
        ("Gardening Supplies", "NonInventory", "Sales of Product Income", "15", True, None),
    ],
    "GB": [
        ("Consulting", "Service", "Consulting Income", "150", False, "3"),
        ("Training", "Service", "Consulting Income", "400", False, "3"),
        ("Energy Advice", "Service", "Consulting Income", "100", False, "4"),
        ("Books", "NonInventory", "Sales", "20", False, "5"),
    ],
}
# (display name, email, active)
_CUSTOMERS: dict[str, list[tuple[str, str, bool]]] = {
    "US": [
        ("Amy's Bird Sanctuary", "birds@intuit.test", True),
        ("Bill's Windsurf Shop", "surf@intuit.test", True),
        ("Cool Cars", "cool_cars@intuit.test", True),
        ("Red Rock Diner", "qbwebsamplecompany@yahoo.com", True),
        ("Kookies by Kathy", "qbwebsamplecompany@yahoo.com", False),
    ],
    "GB": [
        ("Acme Ltd", "accounts@acme.test", True),
        ("Brighton Bakers Ltd", "hello@brighton-bakers.test", True),
        ("Cambridge Cyclists", "ap@cambridge-cyclists.test", True),
        ("Old Client Ltd", "ap@old-client.test", False),
    ],
}
_VENDORS = {
    "US": ["Books by Bessie", "Brosnahan Insurance Agency", "Computers by Jenni"],
    "GB": ["Office Supplies Co", "Northern Rail", "Cloud Hosting Ltd"],
}
_EMPLOYEES = {
    "US": [("Emily", "Platt"), ("John", "Johnson")],
    "GB": [("Oliver", "Hughes"), ("Amelia", "Clarke")],
}
# GB VAT codes: (code id, name, description, percent); each gets a sales and a purchase rate.
_VAT_CODES = [
    ("3", "20.0% S", "Standard rated", "20"),
    ("4", "5.0% R", "Reduced rate", "5"),
    ("5", "0.0% Z", "Zero-rated", "0"),
    ("6", "Exempt", "Exempt", "0"),
    ("7", "No VAT", "No VAT", "0"),
]


def seed_company(ledger: Ledger) -> None:
    company = ledger.company
    spec = company.spec
    timestamp = ledger.clock.timestamp()
    company.insert("CompanyInfo", _company_info(spec), timestamp, "1")
    company.insert("Preferences", _preferences(spec), timestamp, "1")
    if company.is_us:
        _us_tax(company, timestamp)
    else:
        _vat(company, timestamp)
    accounts: dict[str, str] = {}
    for name, account_type, subtype in _ACCOUNTS[spec.country]:
        body = {"Name": name, "AccountType": account_type, "AccountSubType": subtype}
        accounts[name] = _create(ledger, "Account", body)
    _create(
        ledger,
        "Account",
        {"Name": "Advertising", "AccountType": "Expense", "Active": False},
    )
    for name, item_type, income, price, taxable, vat_code in _ITEMS[spec.country]:
        item: JsonObject = {
            "Name": name,
            "Type": item_type,
            "IncomeAccountRef": {"value": accounts[income]},
            "UnitPrice": Decimal(price),
        }
        if company.is_us:
            item["Taxable"] = taxable
        else:
            item["SalesTaxCodeRef"] = {"value": vat_code}
        _create(ledger, "Item", item)
    for display_name, email, active in _CUSTOMERS[spec.country]:
        customer: JsonObject = {
            "DisplayName": display_name,
            "CompanyName": display_name,
            "PrimaryEmailAddr": {"Address": email},
            "BillAddr": _ADDRESSES[spec.country],
            "Active": active,
        }
        if company.is_us:
            customer["Taxable"] = display_name != "Red Rock Diner"
        _create(ledger, "Customer", customer)
    for vendor in _VENDORS[spec.country]:
        _create(ledger, "Vendor", {"DisplayName": vendor, "CompanyName": vendor})
    for given, family in _EMPLOYEES[spec.country]:
        _create(ledger, "Employee", {"GivenName": given, "FamilyName": family})


def _create(ledger: Ledger, entity: str, body: JsonObject) -> str:
    return str(ledger.create(entity, WriteRequest(body))["Id"])


def _company_info(spec: CompanySpec) -> JsonObject:
    address = _ADDRESSES[spec.country]
    return {
        "CompanyName": spec.name,
        "LegalName": spec.name,
        "CompanyAddr": address,
        "CustomerCommunicationAddr": address,
        "LegalAddr": address,
        "PrimaryPhone": {"FreeFormNumber": "(650) 555-1234"},
        "CompanyStartDate": "2024-01-01",
        "FiscalYearStartMonth": "January" if spec.country == "US" else "April",
        "Country": spec.country,
        "Email": {"Address": "noreply@quickbooks.test"},
        "WebAddr": {},
        "SupportedLanguages": "en",
        "NameValue": [{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"}],
    }


def _preferences(spec: CompanySpec) -> JsonObject:
    us = spec.country == "US"
    tax: JsonObject = {"UsingSalesTax": True, "PartnerTaxEnabled": us}
    if us:
        tax["TaxGroupCodeRef"] = {"value": US_TAX_CODE_ID}
    return {
        "AccountingInfoPrefs": {
            "TrackDepartments": False,
            "UseAccountNumbers": False,
            "ClassTrackingPerTxn": False,
            "CustomerTerminology": "Customers",
        },
        "ProductAndServicesPrefs": {
            "ForSales": True,
            "ForPurchase": True,
            "QuantityWithPriceAndRate": True,
            "QuantityOnHand": False,
        },
        "SalesFormsPrefs": {
            # The US company numbers invoices itself; the GB one takes the caller's numbers.
            "CustomTxnNumbers": not us,
            "AllowDiscount": True,
            "AllowDeposit": False,
            "AllowShipping": False,
            "ETransactionEnabledStatus": "NotApplicable",
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": True, "BillableExpenseTracking": True},
        "TaxPrefs": tax,
        "CurrencyPrefs": {
            "MultiCurrencyEnabled": spec.multicurrency,
            "HomeCurrency": {"value": "USD" if us else "GBP"},
        },
    }


def _rate(name: str, description: str, percent: Decimal) -> JsonObject:
    return {
        "Name": name,
        "Description": description,
        "Active": True,
        "RateValue": percent,
        "AgencyRef": {"value": "1"},
        "SpecialTaxType": "NONE",
        "DisplayType": "ReadOnly",
        "EffectiveTaxRate": [{"RateValue": percent, "EffectiveDate": "2020-01-01T00:00:00Z"}],
    }


def _code(
    name: str, description: str, sales: list[JsonObject], purchases: list[JsonObject]
) -> JsonObject:
    return {
        "Name": name,
        "Description": description,
        "Active": True,
        "Hidden": False,
        "Taxable": bool(sales),
        "TaxGroup": bool(sales),
        "TaxCodeConfigType": "SYSTEM_GENERATED",
        "SalesTaxRateList": {"TaxRateDetail": sales},
        "PurchaseTaxRateList": {"TaxRateDetail": purchases},
    }


def _rate_detail(rate_id: str, name: str) -> JsonObject:
    return {
        "TaxRateRef": {"value": rate_id, "name": name},
        "TaxTypeApplicable": "TaxOnAmount",
        "TaxOrder": 0,
    }


def _us_tax(company: Company, timestamp: float) -> None:
    company.insert(
        "TaxRate",
        _rate("California", "State and local sales tax", US_SALES_TAX_PERCENT),
        timestamp,
        "1",
    )
    pseudo = {"TaxGroup": False, "SalesTaxRateList": {"TaxRateDetail": []}}
    company.insert(
        "TaxCode", {**_code("TAX", "TAX", [], []), **pseudo, "Taxable": True}, timestamp, "TAX"
    )
    company.insert("TaxCode", {**_code("NON", "NON", [], []), **pseudo}, timestamp, "NON")
    sales = [_rate_detail("1", "California")]
    company.insert(
        "TaxCode", _code("California", "California", sales, []), timestamp, US_TAX_CODE_ID
    )


def _vat(company: Company, timestamp: float) -> None:
    for index, (code_id, name, description, percent) in enumerate(_VAT_CODES):
        sales_id, purchase_id = str(2 * index + 1), str(2 * index + 2)
        sales_name, purchase_name = f"{name} (sales)", f"{name} (purchases)"
        company.insert(
            "TaxRate", _rate(sales_name, description, Decimal(percent)), timestamp, sales_id
        )
        company.insert(
            "TaxRate", _rate(purchase_name, description, Decimal(percent)), timestamp, purchase_id
        )
        code = _code(
            name,
            description,
            [_rate_detail(sales_id, sales_name)],
            [_rate_detail(purchase_id, purchase_name)],
        )
        company.insert("TaxCode", code, timestamp, code_id)
