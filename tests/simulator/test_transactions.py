"""Transactions as QBO computes them: totals, US sales tax, GB VAT, balances, delete and void."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.simulator.conftest import Api, expense_line, first_error, sales_line

D = Decimal


def invoice(customer: str = "1", *lines: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"CustomerRef": {"value": customer}, "Line": list(lines), **fields}


async def test_us_sales_tax_applies_to_tax_lines_rounded_half_up(us: Api) -> None:
    created = await us.create(
        "Invoice",
        invoice(
            "1",
            sales_line("150.00", "2", qty="2", price="75", code="TAX"),
            sales_line("50.00", "1", code="NON"),
        ),
    )

    tax = created["TxnTaxDetail"]
    assert tax["TxnTaxCodeRef"]["value"] == "2"
    # 150 * 8.25% = 12.375: half-up gives 12.38 where banker's rounding would give 12.37.
    assert tax["TotalTax"] == D("12.38")
    [tax_line] = tax["TaxLine"]
    assert tax_line["TaxLineDetail"]["NetAmountTaxable"] == D("150.00")
    assert tax_line["TaxLineDetail"]["TaxPercent"] == D("8.25")
    assert created["TotalAmt"] == D("212.38")
    assert created["Balance"] == D("212.38")
    assert created["Line"][-1] == {
        "Amount": D("200.00"),
        "DetailType": "SubTotalLineDetail",
        "SubTotalLineDetail": {},
    }


async def test_amounts_go_out_as_plain_json_numbers(us: Api) -> None:
    response = await us.post("Invoice", invoice("1", sales_line("2.00", "2")))

    assert '"TotalTax":0.17' in response.text  # the item is taxable; 2.00 * 8.25% = 0.165
    assert '"TotalAmt":2.17' in response.text


async def test_amount_must_equal_qty_times_unit_price(us: Api) -> None:
    response = await us.post("Invoice", invoice("1", sales_line("140", "2", qty="2", price="75")))

    assert response.status_code == 400
    assert first_error(response)["code"] == "6000"
    assert "UnitPrice * Qty" in first_error(response)["Detail"]


async def test_a_non_taxable_customer_pays_no_us_tax(us: Api) -> None:
    created = await us.create("Invoice", invoice("4", sales_line("100", "2", code="TAX")))

    assert created["TxnTaxDetail"]["TotalTax"] == D("0.00")
    assert created["TotalAmt"] == D("100.00")


async def test_an_explicit_total_tax_overrides_automated_sales_tax(us: Api) -> None:
    created = await us.create(
        "Invoice",
        invoice("1", sales_line("150", "2", code="TAX"), TxnTaxDetail={"TotalTax": D("10")}),
    )

    assert created["TxnTaxDetail"]["TotalTax"] == D("10.00")
    assert created["TotalAmt"] == D("160.00")


async def test_an_overridden_tax_survives_a_sparse_update_that_leaves_lines_alone(
    us: Api,
) -> None:
    created = await us.create(
        "Invoice",
        invoice("1", sales_line("150", "2", code="TAX"), TxnTaxDetail={"TotalTax": D("10")}),
    )
    await us.create("Payment", payment(created["Id"], "160.00"))
    paid = await us.read("Invoice", created["Id"])

    memo = await us.create(
        "Invoice",
        {"Id": created["Id"], "SyncToken": paid["SyncToken"], "sparse": True, "PrivateNote": "m"},
    )
    in_quickbooks = us.admin.edit_invoice(us.realm_id, created["Id"], {"DueDate": "2027-01-31"})

    for edited in (memo, in_quickbooks):
        assert edited["TxnTaxDetail"]["TotalTax"] == D("10.00")
        assert edited["TotalAmt"] == D("160.00")
        assert edited["Balance"] == D("0.00")
    relined = await us.create(
        "Invoice",
        {
            "Id": created["Id"],
            "SyncToken": in_quickbooks["SyncToken"],
            "sparse": True,
            "Line": [sales_line("200", "2", code="TAX")],
        },
    )
    assert relined["TxnTaxDetail"]["TotalTax"] == D("16.50")  # new lines: AST computes again


async def test_gb_vat_excluded_gives_one_tax_line_per_rate(gb: Api) -> None:
    created = await gb.create(
        "Invoice",
        invoice(
            "1",
            sales_line("100.00", "1", code="3"),
            sales_line("200.00", "3", code="4"),
            sales_line("30.00", "4", code="5"),
            sales_line("33.33", "1", qty="1", price="33.33", code="3"),
            GlobalTaxCalculation="TaxExcluded",
            DocNumber="GB-1",
        ),
    )

    by_rate = {
        line["TaxLineDetail"]["TaxRateRef"]["value"]: line
        for line in created["TxnTaxDetail"]["TaxLine"]
    }
    assert by_rate["1"]["TaxLineDetail"]["NetAmountTaxable"] == D("133.33")
    assert by_rate["1"]["Amount"] == D("26.67")
    assert by_rate["3"]["Amount"] == D("10.00")
    assert by_rate["5"]["Amount"] == D("0.00")
    assert created["TxnTaxDetail"]["TotalTax"] == D("36.67")
    assert created["TotalAmt"] == D("400.00")
    assert created["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {
        "value": "3",
        "name": "20.0% S",
    }


async def test_gb_vat_inclusive_amounts_contain_the_tax(gb: Api) -> None:
    created = await gb.create(
        "Invoice",
        invoice(
            "1",
            sales_line("120.00", "1", code="3"),
            sales_line("105.00", "3", code="4"),
            sales_line("10.00", "2", code="3"),
            GlobalTaxCalculation="TaxInclusive",
        ),
    )

    tax = created["TxnTaxDetail"]
    by_rate = {line["TaxLineDetail"]["TaxRateRef"]["value"]: line for line in tax["TaxLine"]}
    # 130.00 gross at 20%: 21.67 tax, 108.33 net; 105.00 gross at 5%: 5.00 tax.
    assert by_rate["1"]["Amount"] == D("21.67")
    assert by_rate["1"]["TaxLineDetail"]["NetAmountTaxable"] == D("108.33")
    assert by_rate["3"]["Amount"] == D("5.00")
    assert tax["TotalTax"] == D("26.67")
    assert created["TotalAmt"] == D("235.00")
    assert created["Line"][0]["SalesItemLineDetail"]["TaxInclusiveAmt"] == D("120.00")


async def test_switching_a_gb_invoice_to_tax_excluded_recomputes_every_figure(gb: Api) -> None:
    created = await gb.create(
        "Invoice",
        invoice("1", sales_line("120.00", "1", code="3"), GlobalTaxCalculation="TaxInclusive"),
    )

    excluded = await gb.create(
        "Invoice",
        {
            "Id": created["Id"],
            "SyncToken": created["SyncToken"],
            "sparse": True,
            "GlobalTaxCalculation": "TaxExcluded",
        },
    )

    assert excluded["TxnTaxDetail"]["TotalTax"] == D("24.00")
    assert excluded["TotalAmt"] == D("144.00")
    assert "TaxInclusiveAmt" not in excluded["Line"][0]["SalesItemLineDetail"]


async def test_gb_vat_not_applicable(gb: Api) -> None:
    created = await gb.create(
        "Invoice", invoice("1", sales_line("80", "1"), GlobalTaxCalculation="NotApplicable")
    )

    assert created["TxnTaxDetail"] == {"TotalTax": D("0.00"), "TaxLine": []}
    assert created["TotalAmt"] == D("80.00")


async def test_every_gb_line_needs_a_vat_code_and_the_invoice_a_tax_mode(gb: Api) -> None:
    no_code = await gb.post(
        "Invoice",
        invoice(
            "1",
            sales_line("80", "1", code="3"),
            sales_line("5", "1"),
            GlobalTaxCalculation="TaxExcluded",
        ),
    )
    no_mode = await gb.post("Invoice", invoice("1", sales_line("80", "1", code="3")))
    bad_code = await gb.post(
        "Invoice",
        invoice("1", sales_line("80", "1", code="99"), GlobalTaxCalculation="TaxExcluded"),
    )

    assert first_error(no_code)["code"] == "6000"
    assert "VAT rate" in first_error(no_code)["Detail"]
    assert (first_error(no_mode)["code"], first_error(no_mode)["element"]) == (
        "2020",
        "GlobalTaxCalculation",
    )
    assert first_error(bad_code)["code"] == "2500"


async def test_an_invoice_needs_an_active_customer_and_lines(us: Api) -> None:
    no_customer = await us.post("Invoice", {"Line": [sales_line("10")]})
    no_lines = await us.post("Invoice", {"CustomerRef": {"value": "1"}})
    inactive = await us.post("Invoice", invoice("5", sales_line("10")))
    unknown_item = await us.post("Invoice", invoice("1", sales_line("10", "99")))

    assert first_error(no_customer)["element"] == "CustomerRef"
    assert first_error(no_lines)["element"] == "Line"
    assert {first_error(r)["code"] for r in (no_customer, no_lines)} == {"2020"}
    assert first_error(inactive)["code"] == "610"
    assert first_error(unknown_item)["code"] == "2500"


async def test_duplicate_doc_numbers_are_refused_unless_allowed(gb: Api) -> None:
    body = invoice(
        "1", sales_line("10", code="3"), GlobalTaxCalculation="TaxExcluded", DocNumber="INV-7"
    )
    await gb.create("Invoice", body)

    duplicate = await gb.post("Invoice", {**body, "DocNumber": "inv-7"})
    allowed = await gb.post("Invoice", body, include="allowduplicatedocnum")

    assert duplicate.status_code == 400
    assert first_error(duplicate)["code"] == "6140"
    assert allowed.status_code == 200
    too_long = await gb.post("Invoice", {**body, "DocNumber": "X" * 22})
    assert first_error(too_long)["element"] == "DocNumber"


async def test_us_invoices_are_numbered_by_quickbooks(us: Api) -> None:
    first = await us.create("Invoice", invoice("1", sales_line("10")))
    second = await us.create("Invoice", invoice("1", sales_line("10")))

    assert (first["DocNumber"], second["DocNumber"]) == ("1001", "1002")
    duplicate = await us.post("Invoice", invoice("1", sales_line("10"), DocNumber="1001"))
    assert first_error(duplicate)["code"] == "6140"


async def test_a_full_update_replaces_the_lines(us: Api) -> None:
    described = {"DetailType": "DescriptionOnly", "Description": "Thanks for your business"}
    created = await us.create(
        "Invoice",
        invoice("1", sales_line("10", code="NON"), described, sales_line("20", code="NON")),
    )
    assert created["Line"][1] == {
        "Description": "Thanks for your business",
        "DetailType": "DescriptionOnly",
        "DescriptionLineDetail": {},
        "Id": "2",
        "LineNum": 2,
    }

    updated = await us.create(
        "Invoice",
        {**invoice("1", sales_line("5", code="NON")), "Id": created["Id"], "SyncToken": "0"},
    )

    assert [line["Amount"] for line in updated["Line"]] == [D("5.00"), D("5.00")]
    assert updated["TotalAmt"] == D("5.00")
    assert updated["DocNumber"] == created["DocNumber"]


def payment(
    invoice_id: str, amount: str, total: str | None = None, customer: str = "1"
) -> dict[str, Any]:
    return {
        "CustomerRef": {"value": customer},
        "TotalAmt": D(total or amount),
        "Line": [{"Amount": D(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
    }


async def test_payments_reduce_the_balance_and_deleting_one_restores_it(us: Api) -> None:
    inv = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))

    paid = await us.create("Payment", payment(inv["Id"], "40"))
    after_payment = await us.read("Invoice", inv["Id"])

    assert paid["UnappliedAmt"] == D("0.00")
    assert paid["DepositToAccountRef"]["name"] == "Undeposited Funds"
    assert after_payment["Balance"] == D("60.00")
    assert after_payment["SyncToken"] == "1"
    assert after_payment["LinkedTxn"] == [{"TxnId": paid["Id"], "TxnType": "Payment"}]

    too_much = await us.post("Payment", payment(inv["Id"], "70"))
    assert first_error(too_much)["code"] == "6000"

    changed = await us.create(
        "Payment", {**payment(inv["Id"], "25"), "Id": paid["Id"], "SyncToken": paid["SyncToken"]}
    )
    assert (await us.read("Invoice", inv["Id"]))["Balance"] == D("75.00")

    deleted = await us.create(
        "Payment", {"Id": paid["Id"], "SyncToken": changed["SyncToken"]}, operation="delete"
    )
    restored = await us.read("Invoice", inv["Id"])

    assert deleted == {"status": "Deleted", "domain": "QBO", "Id": paid["Id"]}
    assert restored["Balance"] == D("100.00")
    assert restored["LinkedTxn"] == []


async def test_a_payment_above_what_it_applies_leaves_credit(us: Api) -> None:
    inv = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))

    paid = await us.create("Payment", payment(inv["Id"], "30", total="50"))
    unapplied = await us.create("Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 15})

    assert paid["UnappliedAmt"] == D("20.00")
    assert unapplied["UnappliedAmt"] == D("15.00")
    assert first_error(await us.post("Payment", {"CustomerRef": {"value": "1"}}))["element"] == (
        "TotalAmt"
    )
    other_customer = await us.post("Payment", payment(inv["Id"], "10", customer="2"))
    assert first_error(other_customer)["code"] == "6000"


async def test_a_negative_amount_cannot_be_applied_to_an_invoice(us: Api) -> None:
    inv = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))
    await us.create("Payment", payment(inv["Id"], "40"))

    negative = await us.post("Payment", payment(inv["Id"], "-5", total="0"))

    assert negative.status_code == 400
    assert (first_error(negative)["code"], first_error(negative)["element"]) == (
        "6000",
        "Line.Amount",
    )
    assert (await us.read("Invoice", inv["Id"]))["Balance"] == D("60.00")


async def test_voiding_an_invoice_zeroes_it_and_unapplies_its_payments(us: Api) -> None:
    inv = await us.create(
        "Invoice",
        invoice("1", sales_line("150", "2", qty="2", price="75"), PrivateNote="Spring job"),
    )
    paid = await us.create("Payment", payment(inv["Id"], "50"))
    current = await us.read("Invoice", inv["Id"])

    voided = await us.create(
        "Invoice", {"Id": inv["Id"], "SyncToken": current["SyncToken"]}, operation="void"
    )

    assert voided["TotalAmt"] == voided["Balance"] == D("0.00")
    assert voided["TxnTaxDetail"]["TotalTax"] == D("0.00")
    assert voided["Line"][0]["Amount"] == D("0.00")
    assert voided["Line"][0]["SalesItemLineDetail"]["Qty"] == 0
    assert voided["PrivateNote"] == "Voided - Spring job"
    assert int(voided["SyncToken"]) == int(current["SyncToken"]) + 1
    credit = await us.read("Payment", paid["Id"])
    assert credit["Line"] == []
    assert credit["UnappliedAmt"] == D("50.00")
    assert (await us.query(f"SELECT * FROM Invoice WHERE Id = '{inv['Id']}'"))["Invoice"]
    edit = await us.post(
        "Invoice",
        {"Id": inv["Id"], "SyncToken": voided["SyncToken"], "sparse": True, "PrivateNote": "x"},
    )
    assert first_error(edit)["code"] == "6000"
    assert first_error(await us.post("Payment", payment(inv["Id"], "1")))["code"] == "6000"


async def test_deleting_an_invoice_removes_it_unless_payments_are_linked(us: Api) -> None:
    linked = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))
    await us.create("Payment", payment(linked["Id"], "10"))
    refused = await us.post("Invoice", {"Id": linked["Id"], "SyncToken": "1"}, operation="delete")
    assert first_error(refused)["code"] == "6000"

    plain = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))
    deleted = await us.create("Invoice", {"Id": plain["Id"], "SyncToken": "0"}, operation="delete")

    assert deleted == {"status": "Deleted", "domain": "QBO", "Id": plain["Id"]}
    assert first_error(await us.client.get(us.url(f"invoice/{plain['Id']}")))["code"] == "610"
    remaining = await us.query("SELECT * FROM Invoice")
    assert [row["Id"] for row in remaining["Invoice"]] == [linked["Id"]]


async def test_voiding_a_payment_restores_the_invoice(us: Api) -> None:
    inv = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))
    paid = await us.create("Payment", payment(inv["Id"], "100"))
    assert (await us.read("Invoice", inv["Id"]))["Balance"] == D("0.00")

    voided = await us.create(
        "Payment",
        {"Id": paid["Id"], "SyncToken": "0", "sparse": True},
        operation="update",
        include="void",
    )

    assert voided["TotalAmt"] == D("0.00")
    assert voided["PrivateNote"] == "Voided"
    assert (await us.read("Invoice", inv["Id"]))["Balance"] == D("100.00")


async def test_a_bill_totals_its_lines_and_defaults_the_ap_account(us: Api, gb: Api) -> None:
    us_bill = await us.create(
        "Bill",
        {"VendorRef": {"value": "1"}, "TxnDate": "2026-01-10", "Line": [expense_line("200")]},
    )
    gb_bill = await gb.create(
        "Bill",
        {
            "VendorRef": {"value": "1"},
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [expense_line("100", code="3")],
        },
    )

    assert us_bill["TotalAmt"] == us_bill["Balance"] == D("200.00")
    assert us_bill["APAccountRef"] == {"value": "7", "name": "Accounts Payable (A/P)"}
    assert us_bill["DueDate"] == "2026-01-10"
    assert gb_bill["TotalAmt"] == D("120.00")
    [tax_line] = gb_bill["TxnTaxDetail"]["TaxLine"]
    assert tax_line["TaxLineDetail"]["TaxRateRef"]["name"] == "20.0% S (purchases)"
    no_vendor = await us.post("Bill", {"Line": [expense_line("1")]})
    assert first_error(no_vendor)["element"] == "VendorRef"


async def test_a_purchase_is_paid_from_a_bank_or_card_account(us: Api) -> None:
    body = {
        "PaymentType": "CreditCard",
        "AccountRef": {"value": "10"},
        "EntityRef": {"value": "1", "type": "Vendor"},
        "Line": [expense_line("49.99", "4")],
    }
    bad_type = await us.post("Purchase", {**body, "PaymentType": "Barter"})
    wrong_account = await us.post("Purchase", {**body, "AccountRef": {"value": "8"}})
    missing_account = await us.post("Purchase", {**body, "AccountRef": None})

    created = await us.create("Purchase", body)

    assert first_error(bad_type)["code"] == "2170"
    assert first_error(wrong_account)["code"] == "6000"
    assert first_error(missing_account)["element"] == "AccountRef"
    assert created["TotalAmt"] == D("49.99")
    assert created["EntityRef"] == {"value": "1", "name": "Books by Bessie", "type": "Vendor"}
    voided = await us.create("Purchase", {"Id": created["Id"], "SyncToken": "0"}, operation="void")
    assert voided["TotalAmt"] == D("0.00")
    bill = await us.create("Bill", {"VendorRef": {"value": "1"}, "Line": [expense_line("5")]})
    refused = await us.post("Bill", {"Id": bill["Id"], "SyncToken": "0"}, operation="void")
    assert first_error(refused)["code"] == "500"


async def test_an_invoice_with_payments_applied_is_not_deleted(us: Api) -> None:
    inv = await us.create("Invoice", invoice("1", sales_line("100", code="NON")))
    paid = await us.create("Payment", payment(inv["Id"], "30"))
    current = await us.read("Invoice", inv["Id"])
    ids = {"Id": inv["Id"], "SyncToken": current["SyncToken"]}

    refused = await us.post("Invoice", ids, operation="delete")
    in_batch = await us.client.post(
        us.url("batch"),
        json={"BatchItemRequest": [{"bId": "1", "operation": "delete", "Invoice": ids}]},
    )

    assert refused.status_code == 400
    error = first_error(refused)
    assert error["code"] == "6000"
    assert (
        f"Invoice {inv['DocNumber']} has payments applied to it (Payment {paid['Id']})"
        in (error["Detail"])
    )
    assert "Remove the payments" in error["Detail"]
    [item] = in_batch.json()["BatchItemResponse"]
    assert item["Fault"]["Error"][0]["code"] == "6000"
    assert await us.read("Invoice", inv["Id"]) == current

    await us.create("Payment", {"Id": paid["Id"], "SyncToken": "0"}, operation="delete")
    after_payment = await us.read("Invoice", inv["Id"])
    deleted = await us.create(
        "Invoice", {"Id": inv["Id"], "SyncToken": after_payment["SyncToken"]}, operation="delete"
    )
    assert deleted["status"] == "Deleted"
