"""The state file: companies, tokens, the clock and the signing key, kept across restarts.

One JSON file under the data folder, rewritten whole (a temporary file, then a rename, so a
crash leaves the previous version) a moment after changes stop. Money stays `Decimal`.
Webhook deliveries still queued, the webhook drop switch (and what it dropped), statistics
and injected faults are not kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
STATE_FILE = "simulator-state.json"
_DECIMAL = "$decimal"


def _encode_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {_DECIMAL: format(value, "f")}
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _decode_object(value: dict[str, Any]) -> Any:
    if len(value) == 1 and _DECIMAL in value:
        return Decimal(value[_DECIMAL])
    return value


def encode(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(
        {"format": FORMAT_VERSION, **snapshot}, default=_encode_default, separators=(",", ":")
    ).encode()


def decode(raw: bytes) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(raw, object_hook=_decode_object)
    if snapshot.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported simulator state format: {snapshot.get('format')!r}")
    return snapshot


@dataclass(frozen=True)
class StateFile:
    data_dir: Path

    @property
    def path(self) -> Path:
        return self.data_dir / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return decode(raw)

    def save(self, snapshot: dict[str, Any]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.data_dir, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(encode(snapshot))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class Saver:
    """Writes the state a short while after the last change, and once more when stopping."""

    def __init__(self, file: StateFile, snapshot: Any, delay: float) -> None:
        self._file = file
        self._snapshot = snapshot
        self._delay = delay
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="simulator-state-saver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._file.save(self._snapshot())

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self._delay)
            # Cleared before the snapshot: a change during the write schedules another one.
            self._changed.clear()
            self._file.save(self._snapshot())
