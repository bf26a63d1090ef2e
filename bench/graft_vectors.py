"""Benchmark: graft a character vocabulary from a Tencent-sized vector file, against gensim.

Generates a word2vec text file shaped like the Tencent AI Lab Chinese Embedding (default
1,000,000 lines x 200 dims, values written ``f"{x:.6f}"``, Chinese tokens), with the THUCNews
characters scattered through it so a reader must go to the end, and then times, each as its
own child process (wall time and that child's own peak RSS from ``wait4``):

1. ``embgraft graft`` of the THUCNews train character vocabulary from the big file;
2. the same on a 2,000-line file made the same way (the graft's start-up cost);
3. gensim ``KeyedVectors.load_word2vec_format`` of the big file plus a lookup of every
   vocabulary character (what people do today);
4. ``wc -l`` of the big file (the floor: reading the bytes once).

Targets (from the issue): graft >= 50x faster than gensim (whole process), peak RSS <= 1/10 of
gensim's, and the graft's own time (big minus small) <= 5x ``wc -l``. The graft's output is
checked row by row against the generated vectors, so the benchmark cannot pass by doing nothing.

The targets are meant for the default 1,000,000 lines: on small files the graft's fixed work
per wanted row (parsing ~5,000 of them) outweighs a ``wc -l`` of a few MB. Exit status 1 when a
target fails. All runs read the file from the page cache (it was just written): the comparison
is CPU and memory, not disk. Peak RSS has a floor of ~8 MB, the launcher's (see ``_measure.py``).
Stock gensim cannot read a file with ASCII-space tokens; the note printed says how it was timed
(see ``_GENSIM_CHILD``). Run from the repository root::

    .venv/bin/python bench/graft_vectors.py [--lines N] [--dim D] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _measure import run_child

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"  # where CI and the shared checkout keep it
SMALL_LINES = 2_000
POOL_ROWS = 4_096  # distinct pre-formatted rows; reused so generation takes seconds
WRITE_CHUNK = 20_000  # lines joined per write()

# ratio name -> (comparison, target, how it is computed); printed and written to JSON
TARGETS = {
    "speed_vs_gensim": (">=", 50.0, "gensim wall / graft wall (whole processes)"),
    "rss_share_of_gensim": ("<=", 0.10, "graft peak RSS / gensim peak RSS"),
    "own_time_vs_wc": ("<=", 5.0, "(graft wall - graft start-up wall) / wc -l wall"),
}

# Tokens with whitespace inside, as the real Tencent file has (DESIGN.md): the graft must keep
# them whole; gensim's reader splits on every ASCII space (see _GENSIM_CHILD).
WHITESPACE_TOKENS = ("\u3000", "中国\u3000银行", "你好\u3000世界", "纽约 时报", "Hello World")

# gensim's text reader (4.x, _word2vec_line_to_vector) splits a line on every ASCII space, so a
# token containing one raises ValueError. To still time gensim on the same file, the child can
# replace that one function by the same work split from the right ("patched"); "stock" leaves
# gensim as shipped (used on the small file to show the failure).
_GENSIM_CHILD = r"""
import json, sys
import numpy as np
from gensim import utils
import gensim.models.keyedvectors as kvmod
path, chars_path, mode, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "patched":
    def _line_to_vector(line, datatype, unicode_errors, encoding):
        parts = utils.to_unicode(line.rstrip(), encoding=encoding, errors=unicode_errors).rsplit(" ", dim)
        return parts[0], [datatype(x).item() for x in parts[1:]]
    kvmod._word2vec_line_to_vector = _line_to_vector
chars = json.load(open(chars_path, encoding="utf-8"))
try:
    kv = kvmod.KeyedVectors.load_word2vec_format(path, binary=False)
except ValueError as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(3)
found = {ch: kv[ch] for ch in chars if ch in kv}
sample = sorted(found)[:50]
print(json.dumps({"n_keys": len(kv), "n_found": len(found),
                  "sample": {ch: found[ch].tolist() for ch in sample}}, ensure_ascii=False))
"""


# -- generating the files ---------------------------------------------------------------------------
@dataclass
class Generated:
    """A generated vector file and what it holds that the checks need."""

    path: Path
    n_lines: int  # data lines (the header not counted)
    n_bytes: int
    seconds: float
    values: np.ndarray  # (POOL_ROWS, dim) float32: the pool rows as a correct reader parses them
    char_rows: dict[str, int] = field(default_factory=dict)  # placed character -> pool row index


def vocab_chars(train: Path) -> list[str]:
    """The THUCNews train characters as ``embgraft graft --level char --format tsv`` counts them:
    the text column, whitespace dropped; in first-appearance order."""
    seen: dict[str, None] = {}
    with open(train, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n").split("\t", 1)[0]
            for ch in text:
                if not ch.isspace():
                    seen.setdefault(ch)
    return list(seen)


def source_chars(tencent_subset: Path) -> list[str]:
    """The tokens of the shared Tencent character subset (one character each)."""
    out = []
    with open(tencent_subset, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            out.append(line.rstrip("\n").rsplit(" ", 200)[0])
    return out


def make_pool(*, dim: int, rng: np.random.Generator) -> tuple[list[bytes], np.ndarray]:
    """``POOL_ROWS`` rows as the bytes `` v1 ... vD\\n`` and, parsed back, as float32.

    Parsing the written text back (rather than keeping the random doubles) gives exactly what a
    correct reader must produce from the file.
    """
    values = rng.normal(0.0, 0.25, size=(POOL_ROWS, dim))
    text_rows = [" ".join(f"{x:.6f}" for x in row) for row in values]
    parsed = np.array([[float(s) for s in row.split(" ")] for row in text_rows], dtype=np.float32)
    return [(" " + row + "\n").encode("ascii") for row in text_rows], parsed


def filler_words(*, n: int, alphabet: list[str], avoid: set[str], rng: np.random.Generator) -> list[str]:
    """``n`` distinct Chinese "words" of 2-3 characters drawn from ``alphabet``.

    Distinct because a distinct (first, second) character pair starts each one; a third
    character is added to about a third of them so lengths vary like real words.
    """
    a = len(alphabet)
    if a * a < 2 * n:
        raise ValueError(f"an alphabet of {a} characters cannot make {n} distinct two-character prefixes")
    pairs = np.unique(rng.integers(0, a * a, size=int(n * 1.1) + 100))
    while len(pairs) < n:  # rare: too many collisions in the first draw
        pairs = np.unique(np.concatenate([pairs, rng.integers(0, a * a, size=n)]))
    pairs = rng.permutation(pairs)[:n]
    thirds = rng.integers(-2 * a, a, size=n)  # negative: no third character
    words = []
    for p, t in zip(pairs.tolist(), thirds.tolist()):
        w = alphabet[p // a] + alphabet[p % a]
        if t >= 0:
            w += alphabet[t]
        words.append(w)
    clash = [w for w in words if w in avoid]
    if clash:
        raise ValueError(f"filler word(s) clash with placed tokens: {clash[:5]}")
    return words


def generate(
    path: Path, *, n_lines: int, dim: int, chars: list[str], n_chars: int, seed: int
) -> Generated:
    """Write a word2vec text file of ``n_lines`` data lines, ``n_chars`` of ``chars`` among them.

    The placed characters and the whitespace tokens go to random, scattered lines, one of them
    the very last line, so no reader can stop early. Every other line is a filler word.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    placed = chars[:n_chars]
    specials = list(WHITESPACE_TOKENS)
    if n_lines < len(placed) + len(specials) + 1:
        raise ValueError(f"{n_lines} lines cannot hold {len(placed)} characters and {len(specials)} others")
    pool_bytes, values = make_pool(dim=dim, rng=rng)

    # Scattered positions: the last line always holds a character.
    where = rng.choice(n_lines - 1, size=len(placed) + len(specials) - 1, replace=False)
    where = np.concatenate([where, [n_lines - 1]])
    where = rng.permutation(where)
    tokens: list[str | None] = [None] * n_lines
    for tok, i in zip(placed + specials, where.tolist()):
        tokens[i] = tok
    n_fill = n_lines - len(placed) - len(specials)
    cjk = [c for c in chars if "\u4e00" <= c <= "\u9fff"]
    fill = iter(filler_words(n=n_fill, alphabet=cjk, avoid=set(placed) | set(specials), rng=rng))
    rows = rng.integers(0, POOL_ROWS, size=n_lines).tolist()

    char_rows: dict[str, int] = {}
    placed_set = set(placed)
    with open(path, "wb") as f:
        f.write(f"{n_lines} {dim}\n".encode("ascii"))
        for start in range(0, n_lines, WRITE_CHUNK):
            parts = []
            for i in range(start, min(start + WRITE_CHUNK, n_lines)):
                tok = tokens[i]
                if tok is None:
                    tok = next(fill)
                elif tok in placed_set:
                    char_rows[tok] = rows[i]
                parts.append(tok.encode("utf-8"))
                parts.append(pool_bytes[rows[i]])
            f.write(b"".join(parts))
    return Generated(path=path, n_lines=n_lines, n_bytes=path.stat().st_size,
                     seconds=time.perf_counter() - started, values=values, char_rows=char_rows)


# -- measuring ----------------------------------------------------------------------------------------
@dataclass
class Measured:
    """One command, run ``len(walls)`` times: wall seconds per run and the largest peak RSS."""

    name: str
    argv: list[str]
    walls: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    stdout: str = ""

    @property
    def wall(self) -> float:
        return min(self.walls)

    def to_dict(self) -> dict:
        return {"argv": self.argv, "wall_s": self.wall, "walls_s": self.walls, "peak_rss_mb": self.peak_rss_mb}


def measure(name: str, argv: list[str], *, repeat: int, log_dir: Path) -> Measured:
    """Run ``argv`` ``repeat`` times; any non-zero exit stops the benchmark with its output."""
    m = Measured(name=name, argv=argv)
    for k in range(repeat):
        wall, rss, out, code = run_child(argv, log=log_dir / f"{name}.{k}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}): {' '.join(argv)}\n{out[-3000:]}")
        m.walls.append(wall)
        m.peak_rss_mb = max(m.peak_rss_mb, rss)  # the worst run: memory is the conservative side
        m.stdout = out
        print(f"  {name:<14} run {k + 1}/{repeat}: {wall:8.3f} s  {rss:8.1f} MB", flush=True)
    return m


def embgraft_argv() -> list[str]:
    """The installed console script when it sits beside this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("embgraft")
    return [str(script)] if script.exists() else [sys.executable, "-m", "embgraft"]


# -- checking -----------------------------------------------------------------------------------------
def check_graft_output(out: Path, *, gen: Generated, expect_all: bool) -> int:
    """Every vocabulary character placed in the file must be found exactly, with the generated
    vector bit for bit; with ``expect_all`` every vocabulary character must have been placed.
    Returns the number of rows checked."""
    from safetensors.numpy import load_file

    weights = load_file(str(out / "embedding.safetensors"))["embedding"]
    from embgraft.text.vocab import Vocab

    vocab = Vocab.load(out / "vocab.txt")
    tokens = vocab.tokens
    methods = {}
    with open(out / "provenance.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            methods[int(parts[0])] = parts[2]
    if weights.shape != (len(tokens), gen.values.shape[1]):
        raise SystemExit(f"graft output has shape {weights.shape}, expected ({len(tokens)}, {gen.values.shape[1]})")
    checked, missing, wrong = 0, [], []
    for i, tok in enumerate(tokens):
        row = gen.char_rows.get(tok)
        if row is None:
            if expect_all and tok not in vocab.specials:
                missing.append(tok)
            continue
        if methods.get(i) != "exact":
            missing.append(tok)
        elif not np.array_equal(weights[i], gen.values[row]):
            wrong.append(tok)
        checked += 1
    if wrong or missing or not checked:
        raise SystemExit(
            f"graft output is wrong: {len(wrong)} rows differ from the file (e.g. {wrong[:5]}), "
            f"{len(missing)} characters of the file not found exactly (e.g. {missing[:5]}), "
            f"{checked} rows checked")
    return checked


def check_gensim_output(stdout: str, *, gen: Generated, n_vocab_chars: int) -> int:
    """gensim must have loaded every line and found every vocabulary character (all of them
    are in the big file) with the right vector."""
    result = json.loads(stdout.strip().splitlines()[-1])
    if result["n_keys"] != gen.n_lines or result["n_found"] != n_vocab_chars:
        raise SystemExit(f"gensim loaded {result['n_keys']} keys and found {result['n_found']} characters; "
                         f"expected {gen.n_lines} and {n_vocab_chars}")
    for ch, vec in result["sample"].items():
        if not np.allclose(np.asarray(vec, np.float32), gen.values[gen.char_rows[ch]], rtol=0, atol=1e-6):
            raise SystemExit(f"gensim's vector for {ch!r} differs from the generated one")
    return result["n_found"]


# -- the benchmark -----------------------------------------------------------------------------------
def ratio_status(name: str, value: float) -> bool:
    op, target, _ = TARGETS[name]
    return value >= target if op == ">=" else value <= target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000, help="data lines in the big file (default 1,000,000)")
    p.add_argument("--dim", type=int, default=200, help="vector width (default 200, as Tencent)")
    p.add_argument("--workdir", type=Path, help="where the files go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the generated files and outputs")
    p.add_argument("--repeat", type=int, default=3, help="runs of each fast command, best wall kept (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default {DEFAULT_DATA})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-gensim", action="store_true", help="time the graft and wc only (no ratios against gensim)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.lines < SMALL_LINES or args.dim < 1:
        p.error(f"need --repeat >= 1, --lines >= {SMALL_LINES} and --dim >= 1")

    train = args.data / "thucnews-10k" / "train.txt"
    subset = args.data / "pretrained" / "tencent-char-200d.txt"
    for f in (train, subset):
        if not f.is_file():
            p.error(f"missing {f}: point --data at the shared data folder")
    if not args.skip_gensim:
        try:
            import gensim  # noqa: F401  -- fail now, not after generating 2 GB
        except ImportError:
            p.error("gensim is not installed: pip install 'embgraft[bench]', or pass --skip-gensim")

    made_workdir = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="embgraft-bench-")) if made_workdir else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    big_path, small_path = work / "tencent-like.txt", work / "tencent-like-small.txt"
    made: list[Path] = []
    try:
        return _run(args, work=work, train=train, subset=subset, big_path=big_path,
                    small_path=small_path, made=made)
    finally:
        if not args.keep:
            if made_workdir:
                shutil.rmtree(work, ignore_errors=True)
            else:  # a directory the user named: remove only what this run made
                for path in made:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        else:
            print(f"kept {work}")


def _run(args, *, work: Path, train: Path, subset: Path, big_path: Path, small_path: Path,
         made: list[Path]) -> int:
    vchars = vocab_chars(train)
    extra = [c for c in source_chars(subset) if c not in set(vchars)]
    chars = vchars + extra  # vocabulary characters first: the small file keeps a share of them
    # The small file keeps the big file's density of wanted lines, so subtracting its time
    # removes the fixed start-up, not work that grows with the hits.
    n_small_chars = max(1, round(len(chars) * SMALL_LINES / args.lines))

    print(f"generating {args.lines:,} lines x {args.dim} dims in {work} ...", flush=True)
    made.append(big_path)
    big = generate(big_path, n_lines=args.lines, dim=args.dim, chars=chars, n_chars=len(chars), seed=args.seed)
    made.append(small_path)
    small = generate(small_path, n_lines=SMALL_LINES, dim=args.dim, chars=chars, n_chars=n_small_chars,
                     seed=args.seed + 1)
    print(f"  {big.n_lines:,} lines, {big.n_bytes / 1e9:.2f} GB in {big.seconds:.1f} s; "
          f"{len(chars):,} characters placed ({len(vchars):,} in the THUCNews vocabulary)", flush=True)

    chars_json = work / "vocab-chars.json"
    made.append(chars_json)
    chars_json.write_text(json.dumps(vchars, ensure_ascii=False), encoding="utf-8")
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    made.append(logs)
    out_big, out_small = work / "graft-out", work / "graft-out-small"
    made += [out_big, out_small]

    # --format tsv: train.txt is text<TAB>label, and as plain .txt its label digits would be
    # counted as characters of the text.
    def graft_argv(src: Path, out: Path) -> list[str]:
        return [*embgraft_argv(), "graft", "--source", str(src), "--corpus", str(train), "--format", "tsv",
                "--level", "char", "--out", str(out), "--force", "--no-progress"]

    print("timing (each a separate process; best wall of the runs, largest peak RSS):", flush=True)
    results: dict[str, Measured] = {}
    results["wc -l"] = measure("wc -l", ["wc", "-l", str(big_path)], repeat=args.repeat, log_dir=logs)
    n_wc = int(results["wc -l"].stdout.split()[0])
    if n_wc != big.n_lines + 1:
        raise SystemExit(f"wc -l counted {n_wc} lines, expected {big.n_lines + 1}")
    results["graft 2k"] = measure("graft 2k", graft_argv(small_path, out_small), repeat=args.repeat, log_dir=logs)
    check_graft_output(out_small, gen=small, expect_all=False)
    results["graft"] = measure("graft", graft_argv(big_path, out_big), repeat=args.repeat, log_dir=logs)
    n_checked = check_graft_output(out_big, gen=big, expect_all=True)
    print(f"  graft output checked: {n_checked:,} rows equal the file's vectors bit for bit", flush=True)

    gensim_note = None
    if not args.skip_gensim:
        # Stock gensim on the small file (it holds the same whitespace tokens): does it cope?
        wall, _, out, code = run_child([sys.executable, "-c", _GENSIM_CHILD, str(small_path), str(chars_json),
                                        "stock", str(args.dim)], log=logs / "gensim-stock.log")
        mode = "stock"
        if code != 0:
            error = json.loads(out.strip().splitlines()[-1]).get("error", out[-300:]) if code == 3 else out[-300:]
            gensim_note = (f"stock gensim cannot read this file (tokens with an ASCII space): {error}; "
                           "timed with its line parser splitting from the right instead (same work)")
            print(f"  note: {gensim_note}", flush=True)
            mode = "patched"
        results["gensim"] = measure("gensim", [sys.executable, "-c", _GENSIM_CHILD, str(big_path), str(chars_json),
                                               mode, str(args.dim)], repeat=1, log_dir=logs)
        results["gensim"].argv[2] = "<load_word2vec_format + lookup script>"
        check_gensim_output(results["gensim"].stdout, gen=big, n_vocab_chars=len(vchars))

    # -- report ---------------------------------------------------------------------------------
    g, s, w = results["graft"], results["graft 2k"], results["wc -l"]
    own = g.wall - s.wall
    ratios = {"own_time_vs_wc": own / w.wall}
    if "gensim" in results:
        ratios["speed_vs_gensim"] = results["gensim"].wall / g.wall
        ratios["rss_share_of_gensim"] = g.peak_rss_mb / results["gensim"].peak_rss_mb
    print()
    print(f"{big.n_lines:,} lines x {args.dim} dims, {big.n_bytes / 1e9:.2f} GB "
          f"(page cache warm), vocabulary {len(vchars):,} characters")
    print(f"{'command':<10} {'wall s':>9} {'peak RSS MB':>12}")
    for name in ("graft", "graft 2k", "gensim", "wc -l"):
        if name in results:
            print(f"{name:<10} {results[name].wall:>9.3f} {results[name].peak_rss_mb:>12.1f}")
    print(f"graft own time (graft - graft 2k): {own:.3f} s")
    print()
    all_pass = True
    for name, value in ratios.items():
        op, target, what = TARGETS[name]
        ok = ratio_status(name, value)
        all_pass &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:<20} {value:8.3f}  (target {op} {target:g}: {what})")

    if args.json:
        figures = {
            "lines": big.n_lines, "dim": args.dim, "file_bytes": big.n_bytes,
            "generation_s": big.seconds, "vocab_chars": len(vchars), "rows_checked": n_checked,
            "commands": {k: v.to_dict() for k, v in results.items()},
            "graft_own_s": own,
            "ratios": {k: {"value": v, "target": TARGETS[k][1], "op": TARGETS[k][0],
                           "pass": ratio_status(k, v)} for k, v in ratios.items()},
            "gensim_note": gensim_note,
            "python": sys.version.split()[0], "cpus": os.cpu_count(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
