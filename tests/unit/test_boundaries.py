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


def test_the_local_tools_import_nothing_of_the_cdk_app() -> None:
    # The local cluster renders its nodes with holiday_host, as the CDK app renders the EC2 hosts.
    assert "infra" not in imported_modules(PROJECT_DIR / "holiday_tools")


def test_the_host_renderer_needs_only_the_standard_library() -> None:
    # Both the CDK app and the local tools import it, so it may import neither of them, nor aws_cdk.
    found = imported_modules(PROJECT_DIR / "holiday_host")
    assert not {"infra", "holiday_tools", "holiday", "aws_cdk", "constructs", "cdk_nag"} & set(found)
    outside = {m: sorted(f) for m, f in found.items() if m not in sys.stdlib_module_names and m != "holiday_host"}
    assert not outside  # module -> the files importing it


# --- the local tools' layers -------------------------------------------------------------------
# The CLI imports the tools; each tool imports its own modules and the shared ones (ingress, text, devstack,
# admin, audit, procnet ...), never the CLI nor another tool; no module imports another's `_private` names.
TOOLS = {
    "bench": ("holiday_tools.bench",),
    "chaos": ("holiday_tools.chaos",),
}


def tool_imports() -> dict[str, list[tuple[str, str]]]:
    """Module of holiday_tools -> (the module it imports, the name it takes from it, or '') for each import of
    holiday_tools, a relative import made absolute."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((PROJECT_DIR / "holiday_tools").rglob("*.py")):
        parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = parts[:-1]
        imports = found.setdefault(module, [])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imports += [(alias.name, "") for alias in node.names if alias.name.startswith("holiday_tools")]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
                if base.startswith("holiday_tools"):
                    imports += [(base, alias.name) for alias in node.names]
    return found


def tool_of(module: str) -> str | None:
    return next((tool for tool, roots in TOOLS.items() if any(_within(module, root) for root in roots)), None)


def _within(module: str, root: str) -> bool:
    return module == root or module.startswith(f"{root}.")


def test_nothing_imports_the_cli() -> None:
    importers = [
        m for m, imports in tool_imports().items() for target, _ in imports if _within(target, "holiday_tools.cli")
    ]
    assert importers == []


def test_no_tool_imports_another_tool() -> None:
    crossings = []
    for module, imports in tool_imports().items():
        mine = tool_of(module)
        for target, name in imports:
            theirs = tool_of(f"{target}.{name}" if name else target)
            if mine is not None and theirs is not None and theirs != mine:
                crossings.append(f"{module} imports {target} {name}".strip())
    assert crossings == []


def test_no_module_imports_the_private_names_of_another() -> None:
    private = [
        f"{module}: {target}.{name}"
        for module, imports in tool_imports().items()
        for target, name in imports
        if name.startswith("_") and target != module
    ]
    assert private == []


# Linux's /proc is not on macOS: process and CPU figures go through psutil. Only Linux-only features read it,
# and each says in one line where it cannot: procnet finds which process listens on a port (/proc/net), the
# local Lambda runtime's CPU limit finds the cgroup mounts, and its SnapStart zygote counts its own threads.
PROC_READERS = {
    "holiday_tools/procnet.py",
    "holiday_tools/locallambda/cgroups.py",
    "holiday_tools/locallambda/zygote.py",
}


def test_only_the_linux_only_features_read_proc() -> None:
    readers = {
        str(path.relative_to(PROJECT_DIR))
        for path in sorted((PROJECT_DIR / "holiday_tools").rglob("*.py"))
        if re.search(r"""["'(]/proc\b""", path.read_text())
    }
    assert readers == PROC_READERS
