"""How a push ends when it does not end `synced`: a failure a person must act on, a record the
settings leave out, or a wait (QuickBooks busy, a dependency not in QuickBooks yet)."""

from __future__ import annotations

from typing import Any

from qbsync.qbo import (
    QboAuthorizationError,
    QboClosedPeriodError,
    QboDuplicateDocNumberError,
    QboError,
    QboNotFoundError,
    QboStaleObjectError,
    QboValidationError,
)

# When QuickBooks gives no wait, a throttled or failing company is tried again after this long.
DEFAULT_WAIT_SECONDS = 60.0


class PushFailedError(Exception):
    """The record cannot go to QuickBooks as it is: `failed`, with what to do about it."""

    def __init__(self, code: str, message: str, *, fault: QboError | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fault = fault

    def as_error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "fault": fault_view(self.fault),
            "intuit_tid": self.fault.intuit_tid if self.fault else None,
        }


class NotPushedError(Exception):
    """The settings keep this record out of QuickBooks (`not_pushed`); a retry pushes it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PushDeferredError(Exception):
    """Try again later: QuickBooks is busy or failing, or the record waits for another one."""

    def __init__(self, code: str, message: str, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.wait_seconds = wait_seconds


def fault_view(error: QboError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "code": error.code,
        "element": error.element,
        "type": error.fault_type,
        "message": error.message,
        "detail": error.detail,
    }


def failure_for(error: QboError, what: str) -> PushFailedError:
    """QuickBooks refused a write for good: the code and a message a person can act on."""
    if isinstance(error, QboDuplicateDocNumberError):
        return PushFailedError("duplicate_doc_number", error.user_message, fault=error)
    if isinstance(error, QboClosedPeriodError):
        return PushFailedError("closed_period", error.user_message, fault=error)
    if isinstance(error, QboNotFoundError):
        return PushFailedError(
            "quickbooks_reference_not_found",
            f"{what}: {error.user_message} Check the mappings and settings it uses.",
            fault=error,
        )
    if isinstance(error, QboAuthorizationError):
        return PushFailedError(
            "quickbooks_access_denied",
            f"{what}: QuickBooks refused access; the user who connected it may have lost "
            "admin rights. Reconnect QuickBooks as an admin.",
            fault=error,
        )
    if isinstance(error, QboStaleObjectError):
        return PushFailedError(
            "quickbooks_conflict",
            f"{what}: it was changed in QuickBooks at the same moment twice in a row; retry it.",
            fault=error,
        )
    if isinstance(error, QboValidationError):
        return PushFailedError(
            "quickbooks_validation", f"{what}: {error.user_message}", fault=error
        )
    return PushFailedError("quickbooks_error", f"{what}: {error.user_message}", fault=error)
