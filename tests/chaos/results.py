"""The fault matrix's results: one row per case, written as JSON and as a markdown table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.common import RESULTS, machine


@dataclass(frozen=True)
class Row:
    case: str
    quality: str
    fault: str
    documents: int
    lost: int
    duplicates: int
    outcome: str
    seconds: float
    notes: str = ""


@dataclass
class Matrix:
    mode: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def write(self) -> None:
        # Only `make chaos` records its matrix: the short one runs in every `make test`, which
        # must leave the tree as it found it.
        if not self.rows or self.mode != "full":
            return
        json_path, md_path = RESULTS / "chaos.json", RESULTS / "chaos.md"
        RESULTS.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {
            "benchmark": "chaos",
            "mode": self.mode,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "cases": [asdict(row) for row in self.rows],
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        md_path.write_text(self.markdown(document["machine"], document["measured_at"]))

    def markdown(self, host: dict[str, Any], when: str) -> str:
        lines = [
            f"Fault matrix (`{self.mode}`), {when}, {host['nproc']} cores "
            f"({host['cpu_model']}), load {host['loadavg']}.",
            "",
            "| case | id | fault | documents | lost | duplicates | outcome | seconds |",
            "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |",
        ]
        for row in self.rows:
            fault = row.fault + (f" ({row.notes})" if row.notes else "")
            lines.append(
                f"| {row.case} | {row.quality} | {fault} | {row.documents} | {row.lost} | "
                f"{row.duplicates} | {row.outcome} | {row.seconds:.1f} |"
            )
        return "\n".join(lines) + "\n"
