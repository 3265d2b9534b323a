"""What a person waiting on the settings page is told when a read from QuickBooks fails."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from qbsync.errors import AppError, ConflictError, ServiceUnavailableError
from qbsync.qbo import (
    InvalidGrantError,
    QboAuthenticationError,
    QboAuthorizationError,
    QboError,
    QboThrottledError,
    RateLimitBusyError,
    RateLimiterUnavailableError,
)


class QuickBooksRefusedError(AppError):
    status = 502
    code = "quickbooks_error"


@asynccontextmanager
async def quickbooks_errors() -> AsyncIterator[None]:
    """Turn a failed read into a problem answer; retryable failures say when to come back."""
    try:
        yield
    except InvalidGrantError as error:
        raise ConflictError(
            "QuickBooks no longer accepts our access (the sign-in expired or was revoked). "
            "Reconnect QuickBooks.",
            code="needs_reauth",
        ) from error
    except QboAuthenticationError as error:
        raise ConflictError(error.user_message, code="needs_reauth") from error
    except QboAuthorizationError as error:
        # The user who connected may have lost a permission, or the subscription lapsed:
        # reconnecting as the same user won't help, so it is not called needs_reauth.
        raise ConflictError(error.user_message, code="quickbooks_access_denied") from error
    except RateLimiterUnavailableError as error:
        raise ServiceUnavailableError(
            "qbsync's queue service (Redis) is unavailable, so QuickBooks can't be called "
            "within its limits. Try again in a minute.",
            code="service_unavailable",
            headers={"Retry-After": "5"},
        ) from error
    except (QboThrottledError, RateLimitBusyError) as error:
        wait = error.wait_seconds if isinstance(error, QboThrottledError) else 30.0
        raise ServiceUnavailableError(
            "QuickBooks is limiting requests for this company right now; try again in a minute.",
            code="quickbooks_busy",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        ) from error
    except QboError as error:
        if error.retryable:
            raise ServiceUnavailableError(
                "QuickBooks did not answer properly. Try again in a minute.",
                code="quickbooks_unavailable",
                headers={"Retry-After": "30"},
            ) from error
        raise QuickBooksRefusedError(error.user_message) from error
