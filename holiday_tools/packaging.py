"""Build each Lambda function's deployment asset: arm64, Python 3.14, no Docker.

`holiday package` (or `make package`) writes `build/lambda/<function>/`, the
folder the CDK app deploys. It holds the runtime package, `holiday`, whole (the
local tools live apart, in `holiday_tools`), plus the run-time dependencies from pyproject.toml as manylinux
aarch64 wheels, at the versions uv.lock pins and checked against its hashes (the lock
records every platform's wheels). boto3 is left out: the Lambda Python runtime provides it, and
botocore alone would take half of the size budget.

Handler import time cannot be measured on the arm64 asset from an x86 machine.
It is measured on a twin of the asset built for this machine, with boto3
added as the runtime would provide it. Each figure is the median of fresh
interpreter starts.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from holiday.functions import FUNCTIONS, LAMBDA_PYTHON

# arm64 Linux with glibc 2.28 or newer (Amazon Linux 2023): restate-sdk has arm64 wheels only for manylinux_2_28.
LAMBDA_PLATFORM = "aarch64-manylinux_2_28"
PROVIDED_BY_RUNTIME = ("boto3",)
SIZE_BUDGET_MB = 40.0
IMPORT_BUDGET_MS = 300.0


@dataclass(frozen=True)
class AssetReport:
    function: str
    path: Path
    size_mb: float
    import_ms: float
    first_client_ms: float

    @property
    def over_budget(self) -> list[str]:
        return [
            what
            for what, over in (("size", self.size_mb > SIZE_BUDGET_MB), ("import", self.import_ms > IMPORT_BUDGET_MS))
            if over
        ]


def locked_requirements(project_dir: Path, prune: tuple[str, ...] = ()) -> str:
    """The run-time dependencies and everything they need, as uv.lock pins them: a pip requirements
    file with every wheel's hash. `prune` drops packages, and what only they need.

    --locked refuses a lock that no longer matches pyproject.toml (run `uv lock` after editing the pins).
    """
    argv = [sys.executable, "-m", "uv", "export", "--locked", "--no-dev", "--no-emit-project", "--quiet"]
    argv += ["--format=requirements-txt", "--no-header", "--no-annotate", f"--project={project_dir}"]
    argv += [f"--prune={p}" for p in prune]
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout


def pins(requirements: str) -> list[str]:
    """`name==version` of each requirement in a requirements file (no hashes, no markers)."""
    return [line.split(";")[0].split()[0] for line in requirements.splitlines() if line[:1].isalnum()]


def runtime_requirements(project_dir: Path) -> tuple[list[str], list[str]]:
    """The locked run-time dependencies, `name==version`: (to bundle, provided by the Lambda runtime)."""
    bundled = pins(locked_requirements(project_dir, prune=PROVIDED_BY_RUNTIME))
    return bundled, [p for p in pins(locked_requirements(project_dir)) if p not in bundled]


def install_wheels(target: Path, requirements: str, lambda_platform: bool) -> None:
    """Install exactly `requirements` into `target`, as wheels only (no builds, no Docker), hashes checked.

    uv rather than pip: it judges each requirement's markers for the target platform and Python, and the
    project's virtualenv (made by uv) has no pip.
    """
    with tempfile.TemporaryDirectory() as tmp:
        requirements_txt = Path(tmp) / "requirements.txt"
        requirements_txt.write_text(requirements)
        argv = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--only-binary=:all:", "--require-hashes"]
        argv += ["--no-deps", f"--target={target}", f"--requirement={requirements_txt}"]
        if lambda_platform:
            argv += [f"--python-platform={LAMBDA_PLATFORM}", f"--python-version={LAMBDA_PYTHON}"]
        else:
            argv += [f"--python={sys.executable}"]
        subprocess.run(argv, check=True)
    (target / ".lock").unlink(missing_ok=True)  # uv's, not part of the asset


def copy_package(project_dir: Path, target: Path) -> None:
    """The runtime package, whole: everything in it ships, and nothing else of the project does."""
    shutil.copytree(project_dir / "holiday", target / "holiday", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1_000_000


_COLD_START = """
import time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
import holiday.aws
holiday.aws.client("dynamodb")
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def cold_start_ms(pythonpath: Path, function: str, runs: int = 5) -> tuple[float, float]:
    """Medians over fresh interpreters: the handler module's import, then creating the first AWS client."""
    code = _COLD_START.format(module=FUNCTIONS[function].rsplit(".", 1)[0])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(pythonpath),
        "AWS_LAMBDA_FUNCTION_NAME": f"holiday-{function}",
        "AWS_REGION": "us-east-1",
    }
    imports, clients = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
        first, second = done.stdout.split()
        imports.append(float(first))
        clients.append(float(second))
    return statistics.median(imports), statistics.median(clients)


def build(project_dir: Path, out_dir: Path) -> list[AssetReport]:
    """Build every function's asset under `out_dir`; return their sizes and import times."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    deps = out_dir / ".deps-aarch64"
    install_wheels(deps, locked_requirements(project_dir, prune=PROVIDED_BY_RUNTIME), lambda_platform=True)
    twin = out_dir / ".host-twin"
    install_wheels(twin, locked_requirements(project_dir), lambda_platform=False)
    copy_package(project_dir, twin)

    reports = []
    for function in FUNCTIONS:
        asset = out_dir / function
        shutil.copytree(deps, asset)
        copy_package(project_dir, asset)
        reports.append(AssetReport(function, asset, folder_size_mb(asset), *cold_start_ms(twin, function)))
    shutil.rmtree(deps)
    return reports


def format_report(reports: list[AssetReport]) -> str:
    lines = [f"{'function':<10} {'unzipped':>10} {'import':>9} {'1st client':>11}   budget"]
    for r in reports:
        verdict = "OVER: " + ", ".join(r.over_budget) if r.over_budget else "within"
        lines.append(
            f"{r.function:<10} {r.size_mb:>7.1f} MB {r.import_ms:>6.0f} ms {r.first_client_ms:>8.0f} ms   {verdict}"
        )
    lines.append(
        f"\nBudget: {SIZE_BUDGET_MB:.0f} MB unzipped, {IMPORT_BUDGET_MS:.0f} ms handler import. Times are medians of"
        " 5 fresh interpreters,\non a twin of the asset built for this machine. '1st client' is creating the first"
        " AWS client\nafter the import, which the first invocation of a new container pays."
    )
    return "\n".join(lines)
