"""Entities: Intuit's field names, unknown fields kept, money exact as Decimal end to end."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbsync.qbo import (
    Account,
    Bill,
    Customer,
    Invoice,
    Item,
    Payment,
    Purchase,
    TaxCode,
    TaxRate,
    Vendor,
)
from qbsync.qbo.codec import dumps, loads
from qbsync.qbo.entities import QboEntity, entity_from_wire


def test_fields_populate_from_intuit_names_and_from_python_names() -> None:
    by_wire = Customer.model_validate(
        {"DisplayName": "Acme", "PrimaryEmailAddr": {"Address": "ap@acme.test"}}
    )
    by_name = Customer(display_name="Acme")
    assert by_wire.display_name == by_name.display_name == "Acme"
    assert by_wire.primary_email_addr is not None
    assert by_wire.primary_email_addr.address == "ap@acme.test"


def test_lower_case_and_irregular_names_keep_intuits_spelling() -> None:
    bill = Bill.model_validate(
        {"APAccountRef": {"value": "33", "name": "AP"}, "domain": "QBO", "sparse": False}
    )
    assert bill.ap_account_ref is not None
    assert bill.ap_account_ref.value == "33"
    assert bill.to_payload() == {
        "APAccountRef": {"value": "33", "name": "AP"},
        "domain": "QBO",
        "sparse": False,
    }


def test_money_parses_exactly() -> None:
    raw = (
        b'{"TotalAmt": 0.1, "Balance": 1234567890.123456789, '
        b'"Line": [{"Amount": 0.2, "DetailType": "SalesItemLineDetail"}], '
        b'"TxnTaxDetail": {"TotalTax": 0.30, "TaxLine": [{"Amount": 0.30, '
        b'"TaxLineDetail": {"TaxPercent": 20, "NetAmountTaxable": 1.5}}]}}'
    )
    invoice = Invoice.model_validate(loads(raw))
    assert invoice.total_amt == Decimal("0.1")
    assert invoice.balance == Decimal("1234567890.123456789")
    assert invoice.line is not None
    assert invoice.line[0].amount == Decimal("0.2")
    assert invoice.total_amt + invoice.line[0].amount == Decimal("0.3")
    detail = invoice.txn_tax_detail
    assert detail is not None
    assert detail.total_tax == Decimal("0.30")
    assert detail.tax_line is not None
    tax_line = detail.tax_line[0].tax_line_detail
    assert tax_line is not None
    assert tax_line.tax_percent == Decimal("20")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6))
def test_decimal_survives_a_json_round_trip(amount: Decimal) -> None:
    encoded = dumps({"Amount": amount})
    assert b'"' not in encoded.split(b":", 1)[1]  # a number, not a string
    assert loads(encoded)["Amount"] == amount


def test_floats_and_non_finite_amounts_are_never_sent() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        dumps({"Amount": 0.1})
    with pytest.raises(ValueError, match="non-finite"):
        dumps({"Amount": Decimal("NaN")})


def test_unknown_fields_survive_a_round_trip() -> None:
    wire = {
        "Id": "90",
        "SyncToken": "2",
        "TotalAmt": Decimal("25.00"),
        "ProcessPayment": False,
        "Line": [
            {
                "Amount": Decimal("25.00"),
                "LinkedTxn": [{"TxnId": "67", "TxnType": "Invoice"}],
                "LineEx": {"any": [{"name": "txnId", "value": "67"}]},
            }
        ],
    }
    payment = Payment.model_validate(wire)
    assert payment.line is not None
    assert payment.line[0].linked_txn is not None
    assert payment.line[0].linked_txn[0].txn_id == "67"
    assert payment.to_payload() == wire


def test_tax_codes_and_rates() -> None:
    code = TaxCode.model_validate(
        {
            "Id": "3",
            "Name": "20.0% S",
            "Taxable": True,
            "TaxGroup": True,
            "SalesTaxRateList": {
                "TaxRateDetail": [
                    {
                        "TaxRateRef": {"value": "5", "name": "20.0% S"},
                        "TaxTypeApplicable": "TaxOnAmount",
                        "TaxOrder": 0,
                    }
                ]
            },
            "PurchaseTaxRateList": {"TaxRateDetail": []},
        }
    )
    assert code.sales_tax_rate_list is not None
    rate_ref = code.sales_tax_rate_list.tax_rate_detail[0].tax_rate_ref
    assert rate_ref is not None
    assert rate_ref.value == "5"
    rate = TaxRate.model_validate({"Id": "5", "Name": "20.0% S", "RateValue": 20})
    assert rate.rate_value == Decimal("20")


def test_purchase_minimal_body() -> None:
    purchase = Purchase.model_validate(
        {
            "PaymentType": "CreditCard",
            "AccountRef": {"value": "42"},
            "EntityRef": {"value": "56", "type": "Vendor"},
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": Decimal("49.99"),
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "13"}},
                }
            ],
        }
    )
    assert purchase.entity_ref is not None
    assert purchase.entity_ref.type == "Vendor"
    assert purchase.line is not None
    detail = purchase.line[0].account_based_expense_line_detail
    assert detail is not None
    assert detail.account_ref.value == "13"


def test_unknown_entity_names_still_parse() -> None:
    known = entity_from_wire("Invoice", {"Id": "1"})
    other = entity_from_wire("CreditMemo", {"Id": "2", "TotalAmt": Decimal("5")})
    assert isinstance(known, Invoice)
    assert type(other) is QboEntity
    assert other.to_payload() == {"Id": "2", "TotalAmt": Decimal("5")}


def test_name_lists_parse_their_minimal_bodies() -> None:
    vendor = Vendor.model_validate({"DisplayName": "Office Supplies Co", "Balance": 0})
    item = Item.model_validate(
        {"Name": "SaaS subscription", "Type": "Service", "IncomeAccountRef": {"value": "79"}}
    )
    account = Account.model_validate(
        {"Name": "Platform Revenue", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome"}
    )
    assert vendor.display_name == "Office Supplies Co"
    assert vendor.balance == Decimal("0")
    assert item.type == "Service"
    assert item.income_account_ref is not None
    assert item.income_account_ref.value == "79"
    assert (account.account_type, account.account_sub_type) == ("Income", "ServiceFeeIncome")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_read_as_amounts(constant: bytes) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        loads(b'{"TotalAmt": ' + constant + b"}")


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890.123456789",
        "0.000000001",
        "-0.00",
        "1E+2",
        "12.50",
    ],
)
def test_amounts_beyond_float_precision_round_trip_through_an_entity(text: str) -> None:
    """Read from JSON, held on a model, sent back: the same digits, as a JSON number."""
    invoice = Invoice.model_validate(loads(b'{"TotalAmt": ' + text.encode() + b"}"))
    assert invoice.total_amt is not None
    assert invoice.total_amt.as_tuple() == Decimal(text).as_tuple()
    sent = dumps(invoice.to_payload())
    assert sent == b'{"TotalAmt":' + format(Decimal(text), "f").encode() + b"}"
    assert loads(sent)["TotalAmt"] == Decimal(text)
