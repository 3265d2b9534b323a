"""What a QuickBooks company id (realm id) looks like: the one rule every part of qbsync checks."""

from __future__ import annotations

import re

# Intuit's realm ids are decimal digits (16 to 19 of them today); 32 leaves room and fits the
# columns that store them.
REALM_ID_MAX_LENGTH = 32
_REALM_ID = re.compile(rf"^[0-9]{{1,{REALM_ID_MAX_LENGTH}}}$")


def is_realm_id(value: str | None) -> bool:
    return value is not None and _REALM_ID.fullmatch(value) is not None
