"""What a local Restate cluster says about itself, through `restatectl` (npm `@restatedev/restatectl`).

The chaos scenario asks which node leads the partitions and which leads the metadata, so that
it can kill each in turn; the tests ask for a partition snapshot, to see it land in S3.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 15


class RestatectlError(RuntimeError):
    """restatectl failed, or said something this module cannot read."""


def native_package(tool: str) -> str:
    """npm's package of Restate's `tool` (restate-server, restatectl) for this machine: one per platform."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    return f"@restatedev/{tool}-{sys.platform}-{arch}"


def restatectl_binary(project_dir: Path) -> Path:
    """The native binary npm installed beside restate-server."""
    binary = project_dir / "node_modules" / native_package("restatectl") / "bin/restatectl"
    if not binary.exists():
        raise RestatectlError(f"restatectl not found at {binary}; run `make install` (it runs `npm ci`)")
    return binary


@dataclass(frozen=True)
class Restatectl:
    """restatectl pointed at the nodes' fabric addresses (any live one answers for the cluster)."""

    binary: Path
    addresses: tuple[str, ...]

    def run(self, *args: str) -> str:
        argv = [str(self.binary), "--address", ",".join(self.addresses), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RestatectlError(f"restatectl {' '.join(args)} gave no answer in {TIMEOUT_S}s") from None
        if done.returncode != 0:
            raise RestatectlError(f"restatectl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def sql(self, query: str) -> list[dict[str, object]]:
        """Rows of the cluster's own tables (nodes, partition_state, ...)."""
        lines = self.run("sql", "--jsonl", query).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def names(self) -> dict[str, str]:
        """Plain node id ("N2") -> node name ("restate-2"): ids follow the order nodes joined, not their names."""
        rows = self.sql("SELECT plain_node_id, name FROM nodes")
        return {str(row["plain_node_id"]): str(row["name"]) for row in rows}

    def partition_leaders(self) -> Counter[str]:
        """How many partitions each node (by name) leads now."""
        names = self.names()
        rows = self.sql("SELECT partition_id, plain_node_id FROM partition_state WHERE effective_mode = 'Leader'")
        return Counter(names.get(str(row["plain_node_id"]), str(row["plain_node_id"])) for row in rows)

    def metadata_leader(self) -> str | None:
        """The name of the node that leads the replicated metadata server, None while there is no leader."""
        names = self.names()
        table = self.run("metadata-server", "list-servers").splitlines()
        header = next((i for i, line in enumerate(table) if line.split()[:1] == ["NODE"]), None)
        if header is None:
            raise RestatectlError("restatectl metadata-server list-servers printed no table")
        column = table[header].split().index("LEADER")
        leaders = {line.split()[column] for line in table[header + 1 :] if len(line.split()) > column}
        leaders.discard("-")
        if len(leaders) > 1:
            return None  # members disagree for a moment, as during an election
        return names.get(leaders.pop(), None) if leaders else None

    def create_snapshots(self) -> None:
        """A snapshot of every partition, now, instead of after the configured number of records."""
        self.run("snapshots", "create-snapshot")
