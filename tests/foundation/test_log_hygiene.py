"""SQL parameters (tokens, ciphertexts, personal data) never reach an error message or a log."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from qbsync.db import Database
from qbsync.models import Connection, ConnectionStatus


async def test_a_failed_statement_does_not_show_its_parameters(database_url: str) -> None:
    db = Database.connect(database_url)
    marker = f"ciphertext-{uuid.uuid4().hex}"
    org_ids = [f"org_hp_{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        async with db.sessions() as session:
            for org_id in org_ids:
                session.add(
                    Connection(
                        id=uuid.uuid4(),
                        org_id=org_id,
                        realm_id="4620816365000000001",
                        status=ConnectionStatus.CONNECTED,
                        access_token=marker,
                    )
                )
            with pytest.raises(IntegrityError) as raised:
                await session.commit()
        text = f"{raised.value}\n{raised.value!r}"
        assert "uq_connections_realm_id_connected" in text
        assert marker not in text
        assert "hidden" in text
    finally:
        async with db.sessions() as session:
            await session.execute(delete(Connection).where(Connection.org_id.in_(org_ids)))
            await session.commit()
        await db.dispose()
