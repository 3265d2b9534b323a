from __future__ import annotations

import json
from pathlib import Path

from qbsync.cli import main, openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_the_committed_contract_matches_the_app() -> None:
    """`make openapi` rewrites it; a route change without it fails here."""
    assert COMMITTED.read_text() == openapi_document(), "run `make openapi` and commit the result"


def test_every_operation_documents_its_problem_responses() -> None:
    document = json.loads(openapi_document())
    operations = [
        (path, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/v1/")
        for operation in methods.values()
    ]
    assert operations
    for path, operation in operations:
        responses = operation["responses"]
        for status in ("422", "500"):
            assert "application/problem+json" in responses[status]["content"], (path, status)
        if path in ("/v1/events", "/v1/quickbooks/webhooks"):
            # Signed by the platform or by Intuit; no JWT, so never a 403.
            assert "401" in responses
        elif path != "/v1/quickbooks/callback":
            assert {"401", "403"} <= responses.keys(), path
    assert "HTTPValidationError" not in json.dumps(document)


def test_openapi_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main(["openapi", "--output", str(target)]) == 0
    assert json.loads(target.read_text())["openapi"].startswith("3.")
