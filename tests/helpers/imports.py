"""The one check that a piece of code does not import some modules: run it in a fresh
interpreter (this process has imported everything already) and list what it loaded."""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence


_MARK = "imported-modules: "


def imported_by(code: str, modules: Sequence[str]) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` after ``code`` ran in a fresh interpreter.
    ``code`` must succeed (its own asserts included)."""
    probe = f"{code}\nimport sys\nprint({_MARK!r} + ','.join(m for m in {list(modules)!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith(_MARK))
    return [m for m in line[len(_MARK):].split(",") if m]


def assert_not_imported(code: str, modules: Sequence[str]) -> None:
    found = imported_by(code, modules)
    assert found == [], f"{code!r} imported {found}"
