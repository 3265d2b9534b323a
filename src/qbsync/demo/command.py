"""The `qbsync demo` command: its arguments, and the run from first step to cleanup."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from contextlib import ExitStack
from types import FrameType
from typing import Any

from rich.console import Console

from qbsync.demo.display import Display, StepFailedError
from qbsync.demo.scenario import Demo
from qbsync.demo.stack import running_stack


class StoppedError(KeyboardInterrupt):
    """SIGTERM: unwind as Ctrl-C does (no step takes it for a failure), so every child is
    stopped."""


def add_parser(commands: Any) -> None:
    """Adds `demo` to `qbsync`'s subcommands (an argparse `_SubParsersAction`)."""
    demo = commands.add_parser(
        "demo",
        help="a guided run: connect, map, preview, push, and a payment coming back",
    )
    demo.add_argument("--port", type=_port, help="the API's port (default: a free one)")
    demo.add_argument(
        "--quiet", action="store_true", help="only the ✓/✗ line of each step, no tables"
    )
    demo.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the scratch folder (each process's log and the simulator's state)",
    )
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    display = Display(total_steps=len(Demo.TITLES), quiet=args.quiet, console=console)
    signal.signal(signal.SIGTERM, _raise_stopped)
    started = time.monotonic()
    try:
        with ExitStack() as cleanup:
            stack = cleanup.enter_context(running_stack(args.port, keep=args.keep_data))
            if args.keep_data:
                console.print(f"scratch folder (kept): {stack.scratch}")
            with display.running():
                Demo(stack, display, cleanup).run()
    except StepFailedError as failure:
        step = display.failed_step
        where = f"step {step.number} ({step.title})" if step else "setup"
        print(f"qbsync demo: failed at {where}: {failure}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        print("qbsync demo: stopped; every process it started is stopped", file=sys.stderr)  # noqa: T201
        return 130
    console.print(
        f"[bold green]demo complete[/] in {time.monotonic() - started:.1f} s: "
        f"{len(Demo.TITLES)} steps checked; every process it started is stopped"
    )
    return 0


def _port(text: str) -> int:
    """A TCP port, refused by argparse (exit code 2, the reason on stderr) before any process
    starts."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return port


def _raise_stopped(_signal: int, _frame: FrameType | None) -> None:
    raise StoppedError
