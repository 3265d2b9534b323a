"""The simulator stands alone: it imports nothing from qbsync, and its defaults are qbsync's."""

from __future__ import annotations

import ast
from pathlib import Path

import qbsync.simulator
from qbsync import settings
from qbsync.simulator import SimulatorConfig

PACKAGE = Path(qbsync.simulator.__file__).parent


def _imported_modules(source: Path) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
    return modules


def test_nothing_under_the_simulator_imports_the_rest_of_qbsync() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20  # the walk really found the package
    outside = [
        f"{source.relative_to(PACKAGE)}: {module}"
        for source in sources
        for module in _imported_modules(source)
        if (module == "qbsync" or module.startswith("qbsync."))
        and not (module == "qbsync.simulator" or module.startswith("qbsync.simulator."))
    ]
    assert outside == []


def test_the_simulators_default_credentials_are_qbsyncs_dev_credentials() -> None:
    config = SimulatorConfig()
    assert config.client_id == settings.DEV_INTUIT_CLIENT_ID
    assert config.client_secret == settings.DEV_INTUIT_CLIENT_SECRET
    assert config.verifier_token == settings.DEV_INTUIT_VERIFIER_TOKEN
