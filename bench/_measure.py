"""Timing one command as its own process: wall time and that process's own peak RSS.

Shared by the benchmarks in this folder (run as ``python bench/NAME.py``, so this folder is on
``sys.path``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Linux records, at exec, the peak RSS of the memory image being replaced into the process's
# ru_maxrss. A child forked (or vforked) straight from this process would therefore report *our*
# peak (the generator's ~100s of MB) as its own. So each command is started by this small fresh
# interpreter, whose own peak (~10 MB) is then the floor of what a child can report.
_LAUNCHER = r"""
import json, os, sys, time
result_path, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(result_path, "w") as f:
    json.dump({"wall": wall, "maxrss_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(argv: list[str], *, log: Path) -> tuple[float, float, str, int]:
    """(wall seconds, peak RSS MB, output, exit status) of one run of ``argv``.

    The launcher times from its fork to ``wait4`` (its own start-up is not counted) and takes
    ``ru_maxrss`` of exactly that child. Output goes to a file, never a pipe nobody reads.
    """
    result_path = log.with_suffix(".rusage.json")
    with open(log, "wb") as out:
        code = subprocess.call([sys.executable, "-S", "-c", _LAUNCHER, str(result_path), *argv],
                               stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"the launcher failed (exit {code}) for {argv[0]}")
    r = json.loads(result_path.read_text())
    return r["wall"], r["maxrss_kb"] / 1024.0, log.read_text(encoding="utf-8", errors="replace"), r["code"]
