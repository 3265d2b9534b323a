"""Response bodies QuickBooks sends, from qbo-api-facts.md (§5, §6, §7) and Intuit's SDK tests."""

from __future__ import annotations

from typing import Any


def fault(code: str, message: str, detail: str = "", element: str = "") -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": element}],
            "type": "ValidationFault",
        },
        "time": "2017-09-29T09:17:31.892-07:00",
    }


DUPLICATE_NAME = fault(
    "6240",
    "Duplicate Name Exists Error",
    "The name supplied already exists. : Another customer is already using this name. "
    "Please use a different name.",
)
STALE_OBJECT = fault(
    "5010",
    "Stale Object Error",
    "Stale Object Error : You and Jane Doe were working on this at the same time. Jane Doe "
    "finished before you did, so your work was not saved.",
)
DUPLICATE_DOC_NUMBER = fault(
    "6140",
    "Duplicate Document Number Error",
    "Duplicate Document Number Error : You must specify a different number. This number has "
    "already been used. DocNumber=INV-1001 is assigned to TxnType=Invoice with TxnId=130",
)
# Intuit's 2017 blog labels the duplicate number 6210 as well.
DUPLICATE_DOC_NUMBER_AS_6210 = fault(
    "6210", "Duplicate Document Number Error", "This number has already been used."
)
CLOSED_PERIOD = fault(
    "6210",
    "Account Period Closed",
    "Account Period Closed, Cannot update : The account period has closed and the books are "
    "locked. To make changes, please use an older date.",
)
NOT_FOUND = fault(
    "610",
    "Object Not Found",
    "Object Not Found : Something you're trying to use has been made inactive. Check the fields "
    "with accounts, customers, items, vendors or employees.",
)
DUPLICATE_REQUEST = fault(
    "600", "Duplicate Request ID", "RequestId already exists. A duplicate request is detected."
)
REQUIRED_PARAM = fault(
    "2020",
    "Required param missing, need to supply the required value for the API",
    "Required parameter Line.SalesItemLineDetail.ItemRef is missing in the request",
    element="Line.SalesItemLineDetail.ItemRef",
)
SYSTEM_FAULT = {
    "Fault": {
        "Error": [
            {
                "Message": "An application error has occurred while processing your request",
                "Detail": "System Failure Error: Could not find resource for relative",
                "code": "10000",
            }
        ],
        "type": "SystemFault",
    }
}
APP_NOT_AUTHORISED = {
    "Fault": {
        "Error": [
            {
                "Message": "message=ApplicationAuthorizationFailed; errorCode=003100; "
                "statusCode=403",
                "Detail": "",
                "code": "3100",
            }
        ],
        "type": "SERVICE",
    }
}
USER_LOST_ACCESS = {
    "Fault": {
        "Error": [
            {
                "Message": "Authorization Failure",
                "Detail": "AuthorizationFailure: Please contact your Administrator.",
                "code": "120",
            }
        ],
        "type": "AuthorizationFault",
    }
}


def authentication_failed(token_fragment: str) -> dict[str, Any]:
    """The lower-case envelope of a 401, as captured in public code."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": f"Token expired: {token_fragment}",
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "requestId": None,
        "time": 1730024394085,
    }


THROTTLED_XML = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse time="2017-07-30T22:45:22.933-07:00" xmlns="http://schema.intuit.com/finance/v3">
  <Fault type="SERVICE"><Error code="3001">
    <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
    <Detail>The request limit was reached.  Try again later</Detail>
  </Error></Fault></IntuitResponse>"""
THROTTLED_JSON = {
    "Fault": {
        "Error": [
            {
                "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "Detail": "The request limit was reached.  Try again later",
                "code": "3001",
            }
        ],
        "type": "SERVICE",
    },
    "time": "2017-07-30T22:45:22.933-07:00",
}
THROTTLED_SIMPLE = {"Fault": {"Error": [{"Message": "Too Many Requests", "code": "429"}]}}
