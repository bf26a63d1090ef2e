"""Labelled data for training: read, check, split.

The path of a text: ``read_examples`` (file -> texts, string labels, line numbers) ->
``LabelSet.encode`` (labels -> ids, an unseen label is ``file:line``) -> ``encode`` (token ids,
:mod:`embgraft.training.encode`) -> ``batches`` (:mod:`embgraft.training.batches`).

Multi-label data keeps its label cells as read (``a|b`` with a separator, or a JSON list such as
``["a", "b"]``); :func:`label_set` reads a cell as its labels, and ``LabelSet.encode(...,
multi_label=True)`` turns the cells into a multi-hot ``(n, n_classes)`` matrix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import atomic_file
from embgraft.text.corpus import first_undecodable_line, iter_records, plain_text_hint

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
            hint = "" if problem == "empty text" else (plain_text_hint(path, fmt) or " (label column missing or empty)")
            raise MalformedFileError(path, line_no, problem + hint + "; --on-bad-row skip leaves such rows out")
        ex.n_skipped += 1
        if len(ex.skipped) < _N_SKIPPED_SAMPLES:
            ex.skipped.append(f"{path}:{line_no}: {problem}")
    if not ex.texts:
        raise MalformedFileError(path, None, "no labelled examples" + (
            f" ({ex.n_skipped} bad rows skipped)" if ex.n_skipped else ""))
    return ex


def read_unlabelled(path: PathLike, *, fmt: str | None = None, text_column: int | str | None = None) -> Examples:
    """Texts without labels (a plain one-per-line file, or a TSV/CSV/JSONL whose labels are not
    read); an empty text is an error naming file and line, as in labelled data."""
    ex = Examples([], [], [], str(path))
    for line_no, text, _ in iter_records(path, fmt=fmt, text_column=text_column):
        if not text.strip():
            raise MalformedFileError(path, line_no, "empty text")
        ex.texts.append(text)
        ex.labels.append("")
        ex.lines.append(line_no)
    if not ex.texts:
        raise MalformedFileError(path, None, "no texts")
    return ex


def label_set(cell: str, separator: str | None = None) -> list[str] | None:
    """The labels of one label cell: a JSON list (``["a", "b"]``, as JSONL writes one), or the
    cell split at ``separator`` (``a|b``); None when the cell is a single plain label. Labels are
    stripped, repeats dropped, order kept; an empty list stays empty (the caller's error)."""
    cell = cell.strip()
    if cell.startswith("[") and cell.endswith("]"):
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list):
            return list(dict.fromkeys(str(x).strip() for x in value if str(x).strip()))
    if separator and separator in cell:
        return list(dict.fromkeys(x.strip() for x in cell.split(separator) if x.strip()))
    return None


def is_multi_label(examples: "Examples", separator: str | None = None) -> bool:
    """Whether any label cell holds a list of labels (or several, split at ``separator``)."""
    return any(label_set(x, separator) is not None for x in examples.labels)


def labels_of(cell: str, separator: str | None = None) -> list[str]:
    """A cell's labels in a multi-label task: :func:`label_set`, or the plain cell alone."""
    found = label_set(cell, separator)
    return [cell.strip()] if found is None else found


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
    def discover(cls, examples: Examples, *, multi_label: bool = False, separator: str | None = None) -> "LabelSet":
        """The distinct labels of the training data (multi-label: of every cell's labels), in
        natural order (``2`` before ``10``). Labels that mix class ids with names (``3`` and
        ``society``) are refused: without a classes file they would become two classes each."""
        cells = [labels_of(x, separator) if multi_label else [x] for x in examples.labels]
        labels = sorted({y for cell in cells for y in cell}, key=_natural_key)
        ids = [x for x in labels if re.fullmatch(r"[0-9]+", x)]
        if ids and len(ids) < len(labels):
            i, name = next((i, y) for i, cell in enumerate(cells) for y in cell if not re.fullmatch(r"[0-9]+", y))
            raise MalformedFileError(examples.path, examples.lines[i], f"label {name!r} is a name, "
                                     f"but other labels are class ids ({', '.join(ids[:3])}): give --classes "
                                     "to name the ids, or use names throughout")
        return cls(labels)

    @classmethod
    def load(cls, path: PathLike) -> "LabelSet":
        """One class name per line (blank lines ignored), ids in line order."""
        try:
            with open(path, encoding="utf-8-sig") as f:
                names = [ln.strip() for ln in f if ln.strip()]
        except UnicodeDecodeError as e:
            raise MalformedFileError(path, first_undecodable_line(path), f"not valid UTF-8 ({e.reason})") from None
        if not names:
            raise MalformedFileError(path, None, "no class names")
        return cls(names)

    def save(self, path: PathLike) -> None:
        with atomic_file(path, force=True) as f:
            f.write("".join(n + "\n" for n in self.names))

    def top(self, proba: np.ndarray, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each row of ``proba`` (n, n_classes), the ``top_k`` (name, probability) pairs, most
        probable first (ties in id order): what ``predict`` answers, for torch and ONNX alike."""
        k = max(1, min(top_k, proba.shape[1]))
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[(self.names[j], float(p[j])) for j in row] for p, row in zip(proba, top)]

    def above(self, proba: np.ndarray, thresholds: np.ndarray) -> list[list[tuple[str, float]]]:
        """Multi-label: for each row of ``proba`` (n, n_classes) of independent probabilities, the
        (name, probability) pairs at or above each label's threshold (``thresholds`` (n_classes,)),
        most probable first; a text may get none."""
        out = []
        for p in proba:
            hit = np.flatnonzero(p >= thresholds)
            hit = hit[np.argsort(-p[hit], kind="stable")]
            out.append([(self.names[j], float(p[j])) for j in hit])
        return out

    def answer(self, proba: np.ndarray, *, thresholds: np.ndarray | None = None,
               top_k: int = 1) -> list[list[tuple[str, float]]]:
        """What ``predict`` answers for ``proba``, torch and ONNX alike: the label sets at
        ``thresholds`` (multi-label), else the ``top_k`` classes."""
        return self.top(proba, top_k) if thresholds is None else self.above(proba, thresholds)

    def id_of(self, label: str) -> int | None:
        i = self._index.get(label)
        if i is None and re.fullmatch(r"[0-9]+", label) and int(label) < len(self.names):
            i = int(label)  # an id standing for a name from the classes file
        return i

    def encode(self, examples: Examples, *, on_bad_row: str = "error", multi_label: bool = False,
               separator: str | None = None) -> tuple[np.ndarray, Examples]:
        """``(n,)`` int64 ids (multi-label: an ``(n, n_classes)`` float32 multi-hot matrix) and
        the examples kept. A label outside the set, or an empty label set, raises
        ``MalformedFileError`` at its file:line; with ``on_bad_row="skip"`` it is counted."""
        ids, keep = [], []
        shown = ", ".join(self.names[:12]) + (", ..." if len(self.names) > 12 else "")
        for i, label in enumerate(examples.labels):
            cell = labels_of(label, separator) if multi_label else [label]
            found = [self.id_of(y) for y in cell]
            if cell and None not in found:
                if multi_label:
                    row = np.zeros(len(self.names), dtype=np.float32)
                    row[found] = 1.0
                    ids.append(row)
                else:
                    ids.append(found[0])
                keep.append(i)
                continue
            unknown = next((y for y, j in zip(cell, found) if j is None), None)
            problem = ("an empty label set" if unknown is None else
                       f"label {unknown!r} is not one of the {len(self.names)} training classes ({shown})")
            if on_bad_row == "error":
                raise MalformedFileError(examples.path, examples.lines[i], problem)
            examples.n_skipped += 1
            if len(examples.skipped) < _N_SKIPPED_SAMPLES:
                examples.skipped.append(f"{examples.where(i)}: {problem}")
        y = (np.stack(ids) if ids else np.zeros((0, len(self.names)), dtype=np.float32)) if multi_label \
            else np.asarray(ids, dtype=np.int64)
        if len(keep) == len(examples):
            return y, examples
        kept = examples.subset(keep)
        kept.n_skipped, kept.skipped = examples.n_skipped, examples.skipped
        return y, kept


def stratified_split(examples: Examples, fractions: Sequence[float], *, seed: int = 0,
                     stratify: bool = True) -> list[Examples]:
    """Split into ``len(fractions)`` stratified parts (e.g. ``0.8, 0.1, 0.1``), reproducible by seed.
    ``stratify=False`` (multi-label data, whose label combinations are too many to stratify on)
    gives a plain shuffled split of the same sizes."""
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
            a, rest = train_test_split(rest, train_size=take, random_state=seed,
                                       stratify=labels[rest] if stratify else None)
        except ValueError as e:  # a class too small to stratify
            raise ConfigError(f"cannot split {examples.path} {fractions}: {e}") from None
        parts.append(np.sort(a))
        rest_share -= f
    parts.append(np.sort(rest))
    return [examples.subset(p) for p in parts]


def stratified_subset(examples: Examples, fraction: float, *, seed: int = 0, stratify: bool = True) -> Examples:
    """A stratified ``fraction`` of ``examples`` (learning curves, the 10 % benchmark)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"train fraction must be in (0, 1], not {fraction}")
    if fraction == 1:
        return examples
    return stratified_split(examples, [fraction, 1 - fraction], seed=seed, stratify=stratify)[0]
