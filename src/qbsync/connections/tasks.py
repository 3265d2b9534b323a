"""Token upkeep cron: keep refresh tokens rolling, warn ahead of Intuit's hard expiry."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import or_, select

from qbsync.connections import grants
from qbsync.connections.payloads import tell_platform
from qbsync.connections.tokens import ConnectionTokens, ConnectionUnusableError
from qbsync.context import WorkerContext
from qbsync.models import Connection, ConnectionStatus
from qbsync.models.base import utcnow
from qbsync.qbo import InvalidGrantError, TokenError
from qbsync.queue import unit_of_work

# Intuit's idle window is ~100 days; rolling it a month ahead leaves room for long outages.
IDLE_REFRESH_MARGIN = timedelta(days=30)
HARD_EXPIRY_NOTICE = timedelta(days=30)
log = structlog.get_logger(__name__)


async def refresh_expiring_tokens(ctx: WorkerContext) -> int:
    """Refresh every connected company whose refresh token nears its idle expiry."""
    now = utcnow()
    async with ctx["db"].sessions() as session:
        due = list(
            await session.scalars(
                select(Connection.id).where(
                    Connection.status == ConnectionStatus.CONNECTED,
                    or_(
                        Connection.refresh_expires_at.is_(None),
                        Connection.refresh_expires_at < now + IDLE_REFRESH_MARGIN,
                    ),
                )
            )
        )
    refreshed = 0
    for connection_id in due:
        tokens = ConnectionTokens(ctx["db"], ctx["intuit"], connection_id, ctx["queue"])
        try:
            await tokens.refresh_now(unless_refreshed_after=now - timedelta(hours=1))
            refreshed += 1
        except (InvalidGrantError, ConnectionUnusableError):
            continue
        except TokenError as error:
            # Intuit's token endpoint is down: try again next run; the connection stays usable.
            log.warning(
                "token_upkeep_deferred",
                connection_id=str(connection_id),
                error=type(error).__name__,
            )
    await _warn_hard_expiry(ctx)
    return refreshed


async def _warn_hard_expiry(ctx: WorkerContext) -> None:
    now = utcnow()
    async with unit_of_work(ctx["db"], ctx["queue"]) as session:
        soon = await session.scalars(
            select(Connection)
            .where(
                Connection.status == ConnectionStatus.CONNECTED,
                Connection.refresh_hard_expires_at < now + HARD_EXPIRY_NOTICE,
                Connection.hard_expiry_warned_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        )
        for connection in soon:
            connection.hard_expiry_warned_at = now
            hard = connection.refresh_hard_expires_at
            tell_platform(
                session,
                connection,
                warning="reconnect_required_soon",
                refresh_hard_expires_at=hard.isoformat() if hard else None,
            )


async def expire_pending_grants(ctx: WorkerContext) -> int:
    """Cron: consents nobody confirmed within 10 minutes are withdrawn and forgotten (S9)."""
    return await grants.expire_pending_grants(ctx["db"], ctx["queue"], ctx["intuit"])


async def retry_revocations(ctx: WorkerContext) -> int:
    """Cron: revokes Intuit could not take at the time, retried with backoff for a week."""
    return await grants.retry_revocations(ctx["db"], ctx["queue"], ctx["intuit"])
