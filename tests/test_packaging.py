"""The Lambda assets: arm64 wheels, only what a function runs, within budget, importable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from holiday.functions import FUNCTIONS
from holiday.packaging import SIZE_BUDGET_MB, AssetReport

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


def test_assets_hold_no_local_tools_and_no_local_only_modules(reports: dict[str, AssetReport]) -> None:
    for report in reports.values():
        top_level = {p.name.split("-")[0].split(".")[0] for p in report.path.iterdir()}
        assert not top_level & LOCAL_TOOLS
        holiday = {p.name for p in (report.path / "holiday").iterdir()}
        assert not holiday & {"cli.py", "devstack.py", "server.py", "packaging.py", "locallambda"}


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
        assert reports[function].import_ms > 0
