"""How the local tools print: every line within WIDTH columns, tables aligned, plurals right."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

WIDTH = 100  # every line of a report fits in this many columns


def plural(count: int, noun: str) -> str:
    """`1 fault`, `2 faults`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def wrap(text: str, indent: str = "", first: str = "") -> list[str]:
    """`text` in lines of at most WIDTH columns, broken between words only: ids and URLs stay whole."""
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart: the first `left` flush left (names), the rest
    flush right (figures)."""
    lines = [header, *rows]
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)]

    def aligned(line: Sequence[str]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(cells)).rstrip()

    return [aligned(line) for line in lines]
