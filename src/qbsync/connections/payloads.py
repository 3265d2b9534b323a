"""The one shape of `quickbooks.connection.updated`, whatever changed the connection."""

from __future__ import annotations

from typing import Any

from qbsync.models import Connection


def connection_updated(connection: Connection, **extra: Any) -> dict[str, Any]:
    """Status, company and realm as stored now, plus what this change adds (a reason, a warning)."""
    return {
        "status": connection.status.value,
        "realm_id": connection.realm_id,
        "company_name": connection.company_name,
        **extra,
    }
