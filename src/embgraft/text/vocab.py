"""The target vocabulary: the user's tokens, their ids and corpus counts.

A built vocabulary puts its specials first (``<pad>`` = 0, ``<unk>`` = 1, then extras such as
``<cls>``) and then tokens by descending count, ties by first appearance, so the same corpus
always gives the same ids. A vocabulary loaded from someone else's plain token list keeps that
file's ids, so use ``pad_id``/``unk_id`` rather than 0 and 1.

Saved as UTF-8 text (never pickle)::

    #embgraft-vocab v1 level=char specials=2 n_corpus_tokens=123 n_oov_tokens=4
    <pad>\t0
    <unk>\t0
    的\t57

Tokens are escaped (``\\t``, ``\\n``, ``\\r``, ``\\\\``) so every line is ``token<TAB>count``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from typing import Iterable, Iterator, Mapping, Sequence, Union

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import atomic_file, escape_field, unescape_field
from embgraft.text.corpus import empty_corpus_error, first_undecodable_line, iter_texts
from embgraft.text.corpus import strip_eol as _strip_eol
from embgraft.text.tokenize import Recipe

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_SPECIALS = ("<pad>", "<unk>")
HEADER_MAGIC = "#embgraft-vocab"
FORMAT_VERSION = "v1"

# Spellings recognised in a header-less token list (BERT's vocab.txt, older projects' files).
PAD_SPELLINGS = ("<pad>", "<PAD>", "[PAD]")
UNK_SPELLINGS = ("<unk>", "<UNK>", "[UNK]")
OTHER_SPECIAL_SPELLINGS = ("<cls>", "<sep>", "<mask>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[MASK]")

_COUNT_RE = re.compile(r"[0-9]+")  # not str.isdigit, which accepts "²"


class Vocab:
    """Tokens in id order, with counts and specials. Treat the lists as read-only.

    ``specials`` lists the special tokens in role order: the padding token, the unknown token,
    then any extras. ``recipe`` is the :class:`~embgraft.text.tokenize.Recipe` texts go through to
    meet these tokens, when known. ``n_corpus_tokens`` counts every token seen in the corpus, including those
    cut by ``min_freq``/``max_size``; ``n_oov_tokens`` counts the ones that fell outside.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        counts: Sequence[int] | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        level: str | None = None,
        n_corpus_tokens: int = 0,
        n_oov_tokens: int = 0,
        recipe: Recipe | None = None,
    ) -> None:
        self.tokens: list[str] = list(tokens)
        self.counts: list[int] = [0] * len(self.tokens) if counts is None else list(counts)
        self.specials: list[str] = list(specials)
        self.level = level
        self.n_corpus_tokens = n_corpus_tokens
        self.n_oov_tokens = n_oov_tokens
        # how texts were tokenised into these tokens (from_corpus knows; a loaded file may not):
        # graft() hands it on to the graft directory's recipe.json
        self.recipe = recipe
        self._index: dict[str, int] = {}
        problems = self._check()
        if problems:
            raise ConfigError("invalid vocabulary: " + "; ".join(problems))
        self.pad_id = self._index[self.specials[0]]
        self.unk_id = self._index[self.specials[1]]

    def _check(self) -> list[str]:
        """Build the token index and return every problem found (empty when all is well)."""
        problems = []
        for i, token in enumerate(self.tokens):
            if not isinstance(token, str) or not token:
                problems.append(f"token {i} is {token!r}, not a non-empty string")
            elif token in self._index:
                problems.append(f"token {token!r} appears twice (ids {self._index[token]} and {i})")
            else:
                self._index[token] = i
        if len(self.counts) != len(self.tokens):
            problems.append(f"{len(self.counts)} counts for {len(self.tokens)} tokens")
        if any(not isinstance(c, int) or c < 0 for c in self.counts):
            problems.append("counts must be non-negative integers")
        if len(self.specials) < 2 or len(set(self.specials)) != len(self.specials):
            problems.append(
                f"specials must be distinct and name at least padding and unknown, got {self.specials}"
            )
        missing = [s for s in self.specials if s not in self._index]
        if missing:
            problems.append(f"specials missing from the tokens: {missing}")
        if self.n_corpus_tokens < 0 or not 0 <= self.n_oov_tokens <= self.n_corpus_tokens:
            problems.append(
                f"need 0 <= n_oov_tokens ({self.n_oov_tokens}) <= n_corpus_tokens ({self.n_corpus_tokens})"
            )
        return problems

    # --- lookup ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def index(self, token: str) -> int:
        """The id of ``token``, or ``unk_id`` when it is not in the vocabulary."""
        return self._index.get(token, self.unk_id)

    def get(self, token: str) -> int | None:
        """The id of ``token``, or None when it is not in the vocabulary."""
        return self._index.get(token)

    def token(self, i: int) -> str:
        """The token with id ``i``."""
        if not 0 <= i < len(self.tokens):
            raise IndexError(f"token id {i} out of range for a vocabulary of {len(self.tokens)}")
        return self.tokens[i]

    def encode(self, text_tokens: Iterable[str]) -> list[int]:
        """Ids for a tokenized text; unknown tokens become ``unk_id``."""
        get, unk = self._index.get, self.unk_id
        return [get(t, unk) for t in text_tokens]

    def is_special(self, token: str) -> bool:
        return token in self.specials

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def _state(self) -> tuple:
        return (
            self.tokens,
            self.counts,
            self.specials,
            self.level,
            self.n_corpus_tokens,
            self.n_oov_tokens,
        )

    def __repr__(self) -> str:
        head = ", ".join(self.tokens[:5]) + (", ..." if len(self.tokens) > 5 else "")
        return f"Vocab(size={len(self)}, level={self.level!r}, specials={self.specials}, tokens=[{head}])"

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        token_lists_or_counter: Iterable[Iterable[str]] | Mapping[str, int],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        extra_specials: Sequence[str] = (),
        level: str | None = None,
        recipe: Recipe | None = None,
    ) -> "Vocab":
        """Build from tokenized texts, or from a token -> count mapping (e.g. a ``Counter``).

        Order: specials, then tokens by descending count; ties keep first appearance (for a
        mapping, its iteration order, which for a ``Counter`` filled from a corpus is the same).
        ``max_size`` counts the whole vocabulary, specials included.
        """
        all_specials = list(specials) + list(extra_specials)
        problems = []
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            problems.append(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (
            isinstance(max_size, bool)
            or not isinstance(max_size, int)
            or max_size <= len(all_specials)
        ):
            problems.append(
                f"max_size must be an integer above the {len(all_specials)} specials, got {max_size!r}"
            )
        if len(specials) < 2:
            problems.append(
                f"specials must name the padding and unknown tokens, got {list(specials)}"
            )
        if len(set(all_specials)) != len(all_specials):
            problems.append(f"specials repeat a token: {all_specials}")
        if problems:
            raise ConfigError("cannot build vocabulary: " + "; ".join(problems))

        if isinstance(token_lists_or_counter, Mapping):
            counter = token_lists_or_counter
        else:
            counter = Counter()
            for tokens in token_lists_or_counter:
                counter.update(tokens)
        if any(c < 0 for c in counter.values()):
            raise ConfigError("cannot build vocabulary: token counts must not be negative")

        special_set = set(all_specials)
        # sorted() is stable, so equal counts keep the counter's (first-appearance) order.
        ranked = sorted(
            ((t, c) for t, c in counter.items() if t not in special_set),
            key=lambda tc: tc[1],
            reverse=True,
        )
        kept = [(t, c) for t, c in ranked if c >= min_freq]
        if max_size is not None:
            kept = kept[: max_size - len(all_specials)]
        n_corpus = sum(counter.values())
        n_in_vocab = sum(c for _, c in kept) + sum(counter.get(s, 0) for s in all_specials)
        return cls(
            all_specials + [t for t, _ in kept],
            counts=[0] * len(all_specials) + [c for _, c in kept],
            specials=all_specials,
            level=level,
            n_corpus_tokens=n_corpus,
            n_oov_tokens=n_corpus - n_in_vocab,
            recipe=recipe,
        )

    @classmethod
    def from_corpus(
        cls,
        paths: PathLike | Iterable[PathLike],
        *,
        level: str = "char",
        fmt: str | None = None,
        text_column: int | str | None = None,
        user_dict: PathLike | None = None,
        min_freq: int = 1,
        max_size: int | None = None,
        extra_specials: Sequence[str] = (),
        progress: bool = False,
        lowercase: bool = False,
        recipe: Recipe | None = None,
    ) -> "Vocab":
        """Tokenize every text of one or more corpus files and build from the counts.

        Texts go through ``recipe``, or, without one, ``Recipe(level, user_dict, lowercase)``
        (``lowercase`` lower-cases each text first); the vocabulary keeps it, so a graft of it
        records how to tokenise."""
        if recipe is None:
            recipe = Recipe(level=level, user_dict=None if user_dict is None else str(user_dict),
                            lowercase=lowercase)
        level = recipe.level
        tokenize = recipe.tokenizer()
        path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        # Open every reader first so a bad format or column fails before a long count.
        readers = [(p, iter_texts(p, fmt=fmt, text_column=text_column)) for p in path_list]
        counter: Counter[str] = Counter()
        for path, texts in readers:
            if progress:
                from tqdm import tqdm

                texts = tqdm(texts, desc=str(path), unit=" texts", disable=None)
            for text in texts:
                counter.update(tokenize(text))
        if not counter:
            raise empty_corpus_error(path_list, fmt=fmt, level=level)
        return cls.build(
            counter,
            min_freq=min_freq,
            max_size=max_size,
            extra_specials=extra_specials,
            level=level,
            recipe=recipe,
        )

    @classmethod
    def from_tokens(
        cls,
        tokens: Iterable[str],
        *,
        counts: Sequence[int] | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        extra_specials: Sequence[str] = (),
        level: str | None = None,
    ) -> "Vocab":
        """A vocabulary of the given tokens, in the given order.

        Specials the list lacks are put in front (shifting the other ids); specials it has keep
        their places. ``counts``, if given, are per token of ``tokens``.
        """
        token_list = list(tokens)
        if counts is not None and len(counts) != len(token_list):
            raise ConfigError(f"{len(counts)} counts given for {len(token_list)} tokens")
        all_specials = list(specials) + list(extra_specials)
        present = set(token_list)
        missing = [s for s in all_specials if s not in present]
        return cls(
            missing + token_list,
            counts=None if counts is None else [0] * len(missing) + list(counts),
            specials=all_specials,
            level=level,
        )

    # --- files -------------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the vocabulary as UTF-8 text (see the module docstring); replaces ``path`` whole."""
        header = [HEADER_MAGIC, FORMAT_VERSION]
        if self.level is not None:
            header.append(f"level={self.level}")
        ids = [self._index[s] for s in self.specials]
        if ids == list(range(len(ids))):
            header.append(f"specials={len(ids)}")  # the usual case: the first N ids
        else:
            header.append("specials=" + ",".join(map(str, ids)))  # ids in role order
        header += [f"n_corpus_tokens={self.n_corpus_tokens}", f"n_oov_tokens={self.n_oov_tokens}"]
        # atomic_file: "\n" line ends on every platform; a half-written file never replaces a good one.
        with atomic_file(path, force=True) as f:
            f.write(" ".join(header) + "\n")
            for token, count in zip(self.tokens, self.counts):
                f.write(f"{escape_field(token)}\t{count}\n")

    @classmethod
    def load(cls, path: PathLike, *, recipe: Recipe | None = None) -> "Vocab":
        """Read a file written by ``save``, or a plain one-token-per-line list; ``recipe`` says
        how texts are tokenised to meet it (a vocabulary file does not record it).

        A plain list keeps its ids; its specials are the padding and unknown tokens it contains
        (``<pad>``/``<unk>``, also spelt ``<PAD>``/``<UNK>`` or ``[PAD]``/``[UNK]``), and it must
        contain both.
        """
        # newline="\n": split only on "\n", so tokens like U+2028 stay whole; "\r\n" is trimmed below.
        try:
            with open(path, encoding="utf-8-sig", newline="\n") as f:
                first = f.readline()
                vocab = cls._load_v1(path, first, f) if first.startswith(HEADER_MAGIC) else \
                    cls._load_plain(path, first, f)
        except UnicodeDecodeError as e:
            raise MalformedFileError(path, first_undecodable_line(path), f"not valid UTF-8 ({e.reason})") from None
        vocab.recipe = recipe
        return vocab

    @classmethod
    def _load_v1(cls, path: PathLike, header_line: str, lines: Iterable[str]) -> "Vocab":
        fields = _strip_eol(header_line).split(" ")
        if len(fields) < 2 or fields[1] != FORMAT_VERSION:
            raise MalformedFileError(
                path, 1, f"unsupported vocab file version {fields[1:2]}; expected {FORMAT_VERSION}"
            )
        meta: dict[str, str] = {}
        for field in fields[2:]:
            key, sep, value = field.partition("=")
            if not sep:
                raise MalformedFileError(path, 1, f"header field {field!r} is not key=value")
            meta[key] = value  # unknown keys are ignored, for newer writers

        tokens: list[str] = []
        counts: list[int] = []
        seen: dict[str, int] = {}
        for line_no, line in enumerate(lines, start=2):
            parts = _strip_eol(line).split("\t")
            if len(parts) != 2:
                raise MalformedFileError(
                    path, line_no, f"expected token<TAB>count, found {len(parts)} field(s)"
                )
            try:
                token = unescape_field(parts[0])
            except ValueError as e:
                raise MalformedFileError(path, line_no, str(e)) from None
            if not _COUNT_RE.fullmatch(parts[1]):
                raise MalformedFileError(
                    path, line_no, f"count {parts[1]!r} is not a non-negative integer"
                )
            if not token:
                raise MalformedFileError(path, line_no, "empty token")
            if token in seen:
                raise MalformedFileError(
                    path, line_no, f"token {token!r} already on line {seen[token]}"
                )
            seen[token] = line_no
            tokens.append(token)
            counts.append(int(parts[1]))

        try:
            spec = meta.get("specials", "2")
            ids = [int(x) for x in spec.split(",")] if "," in spec else list(range(int(spec)))
            n_corpus = int(meta.get("n_corpus_tokens", "0"))
            n_oov = int(meta.get("n_oov_tokens", "0"))
        except ValueError:
            raise MalformedFileError(path, 1, "header numbers must be integers") from None
        if any(not 0 <= i < len(tokens) for i in ids):
            raise MalformedFileError(
                path, 1, f"specials {spec} out of range for {len(tokens)} tokens"
            )
        try:
            return cls(
                tokens,
                counts=counts,
                specials=[tokens[i] for i in ids],
                level=meta.get("level"),
                n_corpus_tokens=n_corpus,
                n_oov_tokens=n_oov,
            )
        except ConfigError as e:
            raise MalformedFileError(path, None, str(e)) from None

    @classmethod
    def _load_plain(cls, path: PathLike, first: str, rest: Iterable[str]) -> "Vocab":
        tokens: list[str] = []
        seen: dict[str, int] = {}
        lines = [first] if first else []
        n_blank = 0  # blank lines are tolerated at the end, where they shift no id
        for line_no, line in enumerate(itertools.chain(lines, rest), start=1):
            token = _strip_eol(line)
            if not token.strip(" \t\r\n\v\f"):
                n_blank += 1
                continue
            if n_blank:
                raise MalformedFileError(
                    path, line_no - n_blank, "empty line in a one-token-per-line vocab file "
                    "(line i names id i-1)"
                )
            if token in seen:
                raise MalformedFileError(
                    path, line_no, f"token {token!r} already on line {seen[token]}"
                )
            seen[token] = line_no
            tokens.append(token)
        pad = next((t for t in tokens if t in PAD_SPELLINGS), None)
        unk = next((t for t in tokens if t in UNK_SPELLINGS), None)
        if pad is None or unk is None:
            lacking = " and ".join(
                name
                for name, tok in (
                    ("a padding token (<pad>)", pad),
                    ("an unknown token (<unk>)", unk),
                )
                if tok is None
            )
            raise MalformedFileError(
                path,
                None,
                f"this plain token list (no {HEADER_MAGIC} header) lacks {lacking}; add the line(s) "
                "to the file, or build it with Vocab.from_tokens, which adds them",
            )
        others = [t for t in tokens if t in OTHER_SPECIAL_SPELLINGS]
        return cls(tokens, specials=[pad, unk, *others])

