"""`python -m bench._serve bare|qbsync --port N`: one of P1's two servers, with the same uvicorn
settings as `qbsync serve` (one process, no access log, proxy headers)."""

from __future__ import annotations

import argparse
import cProfile
import os
import signal
import sys

import uvicorn
from fastapi import FastAPI, Response

from qbsync.main import create_app
from qbsync.settings import Settings


def bare_app() -> FastAPI:
    """The baseline: a FastAPI endpoint on the same path that only answers 202."""
    app = FastAPI()

    @app.post("/v1/events", status_code=202)
    async def receive_events() -> Response:
        return Response(b'{"accepted":1,"duplicates":0}', 202, media_type="application/json")

    @app.get("/healthz")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


def qbsync_app() -> FastAPI:
    """qbsync's own app, as `qbsync serve` builds it (settings from the QBSYNC_ environment)."""
    return create_app(
        Settings(),
        database_url=os.environ["QBSYNC_DATABASE__URL"],
        redis_url=os.environ["QBSYNC_REDIS__URL"],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["bare", "qbsync"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", help="write cProfile stats of the server to this file")
    args = parser.parse_args()
    # uvicorn re-raises the SIGTERM it handled once it has shut down; ending by SystemExit
    # instead lets the profile below be written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        _run(args.app, args.port)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


def _run(app: str, port: int) -> None:
    uvicorn.run(
        f"bench._serve:{app}_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=1,
        proxy_headers=True,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
