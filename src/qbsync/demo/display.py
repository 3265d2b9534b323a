"""How the demo shows itself: a live progress line per step, then a ✓ or ✗ line of what was
checked. Without a terminal (or with --quiet) nothing animates, so a log stays readable."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


class StepFailedError(Exception):
    """A check of the current step did not hold; the message says what was seen."""


@dataclass
class Step:
    """The step being run: its title, and what it has checked so far."""

    number: int
    title: str
    display: Display
    checked: list[str] = field(default_factory=list)
    # Printed under the step's ✓/✗ line, so a log reads line first, details after.
    tables: list[Table] = field(default_factory=list)

    def check(self, what: str) -> None:
        self.checked.append(what)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Details of what the step found; left out with --quiet."""
        if self.display.quiet:
            return
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        self.tables.append(table)

    def waiting(self, description: str, *, done: int = 0, total: int | None = None) -> None:
        """What the step waits for now (shown live on a terminal only)."""
        self.display.progress_to(description, done, total)


@dataclass
class Display:
    total_steps: int
    quiet: bool = False
    console: Console = field(default_factory=Console)
    failed_step: Step | None = None
    _progress: Progress | None = None
    _overall: TaskID | None = None
    _current: TaskID | None = None
    _number: int = 0

    @property
    def live(self) -> bool:
        return self.console.is_terminal and not self.quiet

    @contextmanager
    def running(self) -> Iterator[Display]:
        if not self.live:
            yield self
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with progress:
            self._progress = progress
            self._overall = progress.add_task("demo", total=self.total_steps)
            self._current = progress.add_task("", total=None)
            try:
                yield self
            finally:
                self._progress = None

    @contextmanager
    def step(self, title: str) -> Iterator[Step]:
        self._number += 1
        step = Step(self._number, title, self)
        self.progress_to(title, 0, None)
        if self._progress is not None and self._overall is not None:
            self._progress.update(
                self._overall, description=f"step {step.number}/{self.total_steps}: {title}"
            )
        started = time.monotonic()
        try:
            yield step
        except StepFailedError as failure:
            self._failed(step, str(failure))
            raise
        except Exception as error:
            # An answer of a shape the demo did not expect still names the step it broke.
            message = f"unexpected {type(error).__name__}: {error}"
            self._failed(step, message)
            raise StepFailedError(message) from error
        checked = escape("; ".join(step.checked) or "done")
        took = time.monotonic() - started
        self.console.print(
            f"[bold green]✓[/] {step.number:>2}. {title} — {checked} [dim]({took:.1f} s)[/]",
            soft_wrap=not self.console.is_terminal,
        )
        self._print_tables(step)
        if self._progress is not None and self._overall is not None:
            self._progress.advance(self._overall)

    def progress_to(self, description: str, done: int, total: int | None) -> None:
        if self._progress is not None and self._current is not None:
            self._progress.update(self._current, description=description, completed=done)
            self._progress.update(self._current, total=total)

    def _failed(self, step: Step, message: str) -> None:
        self.failed_step = step
        self.console.print(
            f"[bold red]✗[/] {step.number:>2}. {step.title}: {escape(message)}",
            soft_wrap=not self.console.is_terminal,
        )
        self._print_tables(step)

    def _print_tables(self, step: Step) -> None:
        for table in step.tables:
            self.console.print(table)
