"""Names as QuickBooks takes them. The preview shows the names the push will create, and the push
(the sync engine) creates them with these same rules."""

from __future__ import annotations

import re

ITEM_NAME_LENGTH = 100
DISPLAY_NAME_LENGTH = 500
_FORBIDDEN = re.compile(r"[\t\r\n]+")


def quickbooks_name(name: str, limit: int) -> str:
    """`name` as QuickBooks can hold it: no colon (it separates a parent from its child), no tab
    or line break, and at most `limit` characters."""
    cleaned = _FORBIDDEN.sub(" ", name).replace(":", " -").strip()
    return " ".join(cleaned.split())[:limit].rstrip()


def name_key(name: str) -> str:
    """How QuickBooks tells two names or numbers apart: by their characters, in any case."""
    return name.strip().casefold()
