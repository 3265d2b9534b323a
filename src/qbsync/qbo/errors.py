"""One error hierarchy for everything QuickBooks (and its token endpoint) can answer.

`retryable` means: running the same job again later, unchanged, may succeed. The sync layer
defers retryable failures and marks the others `failed` with `user_message`.

Nothing here may carry a token: every message and detail passes through `redact` (a 401 detail
reads "Token expired: <the token>"), and the HTTP layer scrubs the exact token it sent as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

# Intuit's guidance after a 429 that came without a Retry-After header.
INTUIT_THROTTLE_WAIT_SECONDS = 60.0

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"),
    # "Token expired: AB01…", "refresh_token=…", "\"access_token\": \"…\""
    re.compile(r"(?i)(token[\"']?[^:=\n]{0,20}[:=]\s*[\"']?)[^\s,;\"'}]+"),
    # JWT/JWE-shaped strings (Intuit's access tokens), every dot-separated part.
    re.compile(r"()eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)+"),
)
# Long opaque letter-and-digit runs: refresh tokens ("AB11…"), secrets. Without "-", "/" and ".",
# so UUIDs, request ids and URL paths in Intuit's messages stay readable. Matched as whole runs
# and checked for a digit and a letter afterwards: lookaheads at every boundary made a long
# "a+a+a+…" take quadratic time.
_OPAQUE_RUN = re.compile(r"(?<![A-Za-z0-9_+])[A-Za-z0-9_+]{32,}=*")
# Intuit's messages are short; a huge one is cut so redacting it stays cheap.
MAX_TEXT_LENGTH = 2000


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    if len(text) > MAX_TEXT_LENGTH:
        text = text[:MAX_TEXT_LENGTH] + "…"
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return _OPAQUE_RUN.sub(_opaque, text)


def _opaque(match: re.Match[str]) -> str:
    run = match.group(0)
    looks_secret = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
    return REDACTED if looks_secret else run


@dataclass(frozen=True)
class FaultItem:
    """One entry of a Fault's `Error` array (already redacted)."""

    code: str | None
    message: str
    detail: str | None = None
    element: str | None = None


class QboError(Exception):
    retryable: bool = False
    _user_message: ClassVar[str] = "QuickBooks refused the request."

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        element: str | None = None,
        detail: str | None = None,
        status_code: int | None = None,
        intuit_tid: str | None = None,
        fault_type: str | None = None,
        errors: tuple[FaultItem, ...] = (),
        retry_after: float | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.detail = redact(detail, secrets) if detail else None
        self.code = code
        self.element = element or None
        self.status_code = status_code
        self.intuit_tid = intuit_tid
        self.fault_type = fault_type
        self.errors = errors
        # Seconds from a Retry-After header, when Intuit sent one.
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def user_message(self) -> str:
        return self._user_message

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail and self.detail != self.message:
            parts.append(self.detail)
        context = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("code", self.code),
                ("element", self.element),
                ("status", self.status_code),
                ("intuit_tid", self.intuit_tid),
            )
            if value is not None
        )
        text = " — ".join(parts)
        return f"{text} ({context})" if context else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status_code={self.status_code!r}, "
            f"message={self.message!r}, element={self.element!r}, intuit_tid={self.intuit_tid!r})"
        )

    def _with_detail(self, lead: str) -> str:
        """`lead` plus Intuit's own explanation, which usually names the offending value."""
        extra = self.detail or (self.message if self.message != lead else None)
        return f"{lead} QuickBooks said: {extra}" if extra else lead


class QboAuthenticationError(QboError):
    """401 / 3200 even after one forced token refresh."""

    _user_message = (
        "QuickBooks did not accept the stored sign-in. Reconnect QuickBooks from the integration "
        "settings."
    )


class QboAuthorizationError(QboError):
    """3100 (app not authorised for this company or environment) or 120 (user lost admin)."""

    _user_message = (
        "QuickBooks refused access to this company: the connecting user may have lost admin "
        "rights or the app is not authorised for it. Ask a QuickBooks admin to reconnect."
    )


class QboThrottledError(QboError):
    retryable = True
    _user_message = "QuickBooks is limiting requests for this company; the sync retries on its own."

    @property
    def wait_seconds(self) -> float:
        """How long to wait before the next try: Retry-After, else Intuit's 60 s guidance."""
        return self.retry_after if self.retry_after is not None else INTUIT_THROTTLE_WAIT_SECONDS


class QboStaleObjectError(QboError):
    """5010: our SyncToken is old. Retryable because the job re-reads before it writes again."""

    retryable = True
    _user_message = (
        "The record changed in QuickBooks while we were updating it; the sync re-reads it and "
        "tries again."
    )


class QboDuplicateNameError(QboError):
    """6240: DisplayName/Name is taken (unique across Customer, Vendor and Employee)."""

    @property
    def user_message(self) -> str:
        return self._with_detail(
            "A customer, vendor or employee with this name already exists in QuickBooks. Link "
            "the existing record in the mappings, or rename one of them."
        )


class QboDuplicateDocNumberError(QboError):
    """6140 (or 6210 whose text says duplicate document number: Intuit's pages disagree)."""

    @property
    def user_message(self) -> str:
        return self._with_detail(
            "A document with this number already exists in QuickBooks. Check whether it is the "
            "same document, or change the number."
        )


class QboClosedPeriodError(QboError):
    """6210 "Account Period Closed": the books are closed for the transaction date."""

    @property
    def user_message(self) -> str:
        return self._with_detail(
            "The books are closed in QuickBooks for this transaction date. Change the closing "
            "date in QuickBooks (Settings > Account and settings > Advanced) or the date of the "
            "document, then retry."
        )


class QboValidationError(QboError):
    """Any other business or validation fault (codes 2000 to 6999, unsupported operation, …)."""

    @property
    def user_message(self) -> str:
        subject = f"the field {self.element}" if self.element else "the data"
        return self._with_detail(f"QuickBooks rejected {subject}: {self.message}.")


class QboNotFoundError(QboError):
    """610: the object (or one it references) does not exist, was deleted or is inactive."""

    @property
    def user_message(self) -> str:
        return self._with_detail(
            "A record this needs does not exist in QuickBooks any more (deleted or made "
            "inactive). Check the mappings."
        )


class QboDuplicateRequestError(QboError):
    """600: this requestid was already used; the caller looks up what the first call made."""

    _user_message = "QuickBooks already processed this request; the sync looks up its result."


class QboServerError(QboError):
    """5xx, a fault code ≥ 10000, or a response that is not what QuickBooks sends."""

    retryable = True
    _user_message = "QuickBooks is having a problem right now; the sync retries on its own."


class QboNetworkError(QboError):
    """Timeout, refused or reset connection: the request may or may not have been applied."""

    retryable = True
    _user_message = "Could not reach QuickBooks; the sync retries on its own."


class RateLimiterUnavailableError(QboError):
    """Redis (which holds the shared per-company limits) could not be reached."""

    retryable = True
    _user_message = "The sync is briefly unavailable; it retries on its own."


class RateLimitBusyError(QboError):
    """The company's shared limits stayed full for longer than the caller would wait.

    Nothing was sent to Intuit. Retryable: the other work holding the limits finishes.
    """

    retryable = True
    _user_message = (
        "QuickBooks is busy with this company's other syncing work; try again in a minute."
    )

    def __init__(self, message: str, *, frees_in_seconds: float | None = None) -> None:
        super().__init__(message, code="company_busy")
        # When the limits' window frees a slot, as the limiter knows it; None when the calls
        # in flight are what is full (they end whenever Intuit answers).
        self.frees_in_seconds = frees_in_seconds


class TokenError(QboError):
    """Base for the OAuth token and revoke endpoints."""


class InvalidGrantError(TokenError):
    """The refresh token (or code) is expired, revoked or replaced. Never retry it as is.

    The caller re-reads the stored token first: another worker may have rotated it.
    """

    _user_message = "The QuickBooks connection has expired or was revoked. Reconnect QuickBooks."


class InvalidClientError(TokenError):
    _user_message = (
        "QuickBooks rejected this app's credentials. An operator must check the Intuit client "
        "id and secret."
    )


class TokenEndpointUnavailableError(TokenError):
    """5xx, timeout or network error at the token endpoint. Never a reason to drop a connection."""

    retryable = True
    _user_message = "QuickBooks sign-in is briefly unavailable; the sync retries on its own."


class TokenRequestError(TokenError):
    """Any other refusal from the token or revoke endpoint (invalid_request, invalid_scope, …)."""

    _user_message = "QuickBooks refused the sign-in request. Try connecting again."
