"""What every job receives: clients created once per worker process, never per job."""

from __future__ import annotations

from typing import TypedDict

import httpx
from arq.connections import ArqRedis

from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.queue import JobQueue
from qbsync.settings import Settings


class WorkerContext(TypedDict):
    settings: Settings
    db: Database
    queue: JobQueue
    http: httpx.AsyncClient
    redis: ArqRedis
    intuit: IntuitAccess
