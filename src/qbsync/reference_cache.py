"""A short Redis cache of one company's reference lists (accounts, items, tax codes, customers…).

Intuit meters reads (P7), and the settings page, the mapping checks, the preview and the push all
need the same lists: each list is read from QuickBooks once (every page, inactive records
included) and kept for a few minutes, shared by every API replica and worker.

`drop()` forgets a list when it is known to have changed: a connect, a check that read QuickBooks
and found it disagreeing, and (with the webhook and CDC code to come) a change QuickBooks
reports. A drop bumps the list's generation, and a load that began before the drop is refused
when it comes to store what it read: a read that raced a change can't bring the stale list back
for the rest of its lifetime.

Concurrent misses on one list are single-flighted through a short Redis lock, so ten people
opening the settings page at once cost one read. If Redis is unreachable the list is read from
QuickBooks directly: slower and metered, but the page works.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from qbsync.qbo import QboEntity

E = TypeVar("E", bound=QboEntity)
log = structlog.get_logger(__name__)

FORMAT = "v1"
# Every list kept here: a connect forgets them all, and `References` refuses to cache another.
REFERENCE_ENTITIES = ("Account", "Item", "TaxCode", "TaxRate", "Customer", "Vendor", "Employee")
# A loader that died leaves its lock for at most this long.
LOCK_MS = 30_000
# How long a concurrent miss waits for another process's load before reading on its own.
WAIT_FOR_LOADER_SECONDS = 10.0
POLL_SECONDS = 0.05

# KEYS: data, generation. ARGV: generation read before the load, payload, ttl seconds.
_STORE_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""
# KEYS: lock. ARGV: token. Only the holder frees its lock.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ReferenceCache:
    def __init__(self, redis: Redis, *, key_prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._ttl = ttl_seconds
        self._store_if_current = redis.register_script(_STORE_IF_CURRENT)
        self._unlock = redis.register_script(_UNLOCK)

    async def load(
        self,
        realm_id: str,
        entity_type: type[E],
        fetch: Callable[[], Awaitable[Sequence[E]]],
    ) -> list[E]:
        """The cached list, or `fetch()`'s answer stored for the next caller.

        Redis failing at any step costs no more than the one read of `fetch()`: the list is
        then answered uncached.
        """
        if entity_type.entity_name not in REFERENCE_ENTITIES:
            raise ValueError(f"{entity_type.entity_name} is not a reference list")
        keys = _Keys(self._prefix, realm_id, entity_type.entity_name)
        locked = False
        token = secrets.token_hex(8)
        try:
            generation, cached = await self._read(keys, entity_type)
            if cached is not None:
                return cached
            locked = bool(await self._redis.set(keys.lock, token, nx=True, px=LOCK_MS))
            if not locked:
                waited = await self._wait_for_loader(keys, entity_type)
                if waited is not None:
                    return waited
        except RedisError as error:
            log.warning("reference_cache_unavailable", entity=keys.entity, error=repr(error))
            return list(await fetch())
        try:
            rows = list(await fetch())
            payload = json.dumps(
                [row.model_dump(mode="json", by_alias=True, exclude_unset=True) for row in rows],
                separators=(",", ":"),
            )
            # Stored before the lock goes: a waiter that sees no lock finds the list.
            await self._quietly(
                self._store_if_current(
                    keys=[keys.data, keys.generation], args=[generation, payload, self._ttl]
                ),
                keys,
            )
        finally:
            if locked:
                await self._quietly(self._unlock(keys=[keys.lock], args=[token]), keys)
        return rows

    async def peek(self, realm_id: str, entity_type: type[E]) -> list[E] | None:
        """The cached list if there is one; never reads QuickBooks."""
        keys = _Keys(self._prefix, realm_id, entity_type.entity_name)
        try:
            _, cached = await self._read(keys, entity_type)
        except RedisError as error:
            log.warning("reference_cache_unavailable", entity=keys.entity, error=repr(error))
            return None
        return cached

    async def drop(self, realm_id: str, entity_name: str) -> bool:
        """Forget one list of one company (QuickBooks reported a change to it).

        False when Redis could not be told: the list then lives out its few minutes.
        """
        keys = _Keys(self._prefix, realm_id, entity_name)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(keys.generation)
                pipe.delete(keys.data)
                await pipe.execute()
        except RedisError as error:
            log.warning("reference_cache_not_dropped", entity=entity_name, error=repr(error))
            return False
        return True

    async def drop_company(self, realm_id: str) -> None:
        """Forget every list of one company (it was just connected: start from what is there)."""
        for name in REFERENCE_ENTITIES:
            await self.drop(realm_id, name)

    async def _quietly(self, command: Awaitable[Any], keys: _Keys) -> None:
        try:
            await command
        except RedisError as error:
            log.warning("reference_cache_unavailable", entity=keys.entity, error=repr(error))

    async def _read(self, keys: _Keys, entity_type: type[E]) -> tuple[str, list[E] | None]:
        generation, data = await self._redis.mget(keys.generation, keys.data)
        text = _text(generation) or "0"
        if data is None:
            return text, None
        return text, _parse(entity_type, data)

    async def _wait_for_loader(self, keys: _Keys, entity_type: type[E]) -> list[E] | None:
        """Another process is reading this list from QuickBooks: use its answer when it lands."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_LOADER_SECONDS
        while loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            _, cached = await self._read(keys, entity_type)
            if cached is not None:
                return cached
            if not await self._redis.exists(keys.lock):
                return None  # the loader gave up (or its list was dropped): read it ourselves
        return None


class _Keys:
    def __init__(self, prefix: str, realm_id: str, entity_name: str) -> None:
        self.entity = entity_name
        # The format's version is in the key: a release that reads lists differently starts
        # with an empty cache instead of tripping over what the previous one stored.
        base = f"{prefix}:reference:{FORMAT}:{realm_id}:{entity_name}"
        self.data = base
        self.generation = f"{base}:generation"
        self.lock = f"{base}:lock"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(entity_type: type[E], data: Any) -> list[E] | None:
    """The stored list, or None (a miss) when it can't be read as this release reads it."""
    try:
        rows = json.loads(data)
        if not isinstance(rows, list):
            return None
        return [entity_type.model_validate(row) for row in rows]
    except (ValueError, ValidationError):
        log.warning("reference_cache_unreadable", entity=entity_type.entity_name)
        return None
