"""Short dependency aliases for routers: the request's unit of work, the settings, the queue, and
the shared clients of routes that call Intuit.

Each is `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop per
dependency per request for what is only an attribute read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from qbsync.connections.intuit import IntuitAccess
from qbsync.db import Database
from qbsync.errors import database_problem
from qbsync.queue import JobQueue, unit_of_work
from qbsync.reference_cache import ReferenceCache
from qbsync.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response leaves (R1)."""
    db: Database = request.app.state.db
    try:
        queue: JobQueue = request.app.state.queue
        async with unit_of_work(db, queue) as session:
            yield session
    except Exception as error:
        mapped = database_problem(error)
        if mapped is None:
            raise
        raise mapped from error


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


async def get_db(request: Request) -> Database:
    """For routes that call Intuit: they open short sessions of their own (R13)."""
    db: Database = request.app.state.db
    return db


async def get_intuit(request: Request) -> IntuitAccess:
    intuit: IntuitAccess = request.app.state.intuit
    return intuit


async def get_reference_cache(request: Request) -> ReferenceCache:
    cache: ReferenceCache = request.app.state.reference_cache
    return cache


DatabaseDep = Annotated[Database, Depends(get_db)]
IntuitDep = Annotated[IntuitAccess, Depends(get_intuit)]
ReferenceCacheDep = Annotated[ReferenceCache, Depends(get_reference_cache)]
