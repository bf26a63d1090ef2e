"""What the terminal shows: plain-text tables padded by display width (a CJK character takes two
columns) and progress bars."""

from __future__ import annotations

import unicodedata
from typing import Sequence


def display_width(text: str) -> int:
    """Terminal columns: a wide or full-width (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int, *, right: bool = False) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def format_table(rows: Sequence[Sequence[str]], align: str, *, rules_after: Sequence[int] = (0,)) -> list[str]:
    """``rows`` (the first is the header) as lines, columns two spaces apart.

    ``align`` has one letter per column, ``l`` or ``r``; a left-aligned last column is not
    padded (no trailing spaces). A rule of ``-`` as wide as the widest line follows each row
    index in ``rules_after`` (negative indices count from the end).
    """
    n = len(align)
    widths = [max(display_width(r[i]) for r in rows) for i in range(n)]
    lines = []
    for r in rows:
        cells = [pad(c, w, right=a == "r") if i < n - 1 or a == "r" else c
                 for i, (c, w, a) in enumerate(zip(r, widths, align))]
        lines.append("  ".join(cells))
    rule = "-" * max(display_width(line) for line in lines)
    for k in sorted((i % len(rows) for i in rules_after), reverse=True):
        lines.insert(k + 1, rule)
    return lines


def progress_bar(*, total: int, desc: str, enabled: bool, unit: str = "B"):
    """A tqdm bar on stderr, in bytes (``unit="B"``, scaled by 1024) or in ``unit``s.
    ``disable=None``: tqdm turns it off when stderr is not a terminal. ``enabled=False``
    (``--no-progress``) does not even import tqdm (~0.1 s)."""
    if not enabled:
        return _NO_BAR
    from tqdm import tqdm

    scaled = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, **scaled)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


_NO_BAR = _NoBar()


def quiet(*args, **kwargs) -> None:
    """A ``log`` that says nothing (ranks other than 0, the runs that compare and cv make)."""
