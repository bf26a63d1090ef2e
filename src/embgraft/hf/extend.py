"""Extend a transformer's vocabulary: new tokens in its tokenizer, new rows in its embedding.

Each new token's input row (and output row, where the head is not tied to the input) starts as
the mean of the rows of the pieces the *old* tokenizer split it into -- for a Chinese word in
BERT-Chinese, its characters' standalone rows (see :class:`SourceTokenizer.pieces`). Text the old
tokenizer only knows as its unknown token gives no piece (the report lists it); a token with no
usable piece (every piece ``[UNK]``) starts as the mean of all old rows. Rows added only
to reach ``pad_to_multiple_of`` get the same mean. The result is an ordinary checkpoint that
``AutoTokenizer``/``AutoModel`` load as usual, plus ``extend_report.json``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from embgraft.console import format_table
from embgraft.errors import CheckpointError, ConfigError, MalformedFileError
from embgraft.files import OutputKind, atomic_dir, check_writable, write_json
from embgraft.hf import import_transformers, library_bars
from embgraft.hf.repository import Repository
from embgraft.hf.tokenizer import SourceTokenizer
from embgraft.text.vocab import Vocab

REPORT_FILE = "extend_report.json"
METHODS = ("mean-of-pieces", "mean-of-all")
EXTENDED = OutputKind("extended checkpoint", directory=True, marker=REPORT_FILE)
# auto classes tried, in order, for an architecture that only the checkpoint's own code knows
_REMOTE_AUTO_CLASSES = ("AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModelForSeq2SeqLM", "AutoModel")


@dataclass
class AddedRow:
    """One token added: its new id, the old pieces it was built from and how."""

    token: str
    id: int
    method: str  # one of METHODS
    pieces: list[str] = field(default_factory=list)  # readable labels, as in graft provenance
    piece_ids: list[int] = field(default_factory=list)
    count: int | None = None  # corpus frequency, when chosen from a corpus
    unknown: list[str] = field(default_factory=list)  # text the old tokenizer only knew as its unknown token


@dataclass
class ExtendReport:
    model: str
    out: str
    n_tokens_before: int
    n_tokens_after: int
    rows_before: int
    rows_after: int
    pad_to_multiple_of: int | None
    output_head: str  # "tied" (shares the input rows), "initialised" (own rows, set too), "none", ...
    added: list[AddedRow]
    skipped: list[tuple[str, str]]  # (token, why it was not added)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the tokenizer does to text before splitting it

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [list(s) for s in self.skipped]
        d["methods"] = {m: sum(1 for a in self.added if a.method == m) for m in METHODS}
        return d

    def table(self) -> str:
        """What the CLI prints: one line per added token, then the totals."""
        rows = [("token", "id", "method", "pieces")]
        rows += [(a.token, str(a.id), a.method, " ".join(a.pieces + [f"({u}: unknown)" for u in a.unknown]) or "-")
                 for a in self.added]
        lines = format_table(rows, "lrll")
        by = self.to_dict()["methods"]
        lines.append(f"added {len(self.added)} tokens ({', '.join(f'{n} {m}' for m, n in by.items())}); "
                     f"tokenizer {self.n_tokens_before:,} -> {self.n_tokens_after:,}, "
                     f"embedding rows {self.rows_before:,} -> {self.rows_after:,}"
                     + (f" (multiple of {self.pad_to_multiple_of})" if self.pad_to_multiple_of else "")
                     + f"; output head {self.output_head}")
        lines += [f"note: {n}" for n in self.notes]
        if self.skipped:
            sample = "; ".join(f"{t} ({why})" for t, why in self.skipped[:10])
            lines.append(f"skipped {len(self.skipped)}: {sample}" + (" ..." if len(self.skipped) > 10 else ""))
        return "\n".join(lines)


def read_token_file(path: str | os.PathLike) -> list[str]:
    """One token per line (UTF-8); blank lines and surrounding whitespace ignored."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as exc:
        raise MalformedFileError(path, None, f"not UTF-8 text ({exc.reason})") from None


def _load_model(directory: Path, *, trust_remote_code: bool):
    """The checkpoint's own architecture (so a task head is kept and saved), never a bare AutoModel
    in its place."""
    transformers = import_transformers("embgraft extend")

    try:
        config = transformers.AutoConfig.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{directory}: cannot read the model config ({exc})") from None
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else transformers.AutoModel
    if cls is None:
        auto_map = getattr(config, "auto_map", None) or {}
        name = next((n for n in _REMOTE_AUTO_CLASSES if n in auto_map), None)
        if not trust_remote_code or name is None:
            raise ConfigError(f"architecture {arch!r} is not part of transformers; it needs the checkpoint's "
                              "own code: pass --trust-remote-code (trust_remote_code=True) if you trust it")
        cls = getattr(transformers, name)
    kwargs = {"trust_remote_code": True} if trust_remote_code else {}
    try:
        # dtype="auto": a bf16 checkpoint stays bf16 rather than doubling in size (dtype= needs
        # transformers >= 4.56, the minimum the hf extra declares; older releases call it torch_dtype)
        return cls.from_pretrained(str(directory), dtype="auto", **kwargs)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{directory}: cannot load the model ({exc})") from None


def _choose(view: SourceTokenizer, candidates: Iterable[tuple[str, int | None]], *, top: int | None,
            skipped: list[tuple[str, str]]) -> list[tuple[str, int | None]]:
    """Candidates the tokenizer splits, in order, at most ``top``; the rest go to ``skipped``."""
    chosen: list[tuple[str, int | None]] = []
    seen: set[str] = set()
    for token, count in candidates:
        if top is not None and len(chosen) >= top:
            break
        if token in seen:
            continue
        seen.add(token)
        if any(ch.isspace() for ch in token):
            skipped.append((token, "contains whitespace"))
        elif token in view.vocab or view.exact_id(token) is not None:
            skipped.append((token, "already in the vocabulary"))
        else:
            ids = view.encode_ids(token)
            if len(ids) == 1 and ids[0] != view.unk_id:
                skipped.append((token, "already a single token"))
            else:
                chosen.append((token, count))
    return chosen


def _corpus_candidates(corpus, *, level: str, fmt, text_column, user_dict) -> list[tuple[str, int]]:
    """Corpus tokens by descending frequency, those with at least one letter or ideograph
    (numbers and punctuation make poor vocabulary entries)."""
    vocab = Vocab.from_corpus(corpus, level=level, fmt=fmt, text_column=text_column, user_dict=user_dict)
    specials = set(vocab.specials)
    return [(t, c) for t, c in zip(vocab.tokens, vocab.counts)
            if t not in specials and any(ch.isalpha() for ch in t)]


def extend(
    model: str | os.PathLike,
    *,
    out: str | os.PathLike,
    tokens: Sequence[str] | None = None,
    corpus: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    top: int | None = None,
    level: str = "word",
    fmt: str | None = None,
    text_column: int | str | None = None,
    user_dict: str | os.PathLike | None = None,
    pad_to_multiple_of: int | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    force: bool = False,
    progress: bool = True,
) -> ExtendReport:
    """Add ``tokens`` (or the ``top`` most frequent ``level`` tokens of ``corpus`` that the
    tokenizer splits) to ``model`` (a directory or hub id) and save the result in ``out``.

    The input embedding goes from ``(rows_before, hidden)`` to ``(rows_after, hidden)``, where
    ``rows_after`` covers the new tokenizer and is rounded up to ``pad_to_multiple_of``.
    ``progress`` False keeps transformers' bars (loading, writing) off.
    """
    started = time.perf_counter()
    inputs = [model, *([corpus] if isinstance(corpus, (str, os.PathLike)) else corpus or [])]
    check_writable(out, force=force, kind=EXTENDED, inputs=inputs)  # before loading a large model, not after
    problems = []
    if (tokens is None) == (corpus is None):
        problems.append("give either tokens or a corpus")
    if corpus is not None and (top is None or top < 1):
        problems.append("a corpus needs top >= 1: how many of its most frequent words to add")
    if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
        problems.append(f"pad_to_multiple_of must be >= 1, not {pad_to_multiple_of}")
    if problems:
        raise ConfigError("cannot extend: " + "; ".join(problems))

    import torch
    from transformers import AutoTokenizer

    directory = Repository(model, revision=revision, what="model directory").model_dir(
        trust_remote_code=trust_remote_code)
    try:
        tok = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{model}: cannot load its tokenizer ({exc})") from None
    view = SourceTokenizer.from_transformers(tok)
    skipped: list[tuple[str, str]] = []
    if tokens is not None:
        chosen = _choose(view, ((t.strip(), None) for t in tokens if t.strip()), top=top, skipped=skipped)
    else:
        paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)  # type: ignore[arg-type]
        chosen = _choose(view, _corpus_candidates(paths, level=level, fmt=fmt, text_column=text_column,
                                                  user_dict=user_dict), top=top, skipped=skipped)
    if not chosen:
        sample = "; ".join(f"{t} ({why})" for t, why in skipped[:5])
        raise ConfigError(f"nothing to add: {len(skipped)} candidate(s), none split by the tokenizer"
                          + (f", e.g. {sample}" if sample else ""))
    # pieces come from the tokenizer as it was (afterwards it would return the new token itself),
    # through a copy without padding or truncation: the saved tokenizer keeps its own settings
    pieces = dict(zip((t for t, _ in chosen), view.pieces_batch([t for t, _ in chosen])))
    n_tokens_before = len(tok)

    with library_bars(progress):
        net = _load_model(directory, trust_remote_code=trust_remote_code)
    emb = net.get_input_embeddings()
    rows_before = int(emb.weight.shape[0])
    n_added = tok.add_tokens([_added_token(view, t) for t, _ in chosen])
    if n_added != len(chosen):
        raise CheckpointError(f"the tokenizer took {n_added} of {len(chosen)} new tokens")
    n_tokens_after = len(tok)
    rows_after = max(rows_before, n_tokens_after)
    if pad_to_multiple_of:
        rows_after = -(-rows_after // pad_to_multiple_of) * pad_to_multiple_of
    if rows_after != rows_before:
        # mean_resizing=False: every new row is set below, so HF's covariance fit would be wasted work
        net.resize_token_embeddings(rows_after, mean_resizing=False)
    emb = net.get_input_embeddings()
    head = net.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == emb.weight.data_ptr()
    # only rows of real old tokens go into "mean of all" (not padding rows nobody trained)
    n_real = min(rows_before, n_tokens_before)

    added: list[AddedRow] = []
    new_ids = tok.convert_tokens_to_ids([t for t, _ in chosen])
    with torch.no_grad():
        tables = [emb.weight] + ([head.weight] if head is not None and not tied
                                 and head.weight.shape[0] == rows_after else [])
        biases = [getattr(head, "bias", None)] if head is not None else []
        biases = [b for b in biases if b is not None and b.shape[0] == rows_after]
        means = [_mean_rows(w, n_real) for w in tables + biases]
        for (token, count), tid in zip(chosen, new_ids):
            refs = [r for r in pieces[token] if r.kind != "unknown" and r.id < rows_before]
            ids = [r.id for r in refs]
            for w, mean in zip(tables + biases, means):
                w[tid] = (w[ids].double().mean(dim=0) if ids else mean).to(w.dtype)
            added.append(AddedRow(token=token, id=int(tid), method="mean-of-pieces" if ids else "mean-of-all",
                                  pieces=[r.label for r in refs], piece_ids=ids, count=count,
                                  unknown=[r.label for r in pieces[token] if r.kind == "unknown"]))
        taken = set(new_ids)
        for i in range(rows_before, rows_after):
            if i not in taken:  # padding rows for pad_to_multiple_of: harmless, never-seen means
                for w, mean in zip(tables + biases, means):
                    w[i] = mean.to(w.dtype)
    output_head = ("none" if head is None else "tied" if tied
                   else "initialised" if len(tables) > 1 else "not resized by transformers: left as it was")

    report = ExtendReport(model=str(model), out=str(out), n_tokens_before=n_tokens_before,
                          n_tokens_after=n_tokens_after, rows_before=rows_before, rows_after=rows_after,
                          pad_to_multiple_of=pad_to_multiple_of, output_head=output_head, added=added,
                          skipped=skipped, notes=list(view.notes))
    with atomic_dir(out, force=force, kind=EXTENDED, inputs=inputs) as tmp:
        with library_bars(progress):  # transformers shows a bar for writing the shards too
            net.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        report.seconds = time.perf_counter() - started
        write_json(tmp / REPORT_FILE, report.to_dict())
    return report


def _added_token(view: SourceTokenizer, token: str):
    """An ``AddedToken`` matched in normalised text only when normalising leaves it as it is:
    BERT's normaliser spaces out CJK characters ("北京" -> " 北  京 "), and a SentencePiece
    normaliser prepends "▁", so such tokens are matched in the raw text instead, where they
    appear as written."""
    from tokenizers import AddedToken

    normalizer = view.backend.normalizer
    return AddedToken(token, normalized=normalizer is None or normalizer.normalize_str(token) == token)


def _mean_rows(weight, n_rows: int, *, chunk: int = 8192):
    """Mean of ``weight[:n_rows]`` in float64, ``(hidden,)`` (or ``()`` for a bias), computed in
    chunks so a large bf16 table is never copied whole into float."""
    import torch

    total = torch.zeros(weight.shape[1:], dtype=torch.float64)
    for start in range(0, n_rows, chunk):
        total += weight[start:min(n_rows, start + chunk)].double().sum(dim=0)
    return total / max(n_rows, 1)


__all__ = ["AddedRow", "ExtendReport", "METHODS", "REPORT_FILE", "extend", "read_token_file"]
