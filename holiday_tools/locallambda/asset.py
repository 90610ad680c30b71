"""What a function's Lambda asset ships, and an import guard that refuses anything else, as Lambda would.

The asset of a holiday function holds the `holiday` package and the run-time
dependencies of the `holiday` distribution (pyproject's `[project] dependencies`,
not its extras) with what they require in turn. The local virtualenv holds much
more (httpx, click, moto, ...), and a library that imports an optional extra when
it is there changes behaviour and cold start: `restate/__init__.py` tries
`from .client import create_client`, which imports httpx locally (about 50 ms)
and fails quietly on Lambda. So a worker that stands for such a function
installs `guard` before it imports its handler: any top-level module outside
the asset is refused with the ModuleNotFoundError Lambda would raise.

The runtime works out the asset's modules once (`shipped_modules`, from the
installed distributions' metadata: no list is kept by hand) and hands them to
its workers; a worker adds the standard library, its handler's own top-level
package, the modules of an uploaded version's code and whatever it has already
imported itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

# The distribution whose run-time requirements a holiday function's asset bundles, and its package.
DISTRIBUTION = "holiday"
PACKAGE = "holiday"


def shipped_modules(distribution: str = DISTRIBUTION) -> frozenset[str] | None:
    """The top-level modules of the closure of `distribution`'s run-time requirements, plus its package.

    None if the distribution is not installed (nothing to judge by: the workers are then not guarded).
    """
    from importlib import metadata  # here, not at the top: workers import this module too, and never need it

    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    closure: set[str] = set()
    pending = [distribution]
    while pending:
        try:
            requires = metadata.requires(pending.pop()) or []
        except metadata.PackageNotFoundError:
            continue  # a requirement that is not installed here: nothing of it can be imported either
        for requirement in requires:
            name = _needed(requirement)
            if name is not None and name not in closure:
                closure.add(name)
                pending.append(name)
    modules = {
        module
        for module, providers in metadata.packages_distributions().items()
        if any(_canonical(provider) in closure for provider in providers)
    }
    return frozenset(modules | {PACKAGE})


def project_packages(distribution: str = DISTRIBUTION) -> frozenset[str]:
    """The top-level packages of `distribution` itself (holiday, holiday_tools, infra, ...): the project's own code."""
    from importlib import metadata

    providers = metadata.packages_distributions()
    return frozenset(m for m, dists in providers.items() if any(_canonical(d) == distribution for d in dists))


def guard(allowed: Iterable[str], code_dirs: Sequence[str] = ()) -> None:
    """From now on refuse to import any top-level module outside the asset (call before importing the handler).

    Allowed besides `allowed`: the standard library, the modules in `code_dirs` (an uploaded
    version's code, all of which is its asset) and every top-level module already imported.
    """
    names = set(allowed) | set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    names |= {name.partition(".")[0] for name in list(sys.modules)}
    for code_dir in code_dirs:
        names |= _top_level_modules(Path(code_dir))
    sys.meta_path.insert(0, AssetFinder(frozenset(names)))


class AssetFinder(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path`: a top-level module outside the asset is not found, as on Lambda.

    The standard library's private modules are not all in `sys.stdlib_module_names`
    (sysconfig imports `_sysconfigdata_<platform>`, and pydantic imports sysconfig), so a
    name not allowed is still found when it lives in the standard library's own folders.
    """

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        stdlib = os.path.dirname(os.__file__)
        self.stdlib = [stdlib, os.path.join(stdlib, "lib-dynload")]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None and fullname not in self.allowed:
            spec = importlib.machinery.PathFinder.find_spec(fullname, self.stdlib)
            if spec is None:
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
            return spec
        return None  # the usual finders take it from here


def _needed(requirement: str) -> str | None:
    """The distribution a requirement names, if it applies here without extras (its marker evaluated)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging comes with the dev tools; without it, judge by the marker's text
        name, _, marker = requirement.partition(";")
        if "extra" in marker:
            return None
        return _canonical(re.split(r"[\s\[(<>=!~]", name.strip(), maxsplit=1)[0])
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return None
    if parsed.marker is not None and not parsed.marker.evaluate({"extra": ""}):
        return None
    return _canonical(parsed.name)


def _canonical(name: str) -> str:
    """A distribution name as packaging normalises it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _top_level_modules(code_dir: Path) -> set[str]:
    """The top-level modules an uploaded version's code provides: its packages and module files."""
    suffixes = tuple(importlib.machinery.all_suffixes())
    found = set()
    try:
        entries = list(code_dir.iterdir())
    except OSError:
        return set()
    for entry in entries:
        if entry.is_dir() and entry.name.isidentifier():
            found.add(entry.name)
        elif entry.name.endswith(suffixes):
            found.add(entry.name.partition(".")[0])
    return found
