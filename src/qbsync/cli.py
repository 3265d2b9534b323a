"""`qbsync serve | worker | dev | demo | migrate | openapi | token | rotate-keys | simulator`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from qbsync.connections.token_vault import RotationReport
from qbsync.crypto import Keyring
from qbsync.db import Database
from qbsync.demo import add_parser as add_demo_parser
from qbsync.main import create_app
from qbsync.runtime import ServiceUrls, migrate, services
from qbsync.security import mint_dev_token
from qbsync.settings import Settings, SettingsError, get_settings


def app_factory() -> FastAPI:
    """What `qbsync serve` hands uvicorn: URLs come from the environment `serve` prepared."""
    settings = get_settings()
    return create_app(
        settings,
        database_url=os.environ["QBSYNC_DATABASE__URL"],
        redis_url=os.environ["QBSYNC_REDIS__URL"],
    )


def _export(urls: ServiceUrls) -> None:
    os.environ["QBSYNC_DATABASE__URL"] = urls.database_url
    os.environ["QBSYNC_REDIS__URL"] = urls.redis_url
    get_settings.cache_clear()


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    with services(settings) as urls:
        _export(urls)
        uvicorn.run(
            "qbsync.cli:app_factory",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            proxy_headers=True,
            log_config=None,
            access_log=False,
        )
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from qbsync.worker import create_worker, run_through_redis_restarts

    settings = get_settings()
    with services(settings) as urls:
        make_worker = functools.partial(create_worker, settings, urls.database_url, urls.redis_url)
        # Ctrl-C / SIGTERM end the worker through arq's own handler; the unwinding is not an error.
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(run_through_redis_restarts(make_worker))
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    settings = get_settings()
    with services(settings) as urls:
        asyncio.run(migrate(urls.database_url))
    print("migrations applied")  # noqa: T201 - the command's answer
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    document = openapi_document()
    if args.output == "-":
        sys.stdout.write(document)
    else:
        Path(args.output).write_text(document)
    return 0


def openapi_document() -> str:
    app = create_app(Settings(env="dev"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def cmd_rotate_keys(_: argparse.Namespace) -> int:
    """Re-encrypt until no row is left under an old key; non-zero if any still is."""
    from qbsync.connections.token_vault import rotate_all

    settings = get_settings()
    keyring = Keyring.parse(settings.crypto.encryption_keys.get_secret_value())
    with services(settings) as urls:

        async def run() -> RotationReport:
            db = Database.connect(urls.database_url, settings.database)
            try:
                async with db.sessions() as session:
                    return await rotate_all(session, keyring)
            finally:
                await db.dispose()

        report = asyncio.run(run())
    print(f"re-encrypted {report.rotated} row(s) with key {keyring.primary_key_id!r}")  # noqa: T201
    if report.remaining:
        print(f"{len(report.remaining)} row(s) remain under an old key:", file=sys.stderr)  # noqa: T201
        for line in report.remaining:
            print(f"  {line}", file=sys.stderr)  # noqa: T201
        return 1
    print("0 rows remain under an old key")  # noqa: T201
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a platform JWT for one org and user: for dev and tests, never production."""
    settings = get_settings()
    if not settings.is_dev:
        print(  # noqa: T201
            "qbsync: `qbsync token` mints dev tokens only (QBSYNC_ENV=dev or test); in "
            "production the platform mints them",
            file=sys.stderr,
        )
        return 2
    try:
        token = mint_dev_token(
            settings.auth, org_id=args.org, user_id=args.user, minutes=args.minutes
        )
    except ValueError as error:
        print(f"qbsync: {error}", file=sys.stderr)  # noqa: T201
        return 2
    print(token)  # noqa: T201 - the command's answer
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """API, worker and (without Intuit credentials) the simulator, each its own process."""
    os.environ["QBSYNC_ENV"] = "dev"
    os.environ.setdefault("QBSYNC_LOG_JSON", "false")
    port = args.port or int(os.environ.get("QBSYNC_PORT", "8000"))
    os.environ["QBSYNC_PORT"] = str(port)
    os.environ.setdefault(
        "QBSYNC_INTUIT__REDIRECT_URI", f"http://127.0.0.1:{port}/v1/quickbooks/callback"
    )
    get_settings.cache_clear()
    settings = get_settings()
    with services(settings) as urls:
        _export(urls)
        asyncio.run(migrate(urls.database_url))
        commands = [
            [sys.executable, "-m", "qbsync.cli", "serve", "--port", str(port)],
            [sys.executable, "-m", "qbsync.cli", "worker"],
        ]
        if settings.uses_simulator:
            simulator_dir = str(settings.data_dir / "simulator")
            commands.append(
                [sys.executable, "-m", "qbsync.cli", "simulator", "--data-dir", simulator_dir]
            )
        # Every child reads QBSYNC_PORT, so the API and the worker agree on the dev defaults:
        # consent lands on the card page, outbound events go to its receiver.
        print(f"the QuickBooks card page: http://127.0.0.1:{port}/")  # noqa: T201
        return _supervise(commands, port)


def _supervise(commands: list[list[str]], port: int) -> int:
    children = [subprocess.Popen(command) for command in commands]  # noqa: S603
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"qbsync is starting on http://127.0.0.1:{port} (Ctrl-C stops everything)")  # noqa: T201
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return exit_code


def cmd_simulator(args: argparse.Namespace) -> int:
    from qbsync.simulator.server import serve
    from qbsync.simulator_launch import simulator_config

    # A test double needs none of qbsync's production secrets; it never runs in production mode.
    settings = Settings(env="dev")
    config = simulator_config(settings, data_dir=args.data_dir)
    asyncio.run(serve(config, args.host or "127.0.0.1", args.port or settings.simulator.port))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qbsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("worker", help="run an arq worker").set_defaults(handler=cmd_worker)

    dev = commands.add_parser("dev", help="API + worker (+ simulator) on the embedded default")
    dev.add_argument("--port", type=int)
    dev.set_defaults(handler=cmd_dev)

    add_demo_parser(commands)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=cmd_migrate
    )

    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="openapi/openapi.json")
    openapi.set_defaults(handler=cmd_openapi)

    token = commands.add_parser("token", help="print a dev JWT for an org (dev and test only)")
    token.add_argument("--org", required=True, help="the org id the token acts for")
    token.add_argument("--user", default="user_dev", help="the user id (`sub`)")
    token.add_argument("--minutes", type=int, default=60, help="how long the token is valid")
    token.set_defaults(handler=cmd_token)

    commands.add_parser(
        "rotate-keys", help="re-encrypt every stored token with the first configured key"
    ).set_defaults(handler=cmd_rotate_keys)

    simulator = commands.add_parser("simulator", help="run the QuickBooks Online simulator")
    simulator.add_argument("--host")
    simulator.add_argument("--port", type=int)
    simulator.add_argument(
        "--data-dir",
        type=Path,
        help="keep companies, tokens and documents in this folder across restarts "
        "(default: in memory only)",
    )
    simulator.set_defaults(handler=cmd_simulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except SettingsError as error:
        print(f"qbsync: {error}", file=sys.stderr)  # noqa: T201
        return 2
    except ValidationError as error:
        for problem in error.errors():
            print(f"qbsync: settings: {problem['msg']}", file=sys.stderr)  # noqa: T201
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
