"""What ships to Lambda is the runtime package, `holiday`, whole: so it must import nothing else of ours.

Every import in `holiday/` must be the standard library, `holiday` itself, or a distribution the
runtime needs (pyproject's `dependencies` and what they require), which the asset bundles or the
Lambda runtime provides. The CDK app ships nothing, but it must not need a build tool either.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from tests.support import PROJECT_DIR

LOCAL_ONLY = {"holiday_tools", "click", "httpx", "granian", "moto", "uvloop", "flask", "pytest"}


def imported_modules(*paths: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files (of `paths`, and under those that are folders) that import it."""
    found: dict[str, set[str]] = {}
    files = [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(PROJECT_DIR)))
    return found


@cache
def runtime_distributions() -> frozenset[str]:
    """pyproject's run-time dependencies and, recursively, what they require."""

    def name(requirement: str) -> str:
        return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    pending = [name(r) for r in tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while pending:
        dist = pending.pop()
        if dist in seen:
            continue
        seen.add(dist)
        pending += [name(r) for r in metadata.requires(dist) or [] if "extra ==" not in r]
    return frozenset(seen)


def test_the_runtime_package_imports_only_the_standard_library_itself_and_its_dependencies() -> None:
    providers = metadata.packages_distributions()
    outside = {}
    for module, files in imported_modules(PROJECT_DIR / "holiday").items():
        if module in sys.stdlib_module_names or module == "holiday":
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & runtime_distributions():
            outside[module] = sorted(files)
    assert not outside  # module -> the files importing it


@pytest.mark.parametrize("module", sorted(LOCAL_ONLY))
def test_the_runtime_package_never_imports_a_local_tool(module: str) -> None:
    assert module not in imported_modules(PROJECT_DIR / "holiday")


def test_the_cdk_app_needs_no_local_tool() -> None:
    assert not set(imported_modules(PROJECT_DIR / "app.py", PROJECT_DIR / "infra")) & LOCAL_ONLY
