"""The QuickBooks client stands on its own: nothing under `qbsync.qbo` imports the rest of qbsync
(settings, database, features), so it can be built and tested from its own config objects."""

from __future__ import annotations

import ast
from pathlib import Path

import qbsync.qbo

PACKAGE = "qbsync.qbo"
ROOT = Path(qbsync.qbo.__file__).parent


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every module a file imports, relative imports resolved against the file's package."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                names.append(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.append(node.module or "")
    return names


def _file_imports(path: Path) -> list[str]:
    return _imported(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def _outside(name: str) -> bool:
    inside = name == PACKAGE or name.startswith(f"{PACKAGE}.")
    return (name == "qbsync" or name.startswith("qbsync.")) and not inside


def test_qbo_imports_nothing_from_the_rest_of_qbsync() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 5, "the walk found the package's modules"
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _file_imports(path)
        if _outside(name)
    ]
    assert offenders == []


def test_the_check_sees_every_import_form() -> None:
    """The rule above would pass vacuously if the walk missed one."""
    source = (
        "import qbsync.settings\n"
        "from qbsync.db import Database\n"
        "from .. import errors\n"
        "from ..models import Connection\n"
        "from . import config\n"
        "from .entities import Customer\n"
        "def later() -> None:\n"
        "    from qbsync.connections import service\n"
    )
    names = _imported(source, "qbsync.qbo.client")
    assert [name for name in names if _outside(name)] == [
        "qbsync.settings",
        "qbsync.db",
        "qbsync",
        "qbsync.models",
        "qbsync.connections",
    ]
    assert "qbsync.qbo.entities" in names
    assert _imported("from . import client", PACKAGE, is_package=True) == [PACKAGE]
    assert not _outside("qbsyncextra")
    assert _module_name(ROOT / "__init__.py") == PACKAGE
