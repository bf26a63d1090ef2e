"""Labelled data for training: read, check, split, encode once, batch by length.

The path of a text: ``read_examples`` (file -> texts, string labels, line numbers) ->
``LabelSet.encode`` (labels -> ids, an unseen label is ``file:line``) -> ``TextEncoder``
(the graft's ``Recipe`` + vocabulary, plus n-gram rows for bags -> token ids) -> ``EncodedSet``
(one padded int matrix, kept) -> ``batches`` (length-bucketed, dynamically padded tensors).

Texts are tokenised through the recipe saved with the graft, never through flags of their own,
so that training and serving cannot drift apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Union

import numpy as np

from embgraft.corpus import iter_records
from embgraft.errors import ConfigError, MalformedFileError

PathLike = Union[str, "os.PathLike[str]"]
ON_BAD_ROW = ("error", "skip")
_N_SKIPPED_SAMPLES = 10


@dataclass
class Examples:
    """Texts with their string labels and the file:line each came from."""

    texts: list[str]
    labels: list[str]
    lines: list[int]
    path: str = "<memory>"
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)  # "file:line: problem", the first few

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int]) -> "Examples":
        index = list(index)
        return Examples([self.texts[i] for i in index], [self.labels[i] for i in index],
                        [self.lines[i] for i in index], self.path)

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"


def read_examples(
    path: PathLike,
    *,
    fmt: str | None = None,
    text_column: int | str | None = None,
    label_column: int | str | None = None,
    on_bad_row: str = "error",
) -> Examples:
    """Read every ``(text, label)`` of ``path`` (TSV ``text<TAB>label``, CSV, JSONL).

    A record with no label or an empty text raises ``MalformedFileError`` naming file and line;
    with ``on_bad_row="skip"`` it is left out and counted in ``n_skipped``.
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ConfigError(f"on_bad_row must be one of {list(ON_BAD_ROW)}, not {on_bad_row!r}")
    ex = Examples([], [], [], str(path))
    for line_no, text, label in iter_records(path, fmt=fmt, text_column=text_column,
                                             label_column=label_column):
        label = None if label is None else label.strip()
        problem = ("no label" if not label else "empty text" if not text.strip() else None)
        if problem is None:
            ex.texts.append(text)
            ex.labels.append(label)
            ex.lines.append(line_no)
            continue
        if on_bad_row == "error":
            hint = "" if problem == "empty text" else " (label column missing or empty)"
            raise MalformedFileError(path, line_no, problem + hint + "; --on-bad-row skip leaves such rows out")
        ex.n_skipped += 1
        if len(ex.skipped) < _N_SKIPPED_SAMPLES:
            ex.skipped.append(f"{path}:{line_no}: {problem}")
    if not ex.texts:
        raise MalformedFileError(path, None, "no labelled examples" + (
            f" ({ex.n_skipped} bad rows skipped)" if ex.n_skipped else ""))
    return ex


def _natural_key(label: str) -> tuple:
    # "2" before "10"; numbers before words; otherwise plain string order
    return (0, int(label), "") if re.fullmatch(r"[0-9]+", label) else (1, 0, label)


class LabelSet:
    """Class names in id order. Data labels are strings: a class name, or a class's id written
    as a number when the names come from a classes file (THUCNews: ``0``..``9`` + ``class.txt``)."""

    def __init__(self, names: Sequence[str]) -> None:
        names = [str(n) for n in names]
        problems = [f"class {i} has an empty name" for i, n in enumerate(names) if not n.strip()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"repeated class names: {dupes}")
        if len(names) < 2:
            problems.append(f"a classifier needs at least 2 classes, found {len(names)}: {names}")
        if problems:
            raise ConfigError("invalid classes: " + "; ".join(problems))
        self.names = names
        self._index = {n: i for i, n in enumerate(names)}

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.names == other.names

    @classmethod
    def discover(cls, examples: Examples) -> "LabelSet":
        """The distinct labels of the training data, in natural order (``2`` before ``10``)."""
        return cls(sorted(set(examples.labels), key=_natural_key))

    @classmethod
    def load(cls, path: PathLike) -> "LabelSet":
        """One class name per line (blank lines ignored), ids in line order."""
        with open(path, encoding="utf-8-sig") as f:
            names = [ln.strip() for ln in f if ln.strip()]
        if not names:
            raise MalformedFileError(path, None, "no class names")
        return cls(names)

    def save(self, path: PathLike) -> None:
        from embgraft._fs import atomic_file

        with atomic_file(path, force=True) as f:
            f.write("".join(n + "\n" for n in self.names))

    def id_of(self, label: str) -> int | None:
        i = self._index.get(label)
        if i is None and re.fullmatch(r"[0-9]+", label) and int(label) < len(self.names):
            i = int(label)  # an id standing for a name from the classes file
        return i

    def encode(self, examples: Examples, *, on_bad_row: str = "error") -> tuple[np.ndarray, Examples]:
        """``(n,)`` int64 ids and the examples kept. A label outside the set raises
        ``MalformedFileError`` at its file:line; with ``on_bad_row="skip"`` it is counted."""
        ids, keep = [], []
        for i, label in enumerate(examples.labels):
            j = self.id_of(label)
            if j is not None:
                ids.append(j)
                keep.append(i)
                continue
            shown = ", ".join(self.names[:12]) + (", ..." if len(self.names) > 12 else "")
            problem = f"label {label!r} is not one of the {len(self.names)} training classes ({shown})"
            if on_bad_row == "error":
                raise MalformedFileError(examples.path, examples.lines[i], problem)
            examples.n_skipped += 1
            if len(examples.skipped) < _N_SKIPPED_SAMPLES:
                examples.skipped.append(f"{examples.where(i)}: {problem}")
        if len(keep) == len(examples):
            return np.asarray(ids, dtype=np.int64), examples
        kept = examples.subset(keep)
        kept.n_skipped, kept.skipped = examples.n_skipped, examples.skipped
        return np.asarray(ids, dtype=np.int64), kept


def stratified_split(examples: Examples, fractions: Sequence[float], *, seed: int = 0) -> list[Examples]:
    """Split into ``len(fractions)`` stratified parts (e.g. ``0.8, 0.1, 0.1``), reproducible by seed."""
    from sklearn.model_selection import train_test_split

    fractions = [float(f) for f in fractions]
    if len(fractions) not in (2, 3) or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be 2 or 3 positive numbers summing to 1, not {fractions}")
    idx = np.arange(len(examples))
    labels = np.asarray(examples.labels)
    parts, rest, rest_share = [], idx, 1.0
    for f in fractions[:-1]:
        take = f / rest_share
        if take >= 1.0:
            raise ConfigError(f"split fractions {fractions} leave nothing for the last part")
        try:
            a, rest = train_test_split(rest, train_size=take, random_state=seed, stratify=labels[rest])
        except ValueError as e:  # a class too small to stratify
            raise ConfigError(f"cannot split {examples.path} {fractions}: {e}") from None
        parts.append(np.sort(a))
        rest_share -= f
    parts.append(np.sort(rest))
    return [examples.subset(p) for p in parts]


def stratified_subset(examples: Examples, fraction: float, *, seed: int = 0) -> Examples:
    """A stratified ``fraction`` of ``examples`` (learning curves, the 10 % benchmark)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"train fraction must be in (0, 1], not {fraction}")
    if fraction == 1:
        return examples
    return stratified_split(examples, [fraction, 1 - fraction], seed=seed)[0]


# --- encoding ----------------------------------------------------------------------------------


def ngram_token(pieces: Sequence[str], level: str) -> str:
    """The vocabulary entry of an n-gram: characters joined as they are, words with a space."""
    return ("" if level == "char" else " ").join(pieces)


class TextEncoder:
    """Text -> token ids through a recipe and a vocabulary.

    With ``ngrams`` > 1, the ids of the text's 2..n-grams that the vocabulary holds follow the
    token ids (for bags, where order does not matter; textcnn tells them apart by id, as n-gram
    rows follow the token rows); n-grams are built from the tokens *before* the ``max_len`` cut
    so a bag sees the whole text. With ``words``, the ids of the text's jieba words longer than
    ``ngrams`` characters that the vocabulary holds come last (see ``embgraft.ngrams``).
    """

    def __init__(self, vocab, recipe, *, ngrams: int = 1, words: bool = False) -> None:
        from embgraft.ngrams import word_splitter

        self.vocab = vocab
        self.recipe = recipe
        self.ngrams = ngrams
        self.tokenize = recipe.tokenizer()
        self.split_words = word_splitter(ngrams, recipe) if words else None

    def tokens(self, text: str) -> list[str]:
        return self.tokenize(text)

    def encode(self, text: str) -> list[int]:
        toks = self.tokenize(text)
        ids = self.vocab.encode(toks[: self.recipe.max_len] if self.recipe.max_len else toks)
        if self.ngrams > 1:
            index, level = self.vocab._index, self.recipe.level
            for n in range(2, self.ngrams + 1):
                for i in range(len(toks) - n + 1):
                    j = index.get(ngram_token(toks[i:i + n], level))
                    if j is not None:
                        ids.append(j)
        if self.split_words is not None:
            index = self.vocab._index
            ids.extend(j for j in map(index.get, self.split_words(text)) if j is not None)
        return ids


@dataclass
class EncodedSet:
    """``ids``: (n, max_len) int64, right-padded with ``pad_id``; ``lengths``: (n,); ``labels``: (n,)."""

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)


def encode(texts: Sequence[str], labels: np.ndarray, encoder: TextEncoder, *, min_len: int = 1) -> EncodedSet:
    """Encode every text once. A text left with no known token keeps one ``<unk>`` so no row is
    empty; ``min_len`` pads short texts (a convolution needs at least its width)."""
    seqs = [encoder.encode(t) or [encoder.vocab.unk_id] for t in texts]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max(initial=0)), min_len)
    ids = np.full((len(seqs), width), encoder.vocab.pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return EncodedSet(ids, lengths, np.asarray(labels, dtype=np.int64), encoder.vocab.pad_id)


def batch_order(lengths: np.ndarray, *, batch_size: int, shuffle: bool, seed: int, epoch: int,
                bucket: int = 50) -> list[np.ndarray]:
    """Index batches for one epoch. Shuffled: examples are shuffled, sorted by length inside
    windows of ``bucket`` batches (so padding is small but batches still vary), and the batches
    shuffled again; ``bucket=1`` gives plain shuffled batches. The order depends only on
    ``(seed, epoch)``, which makes resuming exact."""
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    window = batch_size * bucket
    for s in range(0, n, window):
        chunk = perm[s:s + window]
        perm[s:s + window] = chunk[np.argsort(lengths[chunk], kind="stable")]
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def batches(data: EncodedSet, order: list[np.ndarray], *, min_len: int = 1, multiple: int = 1) -> Iterator[tuple]:
    """Yield ``(ids (B, T) int64 tensor, labels (B,) int64 tensor, index (B,))`` with ``T`` the
    longest text of the batch (at least ``min_len``), rounded up to a ``multiple``."""
    import torch

    for idx in order:
        width = max(int(data.lengths[idx].max()), min_len)
        width = -(-width // multiple) * multiple
        ids = data.ids[idx, :width]
        if ids.shape[1] < width:  # rounded past the longest text of the whole set
            ids = np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=data.pad_id)
        yield torch.from_numpy(np.ascontiguousarray(ids)), torch.from_numpy(data.labels[idx]), idx
