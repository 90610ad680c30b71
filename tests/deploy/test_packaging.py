"""The Lambda assets: the runtime package whole, arm64 wheels, within budget, importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.packaging import SIZE_BUDGET_MB, AssetReport, runtime_requirements
from tests.support import PROJECT_DIR

LOCAL_TOOLS = {"granian", "uvloop", "moto", "aws_cdk", "pytest", "click", "httpx", "flask", "boto3", "botocore"}
EM_AARCH64 = 183  # ELF e_machine of arm64


@pytest.fixture(scope="module")
def reports(lambda_assets: list[AssetReport]) -> dict[str, AssetReport]:
    return {r.function: r for r in lambda_assets}


def test_one_asset_per_function_within_the_size_budget(reports: dict[str, AssetReport]) -> None:
    assert set(reports) == set(FUNCTIONS)
    for report in reports.values():
        assert 0 < report.size_mb <= SIZE_BUDGET_MB
        assert (report.path / "holiday/functions" / f"{report.function}.py").is_file()


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_an_asset_is_the_runtime_package_whole_plus_the_bundled_dependencies(reports: dict[str, AssetReport]) -> None:
    runtime = {Path("holiday") / p for p in files_under(PROJECT_DIR / "holiday")}
    bundled, _ = runtime_requirements(PROJECT_DIR)
    for report in reports.values():
        # What pip installed, by the records it keeps of each distribution's files.
        records = list(report.path.glob("*.dist-info/RECORD"))
        installed = {Path(line.split(",")[0]) for r in records for line in r.read_text().splitlines() if line}
        assert files_under(report.path) == runtime | installed
        assert not runtime & installed
        # Exactly the versions uv.lock pins: restate-sdk, pydantic and what they need.
        names = (r.parent.name.removesuffix(".dist-info").lower().replace("_", "-") for r in records)
        pinned = {"==".join(name.rsplit("-", 1)) for name in names}
        assert pinned == set(bundled)
        assert {"restate-sdk", "pydantic"} <= {p.split("==")[0] for p in pinned}
        assert not {p.split("==")[0].replace("-", "_") for p in pinned} & LOCAL_TOOLS


def test_native_code_is_built_for_arm64(reports: dict[str, AssetReport]) -> None:
    libraries = list(reports["trips"].path.rglob("*.so"))
    assert {lib.parent.name for lib in libraries} >= {"restate", "pydantic_core"}
    for lib in libraries:
        header = lib.read_bytes()[:20]
        assert header[:4] == b"\x7fELF"
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64, lib


def test_every_handler_imports_on_the_host_twin_as_a_lambda_handler(reports: dict[str, AssetReport]) -> None:
    twin = reports["trips"].path.parent / ".host-twin"
    for function, handler in FUNCTIONS.items():
        module, attr = handler.rsplit(".", 1)
        code = f"import inspect, {module} as m; print(inspect.iscoroutinefunction(m.{attr}))"
        env = {"PYTHONPATH": str(twin), "AWS_LAMBDA_FUNCTION_NAME": f"holiday-{function}"}
        done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"  # restate.app gave a Lambda handler, not an async ASGI app
