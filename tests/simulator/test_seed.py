"""The seeded companies: a US company with automated sales tax and a GB VAT company."""

from __future__ import annotations

from decimal import Decimal

from tests.simulator.conftest import GB, US, Api, decode


async def test_company_info_says_which_country(us: Api, gb: Api) -> None:
    us_info = decode(await us.client.get(us.url(f"companyinfo/{US}")))["CompanyInfo"]
    gb_info = decode(await gb.client.get(gb.url(f"companyinfo/{GB}")))["CompanyInfo"]

    assert us_info["Country"] == "US"
    assert us_info["CompanyName"] == "Craig's Design and Landscaping"
    assert gb_info["Country"] == "GB"
    assert gb_info["CompanyAddr"]["Country"] == "GB"


async def test_preferences_describe_tax_currency_and_numbering(us: Api, gb: Api) -> None:
    us_prefs = decode(await us.client.get(us.url("preferences")))["Preferences"]
    gb_prefs = decode(await gb.client.get(gb.url("preferences")))["Preferences"]

    assert us_prefs["TaxPrefs"]["PartnerTaxEnabled"] is True
    assert us_prefs["CurrencyPrefs"]["HomeCurrency"] == {"value": "USD"}
    assert us_prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is False
    assert gb_prefs["TaxPrefs"] == {"UsingSalesTax": True, "PartnerTaxEnabled": False}
    assert gb_prefs["CurrencyPrefs"]["HomeCurrency"] == {"value": "GBP"}
    assert gb_prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is True


async def test_both_companies_have_the_accounts_a_sync_needs(us: Api, gb: Api) -> None:
    needed = {"Income", "Expense", "Accounts Payable", "Bank", "Credit Card"}
    for api in (us, gb):
        accounts = (await api.query("SELECT * FROM Account MAXRESULTS 1000"))["Account"]
        assert needed <= {account["AccountType"] for account in accounts}
        items = (await api.query("SELECT * FROM Item WHERE Type = 'Service'"))["Item"]
        assert items
        assert all(item["IncomeAccountRef"]["value"] for item in items)
        assert (await api.query("SELECT COUNT(*) FROM Customer"))["totalCount"] >= 3
        assert (await api.query("SELECT COUNT(*) FROM Vendor"))["totalCount"] >= 3


async def test_us_tax_codes_are_the_tax_and_non_pseudo_codes(us: Api) -> None:
    codes = {code["Id"]: code for code in (await us.query("SELECT * FROM TaxCode"))["TaxCode"]}
    rate = (await us.query("SELECT * FROM TaxRate"))["TaxRate"][0]

    assert {"TAX", "NON"} <= set(codes)
    assert codes["TAX"]["TaxGroup"] is False
    assert rate["RateValue"] == Decimal("8.25")


async def test_gb_vat_codes_carry_sales_and_purchase_rates(gb: Api) -> None:
    codes = {code["Name"]: code for code in (await gb.query("SELECT * FROM TaxCode"))["TaxCode"]}
    rates = {rate["Id"]: rate for rate in (await gb.query("SELECT * FROM TaxRate"))["TaxRate"]}

    assert set(codes) == {"20.0% S", "5.0% R", "0.0% Z", "Exempt", "No VAT"}
    for name, percent in (("20.0% S", "20"), ("5.0% R", "5"), ("0.0% Z", "0"), ("Exempt", "0")):
        for rate_list in ("SalesTaxRateList", "PurchaseTaxRateList"):
            detail = codes[name][rate_list]["TaxRateDetail"][0]
            assert rates[detail["TaxRateRef"]["value"]]["RateValue"] == Decimal(percent)
    assert codes["0.0% Z"]["Description"] == "Zero-rated"
