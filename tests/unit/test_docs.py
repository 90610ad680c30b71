"""The README and docs/ hold together: links land, anchors exist, commands are real.

No processes, no network: the pages are read as text. The subcommands come from the
`holiday` click group and the targets from the Makefile, so neither list is kept by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title" after the target.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Where a shell command starts: a line's start (after a `$ ` prompt), or after ; & | ( $( or
# "or:", then any VAR=value assignments.
_START = r"(?:^|[;&|(]|\$\(|\bor:)\s*(?:\$\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"
HOLIDAY = re.compile(_START + r"(?:\S*/)?holiday\s+([a-z][\w-]*)" + r"|\.venv/bin/holiday\s+([a-z][\w-]*)")
MAKE = re.compile(_START + r"make\s+([a-z][\w.-]*)")
RULE = re.compile(r"^([^\s:=#$()][^:=#$()]*?)\s*::?(?!=)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Line:
    page: Path
    number: int
    text: str
    in_code: bool


def lines(page: Path) -> Iterator[Line]:
    """Each line of a page, and whether it is inside a fenced code block."""
    fence: str | None = None
    for number, text in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        opening = FENCE.match(text)
        if opening and (fence is None or opening.group(1) == fence):
            fence = opening.group(1) if fence is None else None
            yield Line(page, number, text, in_code=True)
            continue
        yield Line(page, number, text, in_code=fence is not None)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercase, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    """Every heading anchor of a page; a repeated heading gets -1, -2, ... as on GitHub."""
    return _anchors(page.resolve())


@cache
def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in lines(page):
        match = None if line.in_code else HEADING.match(line.text)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of a page whose file or #anchor does not exist."""
    problems: list[str] = []
    for line in lines(page):
        if line.in_code:
            continue
        prose = INLINE_CODE.sub("", line.text)
        for target in LINK.findall(prose):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            where = f"{page.relative_to(root)}:{line.number}: {target}"
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                problems.append(f"{where}: no file {path}")
            elif anchor and file.suffix == ".md" and anchor not in anchors_of(file):
                problems.append(f"{where}: no heading #{anchor} in {file.relative_to(root)}")
    return problems


def commands_shown(page: Path) -> Iterator[tuple[Line, str, str]]:
    """(line, "holiday" or "make", the word after it) for each command a page shows.

    Commands in fenced code blocks, and inline code that is a command (`make test-unit`).
    """
    for line in lines(page):
        texts = [line.text] if line.in_code else [m.group(2).strip() for m in INLINE_CODE.finditer(line.text)]
        for text in texts:
            for match in HOLIDAY.finditer(text):
                yield line, "holiday", match.group(1) or match.group(2)
            for match in MAKE.finditer(text):
                yield line, "make", match.group(1)


def holiday_subcommands() -> set[str]:
    from holiday_tools.cli import main

    return set(main.commands)


def make_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    targets: set[str] = set()
    for text in makefile.read_text(encoding="utf-8").splitlines():
        match = RULE.match(text)
        if match and not text.startswith("\t"):
            targets.update(name for name in match.group(1).split() if not name.startswith("."))
    return targets


def command_problems(page: Path, subcommands: set[str], targets: set[str], root: Path = ROOT) -> list[str]:
    known = {"holiday": subcommands, "make": targets}
    return [
        f"{page.relative_to(root)}:{line.number}: `{tool} {word}`: no such {'target' if tool == 'make' else 'command'}"
        for line, tool, word in commands_shown(page)
        if word not in known[tool]
    ]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(page: Path) -> None:
    assert link_problems(page) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_exist(page: Path) -> None:
    assert command_problems(page, holiday_subcommands(), make_targets()) == []


def test_docs_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in pages()[1:] if f"(docs/{p.relative_to(ROOT / 'docs')}" not in readme]
    assert unlinked == []


def test_the_sources_of_truth_are_read() -> None:
    """The lists the checks compare against are the real ones, not empty."""
    assert {"dev", "test", "test-unit", "chaos", "bench", "lint"} <= make_targets()
    assert {"dev", "reserve", "trip", "audit", "chaos", "bench"} <= holiday_subcommands()


def test_slugs_are_githubs() -> None:
    assert slug("Day two: updates, failures and rollbacks") == "day-two-updates-failures-and-rollbacks"
    assert slug("`holiday chaos`") == "holiday-chaos"
    assert slug("One node, three nodes, or Restate Cloud") == "one-node-three-nodes-or-restate-cloud"
    assert slug("Side by side with the TypeScript original") == "side-by-side-with-the-typescript-original"


def test_the_checks_catch_what_they_should(tmp_path: Path) -> None:
    """A broken file link, a missing anchor and a made-up command or target are each found."""
    (tmp_path / "README.md").write_text("# holiday\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "probe.md"
    page.write_text(
        "# Title\n\n## Same\n\n## Same\n\n"
        "[ok](#same-1) [ok](#title) [bad](#same-2) [bad](missing.md) [bad](../README.md#no-such-heading)\n"
        "[ok](https://example.com/x#y) `[not a link](nowhere.md)`\n\n"
        "```shell\nmake dev && .venv/bin/holiday bogus\nholiday trip foo; make nonesuch\n```\n"
        "Prose that says make sense, and `make test-unit`, `holiday reserve`.\n",
        encoding="utf-8",
    )
    links = link_problems(page, tmp_path)
    commands = command_problems(page, holiday_subcommands(), make_targets(), tmp_path)
    assert [problem.split(": ", 1)[1] for problem in links] == [
        "#same-2: no heading #same-2 in docs/probe.md",
        "missing.md: no file missing.md",
        "../README.md#no-such-heading: no heading #no-such-heading in README.md",
    ]
    assert [problem.split(": ", 1)[1] for problem in commands] == [
        "`holiday bogus`: no such command",
        "`make nonesuch`: no such target",
    ]
