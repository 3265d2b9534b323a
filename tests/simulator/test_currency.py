"""Currencies: the home currency only, unless multicurrency is on; then a transaction is in the
currency of its customer or vendor, which is fixed once that customer or vendor exists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbsync.simulator import CompanySpec, SimulatorConfig
from qbsync.simulator.config import DEFAULT_COMPANIES
from qbsync.simulator.state import SimulatorState
from tests.simulator.conftest import (
    BASE_URL,
    US,
    US2,
    Api,
    company_api,
    decode,
    expense_line,
    first_error,
    sales_line,
)

D = Decimal
# A fourth company, seeded with multicurrency on.
MC = "9341450000000004"
EUR = {"value": "EUR"}
USD = {"value": "USD"}


@pytest.fixture
def config() -> SimulatorConfig:
    spec = CompanySpec(realm_id=MC, name="Maple Imports", country="US", multicurrency=True)
    return SimulatorConfig(companies=(*DEFAULT_COMPANIES, spec))


@pytest.fixture
async def mc(transport: httpx.ASGITransport, state: SimulatorState) -> AsyncIterator[Api]:
    async with company_api(transport, state, MC, BASE_URL) as api:
        yield api


def invoice(customer: str, currency: dict[str, str] | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer},
        "Line": [sales_line("100", code="NON")],
        **fields,
    }
    if currency is not None:
        body["CurrencyRef"] = currency
    return body


async def multicurrency_on(api: Api) -> bool:
    response = await api.client.get(api.url("preferences"))
    enabled: bool = decode(response)["Preferences"]["CurrencyPrefs"]["MultiCurrencyEnabled"]
    return enabled


def assert_business_rule(response: httpx.Response, *words: str, element: str) -> None:
    assert response.status_code == 400, response.text
    error = first_error(response)
    assert (error["code"], error["element"]) == ("6000", element)
    for word in words:
        assert word in error["Detail"]


async def test_without_multicurrency_only_the_home_currency_is_accepted(us: Api, gb: Api) -> None:
    customer = await us.post("Customer", {"DisplayName": "Euro Shop", "CurrencyRef": EUR})
    vendor = await us.post("Vendor", {"DisplayName": "Euro Supplier", "CurrencyRef": EUR})
    account = await us.post(
        "Account", {"Name": "Euro Bank", "AccountType": "Bank", "CurrencyRef": EUR}
    )
    us_invoice = await us.post("Invoice", invoice("1", EUR))
    gb_invoice = await gb.post(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "CurrencyRef": USD,
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [sales_line("10", code="3")],
        },
    )
    home = await us.create("Invoice", invoice("1", USD, ExchangeRate=0))

    for refused in (customer, vendor, account, us_invoice):
        assert_business_rule(refused, "EUR", "USD", "Multicurrency is off", element="CurrencyRef")
    assert_business_rule(gb_invoice, "USD", "GBP", element="CurrencyRef")
    assert home["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
    assert "ExchangeRate" not in home
    assert "HomeTotalAmt" not in home
    assert us.admin.documents(US, "Invoice") == [home]


async def test_no_seeded_company_has_multicurrency_and_the_admin_api_turns_it_on(
    us: Api, gb: Api, transport: httpx.ASGITransport, state: SimulatorState
) -> None:
    async with company_api(transport, state, US2, BASE_URL) as us2:
        assert not await multicurrency_on(us2)
    assert not await multicurrency_on(gb)
    before = decode(await us.client.get(us.url("preferences")))["Preferences"]
    assert before["CurrencyPrefs"]["MultiCurrencyEnabled"] is False

    turned_on = await us.client.post(f"/_sim/companies/{US}/multicurrency")
    again = await us.client.post(f"/_sim/companies/{US}/multicurrency")
    customer = await us.post("Customer", {"DisplayName": "Euro Shop", "CurrencyRef": EUR})

    assert turned_on.status_code == again.status_code == 200
    prefs = decode(again)["Preferences"]
    assert prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] is True
    # Already on: nothing changes the second time.
    assert prefs["SyncToken"] == str(int(before["SyncToken"]) + 1)
    assert await multicurrency_on(us)
    assert decode(customer)["Customer"]["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    assert not await multicurrency_on(gb)


async def test_a_company_spec_can_seed_multicurrency(mc: Api) -> None:
    assert await multicurrency_on(mc)
    assert (await mc.read("Customer", "1"))["CurrencyRef"]["value"] == "USD"


async def test_with_multicurrency_a_transaction_is_in_its_customers_currency(mc: Api) -> None:
    customer = await mc.create("Customer", {"DisplayName": "Euro Shop", "CurrencyRef": EUR})

    created = await mc.create("Invoice", invoice(customer["Id"], EUR, ExchangeRate="1.1"))
    wrong_currency = await mc.post("Invoice", invoice(customer["Id"], USD))
    home_customer_in_euros = await mc.post("Invoice", invoice("1", EUR, ExchangeRate="1.1"))
    no_currency = await mc.post("Invoice", invoice(customer["Id"], None))
    no_rate = await mc.post("Invoice", invoice(customer["Id"], EUR))
    zero_rate = await mc.post("Invoice", invoice(customer["Id"], EUR, ExchangeRate=0))
    unknown = await mc.post("Invoice", invoice(customer["Id"], {"value": "XYZ"}))
    home = await mc.create("Invoice", invoice("1", USD))

    assert created["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    assert created["ExchangeRate"] == D("1.1")
    assert (created["TotalAmt"], created["HomeTotalAmt"]) == (D("100.00"), D("110.00"))
    assert created["HomeBalance"] == D("110.00")
    assert_business_rule(wrong_currency, "USD", "EUR", "Euro Shop", element="CurrencyRef")
    assert_business_rule(
        home_customer_in_euros, "EUR", "USD", "Amy's Bird Sanctuary", element="CurrencyRef"
    )
    assert (first_error(no_currency)["code"], first_error(no_currency)["element"]) == (
        "2020",
        "CurrencyRef",
    )
    assert first_error(no_rate)["element"] == "ExchangeRate"
    assert first_error(zero_rate)["element"] == "ExchangeRate"
    assert first_error(unknown)["code"] == "2500"
    assert home["ExchangeRate"] == 1
    assert "HomeTotalAmt" not in home
    assert len(mc.admin.documents(MC, "Invoice")) == 2


async def test_payments_share_the_currency_and_home_amounts_follow_them(mc: Api) -> None:
    customer = await mc.create("Customer", {"DisplayName": "Euro Shop", "CurrencyRef": EUR})
    inv = await mc.create("Invoice", invoice(customer["Id"], EUR, ExchangeRate="1.1"))
    payment = {
        "CustomerRef": {"value": customer["Id"]},
        "CurrencyRef": EUR,
        "ExchangeRate": D("1.2"),
        "TotalAmt": D("40"),
        "Line": [{"Amount": D("40"), "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
    }

    in_dollars = await mc.post("Payment", {**payment, "CurrencyRef": USD})
    paid = await mc.create("Payment", payment)
    after = await mc.read("Invoice", inv["Id"])

    assert_business_rule(in_dollars, "USD", "EUR", element="CurrencyRef")
    assert paid["HomeTotalAmt"] == D("48.00")
    assert (after["Balance"], after["HomeBalance"]) == (D("60.00"), D("66.00"))


async def test_a_customers_or_vendors_currency_is_fixed_once_created(mc: Api) -> None:
    customer = await mc.create("Customer", {"DisplayName": "Euro Shop", "CurrencyRef": EUR})
    vendor = await mc.create("Vendor", {"DisplayName": "Euro Supplier", "CurrencyRef": EUR})

    def sparse(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return {"Id": document["Id"], "SyncToken": "0", "sparse": True, **changes}

    changed = await mc.post("Customer", sparse(customer, CurrencyRef=USD))
    vendor_changed = await mc.post("Vendor", sparse(vendor, CurrencyRef=USD))
    renamed = await mc.create("Customer", sparse(customer, DisplayName="Euro Shop GmbH"))
    full_update = await mc.create(
        "Vendor", {"Id": vendor["Id"], "SyncToken": "0", "DisplayName": "Euro Supplier BV"}
    )

    home_receivables = await mc.post(
        "Customer",
        {"DisplayName": "Euro Shop 2", "CurrencyRef": EUR, "ARAccountRef": {"value": "11"}},
    )

    assert_business_rule(home_receivables, "USD", "EUR", element="ARAccountRef")
    assert_business_rule(changed, "EUR", "USD", "can't be changed", element="CurrencyRef")
    assert_business_rule(vendor_changed, "EUR", "USD", element="CurrencyRef")
    assert renamed["CurrencyRef"]["value"] == "EUR"
    assert full_update["CurrencyRef"]["value"] == "EUR"


async def test_bills_and_purchases_follow_the_vendors_currency(mc: Api) -> None:
    vendor = await mc.create("Vendor", {"DisplayName": "Euro Supplier", "CurrencyRef": EUR})
    bill = {
        "VendorRef": {"value": vendor["Id"]},
        "CurrencyRef": EUR,
        "ExchangeRate": D("1.1"),
        "Line": [expense_line("200")],
    }

    first = await mc.create("Bill", bill)
    second = await mc.create("Bill", bill)
    in_dollars = await mc.post("Bill", {**bill, "CurrencyRef": USD})
    home_payables = await mc.post("Bill", {**bill, "APAccountRef": {"value": "7"}})

    payables = await mc.read("Account", first["APAccountRef"]["value"])
    assert payables["Name"] == "Accounts Payable (A/P) - EUR"
    assert payables["CurrencyRef"]["value"] == "EUR"
    assert second["APAccountRef"] == first["APAccountRef"]
    assert (first["TotalAmt"], first["HomeTotalAmt"], first["HomeBalance"]) == (
        D("200.00"),
        D("220.00"),
        D("220.00"),
    )
    assert_business_rule(in_dollars, "USD", "EUR", element="CurrencyRef")
    assert_business_rule(home_payables, "USD", "EUR", element="APAccountRef")

    purchase = {
        "PaymentType": "Check",
        "AccountRef": {"value": "8"},
        "EntityRef": {"value": vendor["Id"], "type": "Vendor"},
        "CurrencyRef": EUR,
        "ExchangeRate": D("1.1"),
        "Line": [expense_line("10")],
    }
    from_a_dollar_account = await mc.post("Purchase", purchase)
    euro_bank = await mc.create(
        "Account", {"Name": "Euro Account", "AccountType": "Bank", "CurrencyRef": EUR}
    )
    euro_expenses = await mc.post(
        "Account", {"Name": "Euro Costs", "AccountType": "Expense", "CurrencyRef": EUR}
    )
    paid = await mc.create("Purchase", {**purchase, "AccountRef": {"value": euro_bank["Id"]}})
    no_payee_in_dollars = await mc.post(
        "Purchase",
        {
            **purchase,
            "AccountRef": {"value": euro_bank["Id"]},
            "EntityRef": None,
            "CurrencyRef": USD,
        },
    )

    assert_business_rule(from_a_dollar_account, "USD", "EUR", element="AccountRef")
    assert_business_rule(euro_expenses, "Expense", "EUR", element="CurrencyRef")
    assert paid["HomeTotalAmt"] == D("11.00")
    assert_business_rule(no_payee_in_dollars, "EUR", "USD", element="AccountRef")
