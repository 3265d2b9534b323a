"""Intuit's fault envelopes and the validation faults the simulator raises."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.simulator.jsonio import JsonObject


@dataclass(frozen=True)
class ErrorItem:
    code: str
    message: str
    detail: str = ""
    element: str = ""

    def as_json(self) -> JsonObject:
        return {
            "Message": self.message,
            "Detail": self.detail,
            "code": self.code,
            "element": self.element,
        }


@dataclass
class QboError(Exception):
    """A request Intuit refuses; raised anywhere, rendered once as `{"Fault": ...}`."""

    errors: list[ErrorItem]
    fault_type: str = "ValidationFault"
    status_code: int = 400

    def fault_json(self) -> JsonObject:
        return {"Error": [error.as_json() for error in self.errors], "type": self.fault_type}


def fault(
    code: str,
    message: str,
    detail: str = "",
    element: str = "",
    *,
    fault_type: str = "ValidationFault",
    status_code: int = 400,
) -> QboError:
    return QboError([ErrorItem(code, message, detail, element)], fault_type, status_code)


def required(element: str) -> QboError:
    return fault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def invalid_property(element: str, detail: str) -> QboError:
    return fault("2010", "Request has invalid or unsupported property", detail, element)


def invalid_enum(element: str, value: object) -> QboError:
    return fault("2170", "Invalid Enumeration", f"Invalid Enum {value}: {element}", element)


def invalid_reference(element: str, value: object) -> QboError:
    return fault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {element} ({value}) does not exist",
        element,
    )


def inactive_reference(element: str) -> QboError:
    return fault(
        "610",
        "Object Not Found",
        "Something you're trying to use has been made inactive. Check the fields with "
        "accounts, customers, items, vendors or employees.",
        element,
    )


def object_not_found(entity: str, object_id: str) -> QboError:
    return fault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive or deleted: "
        f"{entity} {object_id}",
    )


def stale_object(entity: str) -> QboError:
    return fault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and simulator-user were working on this {entity} at the same "
        "time. simulator-user finished before you did, so your work was not saved.",
    )


def duplicate_name(kind: str) -> QboError:
    return fault(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Another {kind} is already using this name. "
        "Please use a different name.",
    )


def duplicate_doc_number(doc_number: str) -> QboError:
    return fault(
        "6140",
        "Duplicate Doc Num",
        f"Duplicate Document Number Error : You must specify a different number. "
        f"This number has already been used. DocNumber={doc_number}",
        "DocNumber",
    )


def duplicate_request_id(requestid: str) -> QboError:
    return fault(
        "600",
        "Duplicate Request ID",
        f"RequestId already exists, a duplicate request is detected: requestid {requestid} was "
        "used for a different request.",
        "requestid",
    )


def account_period_closed(close_date: str) -> QboError:
    """Intuit's wording for a write dated in a closed period, naming the closing date."""
    return fault(
        "6210",
        "Account Period Closed",
        f"The account period has closed. The books are closed through {close_date}, and the "
        "account books cannot be updated through the QBO Services API. Please use the QBO "
        "website to make these changes.",
        "TxnDate",
    )


def business_rule(detail: str, element: str = "") -> QboError:
    return fault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def unsupported(detail: str) -> QboError:
    return fault("500", "Unsupported Operation", detail)


def query_parse_error(detail: str) -> QboError:
    return fault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QboError:
    return fault("4001", "Invalid query", f"QueryValidationError: {detail}")


def system_error(status_code: int) -> QboError:
    return fault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data.",
        fault_type="SystemFault",
        status_code=status_code,
    )


def authentication_failed_body(detail: str, epoch_millis: int) -> JsonObject:
    """The lower-case envelope Intuit's gateway sends with a 401."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
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
        "time": epoch_millis,
    }


def authorization_failed() -> QboError:
    return fault(
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        "The application is not authorised for this company.",
        fault_type="SERVICE",
        status_code=403,
    )
