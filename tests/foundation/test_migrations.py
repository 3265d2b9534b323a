"""The migrations are the schema: up to head, down to base and up again on a real database."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from qbsync import migrations
from qbsync.embedded import EmbeddedServices, drop_database, ensure_database
from qbsync.models import Base
from tests.conftest import database_url_for

CORE_TABLES = {
    "connections",
    "oauth_states",
    "sync_settings",
    "entity_mappings",
    "sync_records",
    "platform_events",
    "qbo_webhook_events",
    "outbound_events",
    "cdc_watermarks",
}


async def test_upgrade_downgrade_upgrade(embedded: EmbeddedServices) -> None:
    url = database_url_for(embedded, f"qbsync_migrations_{uuid.uuid4().hex[:8]}")
    await ensure_database(url)
    engine = create_async_engine(url)
    try:
        await migrations.upgrade(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            assert tables >= CORE_TABLES
            unique = await connection.run_sync(
                lambda sync: {
                    constraint["name"]
                    for constraint in inspect(sync).get_unique_constraints("entity_mappings")
                }
            )
            assert "uq_entity_mappings_org_id_realm_id_kind_platform_id" in unique

        await migrations.downgrade(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            assert tables <= {"alembic_version"}

        await migrations.upgrade(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            assert tables >= CORE_TABLES
    finally:
        await engine.dispose()
        await drop_database(url)


async def test_the_models_match_the_migrations(database_url: str) -> None:
    """A model change without a migration fails here, not in production."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []
