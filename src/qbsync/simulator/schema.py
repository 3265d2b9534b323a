"""The shape of every writable entity, as QBO's deserializer enforces it before any business rule.

QBO refuses a body naming a property its schema lacks, or a property of the wrong JSON kind,
with 2010 "Request has invalid or unsupported property". Read-only properties (Balance,
FullyQualifiedName, MetaData, ...) are part of the schema: clients send back what they read,
and QBO ignores them. Scalars follow Jackson's coercions: a number may fill a string property,
a numeric string a number property, and an empty string means "not set" for numbers, dates and
enumerations (python-quickbooks sends `"TotalAmt": ""` on every new invoice).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from qbsync.simulator.errors import QboError, invalid_property

JAVA_PACKAGE = "com.intuit.schema.finance.v3"


@dataclass(frozen=True)
class Scalar:
    kind: str  # string | number | boolean | date


@dataclass(frozen=True)
class Shape:
    """A JSON object; `free` objects are checked for being objects, not for their keys."""

    name: str
    fields: dict[str, Any]
    free: bool = False


@dataclass(frozen=True)
class ListOf:
    item: Scalar | Shape


STRING = Scalar("string")
NUMBER = Scalar("number")
BOOLEAN = Scalar("boolean")
DATE = Scalar("date")

REF = Shape("ReferenceType", {"value": STRING, "name": STRING, "type": STRING})
ADDRESS = Shape(
    "PhysicalAddress",
    dict.fromkeys(
        (
            "Id",
            "Line1",
            "Line2",
            "Line3",
            "Line4",
            "Line5",
            "City",
            "Country",
            "CountryCode",
            "County",
            "CountrySubDivisionCode",
            "PostalCode",
            "PostalCodeSuffix",
            "Lat",
            "Long",
            "Tag",
            "Note",
        ),
        STRING,
    ),
)
EMAIL = Shape("EmailAddress", {"Id": STRING, "Address": STRING, "Default": BOOLEAN, "Tag": STRING})
PHONE = Shape(
    "TelephoneNumber",
    {
        "Id": STRING,
        "DeviceType": STRING,
        "CountryCode": STRING,
        "AreaCode": STRING,
        "ExchangeCode": STRING,
        "Extension": STRING,
        "FreeFormNumber": STRING,
        "Default": BOOLEAN,
        "Tag": STRING,
    },
)
WEB = Shape("WebSiteAddress", {"Id": STRING, "URI": STRING, "Default": BOOLEAN, "Tag": STRING})
META = Shape(
    "ModificationMetaData",
    {
        "CreateTime": STRING,
        "LastUpdatedTime": STRING,
        "CreatedByRef": REF,
        "LastModifiedByRef": REF,
        "LastChangedInQB": STRING,
        "Synchronized": BOOLEAN,
    },
)
MEMO = Shape("MemoRef", {"value": STRING, "name": STRING})
# Structures the simulator does not model: any object is accepted.
FREE = Shape("IntuitEntity", {}, free=True)
LINKED_TXN = Shape("LinkedTxn", {"TxnId": STRING, "TxnType": STRING, "TxnLineId": STRING})
CUSTOM_FIELD = Shape(
    "CustomField",
    {
        "DefinitionId": STRING,
        "Name": STRING,
        "Type": STRING,
        "StringValue": STRING,
        "BooleanValue": BOOLEAN,
        "DateValue": DATE,
        "NumberValue": NUMBER,
    },
)
MARKUP = Shape(
    "MarkupInfo",
    {
        "PercentBased": BOOLEAN,
        "Value": NUMBER,
        "Percent": NUMBER,
        "PriceLevelRef": REF,
        "MarkUpIncomeAccountRef": REF,
    },
)
TAX_LINE = Shape(
    "Line",
    {
        "Id": STRING,
        "LineNum": NUMBER,
        "Description": STRING,
        "Amount": NUMBER,
        "DetailType": STRING,
        "TaxLineDetail": Shape(
            "TaxLineDetail",
            {
                "TaxRateRef": REF,
                "PercentBased": BOOLEAN,
                "TaxPercent": NUMBER,
                "NetAmountTaxable": NUMBER,
                "TaxInclusiveAmount": NUMBER,
                "OverrideDeltaAmount": NUMBER,
            },
        ),
    },
)
TXN_TAX_DETAIL = Shape(
    "TxnTaxDetail",
    {
        "DefaultTaxCodeRef": REF,
        "TxnTaxCodeRef": REF,
        "TotalTax": NUMBER,
        "TaxLine": ListOf(TAX_LINE),
    },
)

_SALES_DETAIL = Shape(
    "SalesItemLineDetail",
    {
        "ItemRef": REF,
        "ClassRef": REF,
        "UnitPrice": NUMBER,
        "RatePercent": NUMBER,
        "PriceLevelRef": REF,
        "MarkupInfo": MARKUP,
        "Qty": NUMBER,
        "UOMRef": FREE,
        "ItemAccountRef": REF,
        "TaxCodeRef": REF,
        "TaxClassificationRef": REF,
        "ServiceDate": DATE,
        "TaxInclusiveAmt": NUMBER,
        "DiscountRate": NUMBER,
        "DiscountAmt": NUMBER,
    },
)
_ACCOUNT_DETAIL = Shape(
    "AccountBasedExpenseLineDetail",
    {
        "AccountRef": REF,
        "TaxCodeRef": REF,
        "TaxAmount": NUMBER,
        "TaxInclusiveAmt": NUMBER,
        "ClassRef": REF,
        "CustomerRef": REF,
        "BillableStatus": STRING,
        "MarkupInfo": MARKUP,
        "ProjectRef": REF,
    },
)
_ITEM_EXPENSE_DETAIL = Shape(
    "ItemBasedExpenseLineDetail",
    {
        "ItemRef": REF,
        "Qty": NUMBER,
        "UnitPrice": NUMBER,
        "TaxCodeRef": REF,
        "TaxInclusiveAmt": NUMBER,
        "ClassRef": REF,
        "CustomerRef": REF,
        "BillableStatus": STRING,
        "PriceLevelRef": REF,
        "MarkupInfo": MARKUP,
        "ProjectRef": REF,
    },
)
LINE = Shape(
    "Line",
    {
        "Id": STRING,
        "LineNum": NUMBER,
        "Description": STRING,
        "Amount": NUMBER,
        "DetailType": STRING,
        "LinkedTxn": ListOf(LINKED_TXN),
        "CustomField": ListOf(CUSTOM_FIELD),
        "LineEx": FREE,
        "SalesItemLineDetail": _SALES_DETAIL,
        "SubTotalLineDetail": Shape("SubTotalLineDetail", {"ItemRef": REF}),
        "DescriptionLineDetail": Shape(
            "DescriptionLineDetail", {"ServiceDate": DATE, "TaxCodeRef": REF}
        ),
        "DiscountLineDetail": FREE,
        "GroupLineDetail": FREE,
        "TDSLineDetail": FREE,
        "AccountBasedExpenseLineDetail": _ACCOUNT_DETAIL,
        "ItemBasedExpenseLineDetail": _ITEM_EXPENSE_DETAIL,
    },
)

_COMMON: dict[str, Any] = {
    "Id": STRING,
    "SyncToken": STRING,
    "sparse": BOOLEAN,
    "domain": STRING,
    "status": STRING,
    "MetaData": META,
}
_PERSON: dict[str, Any] = {
    **_COMMON,
    "Title": STRING,
    "GivenName": STRING,
    "MiddleName": STRING,
    "FamilyName": STRING,
    "Suffix": STRING,
    "DisplayName": STRING,
    "PrintOnCheckName": STRING,
    "Active": BOOLEAN,
    "PrimaryPhone": PHONE,
    "Mobile": PHONE,
    "PrimaryEmailAddr": EMAIL,
}
_PARTY: dict[str, Any] = {
    **_PERSON,
    "CompanyName": STRING,
    "FullyQualifiedName": STRING,
    "AlternatePhone": PHONE,
    "Fax": PHONE,
    "WebAddr": WEB,
    "BillAddr": ADDRESS,
    "CurrencyRef": REF,
    "Balance": NUMBER,
    "OtherContactInfo": FREE,
    "Source": STRING,
    "GSTIN": STRING,
    "GSTRegistrationType": STRING,
    "BusinessNumber": STRING,
}
_TRANSACTION: dict[str, Any] = {
    **_COMMON,
    "DocNumber": STRING,
    "TxnDate": DATE,
    "PrivateNote": STRING,
    "ExchangeRate": NUMBER,
    "CurrencyRef": REF,
    "TotalAmt": NUMBER,
    "HomeTotalAmt": NUMBER,
    "GlobalTaxCalculation": STRING,
    "TxnTaxDetail": TXN_TAX_DETAIL,
    "DepartmentRef": REF,
    "Line": ListOf(LINE),
    "LinkedTxn": ListOf(LINKED_TXN),
    "CustomField": ListOf(CUSTOM_FIELD),
    "TransactionLocationType": STRING,
    "TxnSource": STRING,
    "ProjectRef": REF,
}

ENTITY_FIELDS: dict[str, dict[str, Any]] = {
    "Customer": {
        **_PARTY,
        "Notes": STRING,
        "IsProject": BOOLEAN,
        "Job": BOOLEAN,
        "BillWithParent": BOOLEAN,
        "ParentRef": REF,
        "Level": NUMBER,
        "Taxable": BOOLEAN,
        "BalanceWithJobs": NUMBER,
        "OpenBalanceDate": DATE,
        "PreferredDeliveryMethod": STRING,
        "ResaleNum": STRING,
        "PrimaryTaxIdentifier": STRING,
        "SecondaryTaxIdentifier": STRING,
        "TaxExemptionReasonId": STRING,
        "ShipAddr": ADDRESS,
        "DefaultTaxCodeRef": REF,
        "SalesTermRef": REF,
        "PaymentMethodRef": REF,
        "ARAccountRef": REF,
        "CustomerTypeRef": REF,
        "ClientEntityId": STRING,
    },
    "Vendor": {
        **_PARTY,
        "TaxIdentifier": STRING,
        "AcctNum": STRING,
        "Vendor1099": BOOLEAN,
        "TaxReportingBasis": STRING,
        "BillRate": NUMBER,
        "CostRate": NUMBER,
        "TermRef": REF,
        "APAccountRef": REF,
        "T4AEligible": BOOLEAN,
        "T5018Eligible": BOOLEAN,
        "HasTPAR": BOOLEAN,
        "VendorPaymentBankDetail": FREE,
    },
    "Employee": {
        **_PERSON,
        "PrimaryAddr": ADDRESS,
        "SSN": STRING,
        "EmployeeNumber": STRING,
        "BillableTime": BOOLEAN,
        "BillRate": NUMBER,
        "CostRate": NUMBER,
        "BirthDate": DATE,
        "HiredDate": DATE,
        "ReleasedDate": DATE,
        "Gender": STRING,
        "Organization": BOOLEAN,
        "V4IDPseudonym": STRING,
    },
    "Item": {
        **_COMMON,
        "Name": STRING,
        "Sku": STRING,
        "Description": STRING,
        "Active": BOOLEAN,
        "SubItem": BOOLEAN,
        "ParentRef": REF,
        "Level": NUMBER,
        "FullyQualifiedName": STRING,
        "Taxable": BOOLEAN,
        "SalesTaxIncluded": BOOLEAN,
        "UnitPrice": NUMBER,
        "Type": STRING,
        "IncomeAccountRef": REF,
        "ExpenseAccountRef": REF,
        "AssetAccountRef": REF,
        "PurchaseDesc": STRING,
        "PurchaseTaxIncluded": BOOLEAN,
        "PurchaseCost": NUMBER,
        "TrackQtyOnHand": BOOLEAN,
        "QtyOnHand": NUMBER,
        "ReorderPoint": NUMBER,
        "InvStartDate": DATE,
        "SalesTaxCodeRef": REF,
        "PurchaseTaxCodeRef": REF,
        "PrefVendorRef": REF,
        "ClassRef": REF,
        "TaxClassificationRef": REF,
        "AbatementRate": NUMBER,
        "ReverseChargeRate": NUMBER,
        "ServiceType": STRING,
        "ItemCategoryType": STRING,
        "Source": STRING,
    },
    "Account": {
        **_COMMON,
        "Name": STRING,
        "SubAccount": BOOLEAN,
        "ParentRef": REF,
        "FullyQualifiedName": STRING,
        "Active": BOOLEAN,
        "Classification": STRING,
        "AccountType": STRING,
        "AccountSubType": STRING,
        "Description": STRING,
        "AcctNum": STRING,
        "CurrentBalance": NUMBER,
        "CurrentBalanceWithSubAccounts": NUMBER,
        "CurrencyRef": REF,
        "TaxCodeRef": REF,
        "TxnLocationType": STRING,
    },
    "Invoice": {
        **_TRANSACTION,
        "CustomerRef": REF,
        "CustomerMemo": MEMO,
        "BillAddr": ADDRESS,
        "ShipAddr": ADDRESS,
        "ShipFromAddr": ADDRESS,
        "FreeFormAddress": BOOLEAN,
        "BillEmail": EMAIL,
        "BillEmailCc": EMAIL,
        "BillEmailBcc": EMAIL,
        "ClassRef": REF,
        "SalesTermRef": REF,
        "DueDate": DATE,
        "ShipDate": DATE,
        "ShipMethodRef": REF,
        "TrackingNum": STRING,
        "PrintStatus": STRING,
        "EmailStatus": STRING,
        "Balance": NUMBER,
        "HomeBalance": NUMBER,
        "Deposit": NUMBER,
        "DepositToAccountRef": REF,
        "ApplyTaxAfterDiscount": BOOLEAN,
        "AllowIPNPayment": BOOLEAN,
        "AllowOnlinePayment": BOOLEAN,
        "AllowOnlineCreditCardPayment": BOOLEAN,
        "AllowOnlineACHPayment": BOOLEAN,
        "InvoiceLink": STRING,
        "EInvoiceStatus": STRING,
        "DeliveryInfo": FREE,
        "RecurDataRef": REF,
        "TaxExemptionRef": REF,
    },
    "Payment": {
        **_TRANSACTION,
        "CustomerRef": REF,
        "ARAccountRef": REF,
        "DepositToAccountRef": REF,
        "PaymentMethodRef": REF,
        "PaymentRefNum": STRING,
        "UnappliedAmt": NUMBER,
        "ProcessPayment": BOOLEAN,
        "CreditCardPayment": FREE,
        "TxnStatus": STRING,
        "TaxExemptionRef": REF,
    },
    "Bill": {
        **_TRANSACTION,
        "VendorRef": REF,
        "VendorAddr": ADDRESS,
        "APAccountRef": REF,
        "SalesTermRef": REF,
        "DueDate": DATE,
        "Balance": NUMBER,
        "HomeBalance": NUMBER,
        "AttachableRef": FREE,
        "IncludeInAnnualTPAR": BOOLEAN,
    },
    "Purchase": {
        **_TRANSACTION,
        "PaymentType": STRING,
        "AccountRef": REF,
        "EntityRef": REF,
        "Credit": BOOLEAN,
        "PaymentMethodRef": REF,
        "RemitToAddr": ADDRESS,
        "PrintStatus": STRING,
        "PurchaseEx": FREE,
        "IncludeInAnnualTPAR": BOOLEAN,
    },
}


def check(entity: str, body: dict[str, Any]) -> None:
    """Refuse what QBO's deserializer refuses in a write body of `entity`."""
    _object(body, Shape(entity, ENTITY_FIELDS[entity]), entity)


def empty_as_absent(body: dict[str, Any], entity: str) -> None:
    """Drop top-level "" values of non-string properties: Jackson reads them as null."""
    fields = ENTITY_FIELDS[entity]
    for key in [k for k, v in body.items() if v == "" and fields.get(k) != STRING]:
        del body[key]


def _object(value: dict[str, Any], shape: Shape, path: str) -> None:
    if shape.free:
        return
    for key, item in value.items():
        kind = shape.fields.get(key)
        if kind is None:
            raise _unrecognized(key, shape.name, f"{path}.{key}")
        _value(item, kind, f"{path}.{key}")


def _value(value: Any, kind: Scalar | Shape | ListOf, path: str) -> None:
    if value is None:
        return
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            raise _wrong_kind(path, "java.util.ArrayList", _token(value))
        for item in value:
            _value(item, kind.item, path)
    elif isinstance(kind, Shape):
        if not isinstance(value, dict):
            raise _wrong_kind(path, f"{JAVA_PACKAGE}.{kind.name}", _token(value))
        _object(value, kind, path)
    else:
        _scalar(value, kind, path)


def _scalar(value: Any, kind: Scalar, path: str) -> None:
    if isinstance(value, dict | list):
        raise _wrong_kind(path, _java_type(kind), _token(value))
    if kind is BOOLEAN:
        if not isinstance(value, bool):
            raise _wrong_kind(path, "boolean", _token(value))
    elif kind is NUMBER:
        if isinstance(value, bool):
            raise _wrong_kind(path, "java.math.BigDecimal", _token(value))
        if isinstance(value, str) and value.strip():
            try:
                Decimal(value)
            except InvalidOperation as exc:
                raise invalid_property(
                    path.rsplit(".", 1)[-1],
                    f"Property Name:Can not construct instance of java.math.BigDecimal from "
                    f"String value '{value}': not a valid representation specified in request",
                ) from exc
    elif isinstance(value, bool):
        # Strings and dates take numbers (Jackson coerces them), never true/false.
        raise _wrong_kind(path, _java_type(kind), _token(value))


def _java_type(kind: Scalar) -> str:
    return {"string": "java.lang.String", "date": "java.util.Date"}.get(kind.kind, kind.kind)


def _token(value: Any) -> str:
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, str):
        return "VALUE_STRING"
    return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"


def _unrecognized(key: str, class_name: str, path: str) -> QboError:
    return invalid_property(
        path.split(".", 1)[-1],
        f'Property Name:Unrecognized field "{key}" (class {JAVA_PACKAGE}.{class_name}), '
        "not marked as ignorable specified in request",
    )


def _wrong_kind(path: str, java_type: str, token: str) -> QboError:
    return invalid_property(
        path.split(".", 1)[-1],
        f"Property Name:Can not deserialize instance of {java_type} out of {token} token "
        "specified in request",
    )
