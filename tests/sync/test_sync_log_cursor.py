"""The sync log never answers 500, whatever cursor it is given."""

from __future__ import annotations

import uuid

from qbsync.mappings.references import encode_cursor
from tests.mappings.conftest import Org, org, settings, uk, us

__all__ = ["org", "settings", "uk", "us"]


async def test_a_cursor_with_an_extreme_offset_is_refused_not_a_500(us: Org) -> None:
    """Year 1 at +14:00 falls before 0001-01-01 UTC and year 9999 at -14:00 after 9999-12-31
    UTC, which Postgres can't hold: 422 `invalid_cursor`, not a 500."""
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        cursor = encode_cursor((moment, str(uuid.uuid4())))
        response = await us.get("sync/records", cursor=cursor)
        assert response.status_code == 422, (moment, response.status_code, response.text[:300])
