"""What a record's push amounts to once its dependencies are in QuickBooks: one write, or
nothing to write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from qbsync.qbo import QboEntity, QboError
from qbsync.sync.failures import PushFailedError

Operation = Literal["create", "update", "void", "delete"]
Warning = dict[str, Any]


@dataclass
class Write:
    operation: Operation
    # The payload for create and update; for void and delete only its type, Id and SyncToken.
    entity: QboEntity
    # Names the document in messages: 'Invoice "INV-1"'.
    what: str
    # Findings once QuickBooks answered with the document (e.g. its total differs).
    check: Callable[[QboEntity], list[Warning]] | None = None
    # Finds the document an earlier create of this record may have made (R3): asked only when
    # that create's outcome is unknown.
    lookup: Callable[[], Awaitable[QboEntity | None]] | None = None
    # The document as QuickBooks holds it now, for a second try after a stale SyncToken (5010).
    reread: Callable[[], Awaitable[QboEntity]] | None = None
    # A create refused as a duplicate number that is not this record's own document: the
    # failure naming the holder.
    duplicate: Callable[[QboError], Awaitable[PushFailedError]] | None = None


@dataclass
class Done:
    """Nothing to send: QuickBooks already holds this version (or never held a deleted one)."""

    qbo_id: str | None
    doc_number: str | None = None
    sync_token: str | None = None
    warnings: list[Warning] = field(default_factory=list)


Plan = Write | Done
