"""The one builder of `quickbooks.connection.updated`, whatever changed the connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.models import Connection
from qbsync.notify import service as notify


def connection_updated(connection: Connection, **extra: Any) -> dict[str, Any]:
    """Status, company and realm as stored now, plus what this change adds (a reason, a warning)."""
    return {
        "status": connection.status.value,
        "realm_id": connection.realm_id,
        "company_name": connection.company_name,
        **extra,
    }


def tell_platform(session: AsyncSession, connection: Connection, **extra: Any) -> None:
    """Record the event in the writer's transaction; it is delivered after the commit."""
    notify.record(
        session,
        connection.org_id,
        "quickbooks.connection.updated",
        connection_updated(connection, **extra),
        entity_key=notify.CONNECTION_KEY,
    )
