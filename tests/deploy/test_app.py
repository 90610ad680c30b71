"""app.py as the CDK CLI runs it, its Node.js check, and the context checks on a real CDK node.

Deploy tier: these start Node.js (jsii, on import of aws_cdk) or a stand-in `node`. The context checks
themselves are unit tests on a fake node, in tests/unit/test_settings.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App

from app import SILENCE_END_OF_LIFE, quiet_node_end_of_life_banner
from infra.settings import DeploymentSettings, SettingsError
from tests.support import PROJECT_DIR
from tests.unit.test_settings import CDK_KEYS


def test_a_real_node_is_read_the_same() -> None:
    assert DeploymentSettings.from_context(App(context={"prefix": "alice"}).node).prefix == "alice"
    with pytest.raises(SettingsError, match="unknown context key 'prefx'"):
        DeploymentSettings.from_context(App(context={"prefx": "alice"}).node)


# --- app.py as the CDK CLI runs it -----------------------------------------------------------


def node_major() -> int:
    node = shutil.which(os.environ.get("JSII_NODE", "node"))
    if node is None:
        pytest.skip("no Node.js, so jsii cannot start")
    found = re.match(r"v(\d+)\.", subprocess.run([node, "--version"], capture_output=True, text=True).stdout)
    assert found is not None
    return int(found[1])


@pytest.mark.parametrize(
    ("context", "says"),
    [
        ({"prefx": "alice"}, "error: unknown context key 'prefx' (did you mean 'prefix'?); valid keys: prefix, "),
        ({"prefix": ""}, "error: context 'prefix' is empty; leave it out for "),
    ],
)
def test_app_refuses_a_bad_context_in_one_line_and_no_node_banner(
    context: dict[str, str], says: str, tmp_path: Path
) -> None:
    # As the CDK CLI runs the app: context in CDK_CONTEXT_JSON (with cdk.json's flags), output folder in CDK_OUTDIR.
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({**CDK_KEYS, **context}), "CDK_OUTDIR": str(tmp_path)}
    env.pop(SILENCE_END_OF_LIFE, None)
    done = subprocess.run([sys.executable, "app.py"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    # jsii's end-of-life banner for an old Node.js came as bytes reprs (b'!! ... !!\n'), on import of aws_cdk
    assert not [line for line in lines if line.startswith(("b'", 'b"'))]
    warnings = [line for line in lines if line.startswith("warning: Node.js ")]
    assert len(warnings) == (1 if node_major() < 22 else 0)
    [error] = [line for line in lines if line not in warnings]
    assert error.startswith(says)


# --- the Node.js check before the CDK starts -------------------------------------------------


def fake_node(tmp_path: Path, script: str) -> str:
    node = tmp_path / "node"
    node.write_text(f"#!/bin/sh\n{script}\n")
    node.chmod(0o755)
    return str(node)


def test_an_end_of_life_node_gets_one_warning_line_and_no_jsii_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JSII_NODE", fake_node(tmp_path, "echo v18.20.4"))
    monkeypatch.setenv(SILENCE_END_OF_LIFE, "16")
    quiet_node_end_of_life_banner()
    assert capsys.readouterr().err == (
        "warning: Node.js v18.20.4 is end of life; the CDK works with it, but Node.js 22 or newer is recommended\n"
    )
    assert os.environ[SILENCE_END_OF_LIFE] == "16,18"


@pytest.mark.parametrize(
    ("script", "silenced"),
    [
        ("echo v22.12.0", None),  # supported
        ("echo v24.1.0", None),
        ("echo v20.20.2", "18, 20"),  # already silenced by whoever runs the app
        ("exit 1", None),  # a broken node: jsii says what is wrong
        ("echo nonsense", None),
    ],
)
def test_a_supported_silenced_or_broken_node_gets_no_warning(
    script: str,
    silenced: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JSII_NODE", fake_node(tmp_path, script))
    if silenced is None:
        monkeypatch.delenv(SILENCE_END_OF_LIFE, raising=False)
    else:
        monkeypatch.setenv(SILENCE_END_OF_LIFE, silenced)
    quiet_node_end_of_life_banner()
    assert capsys.readouterr().err == ""
    assert os.environ.get(SILENCE_END_OF_LIFE) == silenced


def test_no_node_gets_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JSII_NODE", str(tmp_path / "missing" / "node"))
    monkeypatch.delenv(SILENCE_END_OF_LIFE, raising=False)
    quiet_node_end_of_life_banner()
    assert capsys.readouterr().err == ""
    assert SILENCE_END_OF_LIFE not in os.environ
