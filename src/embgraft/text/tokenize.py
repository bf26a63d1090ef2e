"""Tokenizers that turn one text into the tokens a vocabulary counts.

``TOKENIZERS`` maps a level name to a class; ``get_tokenizer`` builds one. Each class lists the
options it accepts, so an option given for the wrong level is an error rather than ignored.
jieba is imported only when a ``word`` tokenizer first runs, so char-level work never pays for it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import atomic_output, read_json, write_json

Tokenizer = Callable[[str], list[str]]


class CharTokenizer:
    """Every character is a token; whitespace (including U+3000) is dropped unless kept."""

    options: ClassVar[frozenset[str]] = frozenset({"keep_whitespace"})

    def __init__(self, *, keep_whitespace: bool = False) -> None:
        self.keep_whitespace = keep_whitespace

    def __call__(self, text: str) -> list[str]:
        if self.keep_whitespace:
            return list(text)
        return [ch for ch in text if not ch.isspace()]


class SpaceTokenizer:
    """Tokens are the text's whitespace-separated pieces (``str.split()``)."""

    options: ClassVar[frozenset[str]] = frozenset()

    def __call__(self, text: str) -> list[str]:
        return text.split()


class WordTokenizer:
    """Chinese words by jieba (``lcut`` with HMM), whitespace-only tokens dropped.

    With a user dictionary the tokenizer gets its own ``jieba.Tokenizer``, so the dictionary does
    not leak into jieba's global default (and into other ``WordTokenizer`` objects).
    """

    options: ClassVar[frozenset[str]] = frozenset({"user_dict"})

    def __init__(self, *, user_dict: str | os.PathLike[str] | None = None) -> None:
        if user_dict is not None and not Path(user_dict).is_file():
            raise ConfigError(f"jieba user dictionary not found: {user_dict}")
        self.user_dict = None if user_dict is None else str(user_dict)
        self._lcut: Callable[..., list[str]] | None = None  # built on first use

    def _load(self) -> Callable[..., list[str]]:
        import jieba  # lazy: costs time and memory that char-level runs should not pay

        jieba.setLogLevel(logging.WARNING)  # silence "Building prefix dict ..." on stderr
        if self.user_dict is None:
            return jieba.lcut
        tokenizer = jieba.Tokenizer()
        try:
            tokenizer.load_userdict(self.user_dict)
        except ValueError as e:  # jieba's message already names the line
            raise MalformedFileError(self.user_dict, None, str(e)) from None
        return tokenizer.lcut

    def __call__(self, text: str) -> list[str]:
        if self._lcut is None:
            self._lcut = self._load()
        return [tok for tok in self._lcut(text, HMM=True) if tok and not tok.isspace()]

    def __getstate__(self) -> dict[str, Any]:
        # jieba's Tokenizer holds a lock and cannot be pickled; copies of the tokenizer (copy.deepcopy,
    # multiprocessing) rebuild it on first use.
        return {"user_dict": self.user_dict, "_lcut": None}


TOKENIZERS: dict[str, type] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "space": SpaceTokenizer,
}


def get_tokenizer(
    level: str,
    *,
    user_dict: str | os.PathLike[str] | None = None,
    keep_whitespace: bool = False,
) -> Tokenizer:
    """The tokenizer for ``level`` (one of ``TOKENIZERS``). ``user_dict`` is for ``word`` only."""
    cls = TOKENIZERS.get(level)
    if cls is None:
        raise ConfigError(
            f"unknown tokenizer level {level!r}; choose one of: {', '.join(TOKENIZERS)}"
        )
    given = {"user_dict": user_dict, "keep_whitespace": keep_whitespace}
    options = {name: value for name, value in given.items() if value not in (None, False)}
    wrong = sorted(set(options) - cls.options)
    if wrong:
        raise ConfigError(f"option(s) {', '.join(wrong)} do not apply to tokenizer level {level!r}")
    return cls(**options)


RECIPE_FILE = "recipe.json"
USER_DICT_FILE = "user_dict.txt"


@dataclass(frozen=True)
class Recipe:
    """How a text becomes tokens, recorded next to a vocabulary so that graft, train and predict
    tokenise identically: ``level`` (``char`` | ``word`` | ``space``), the jieba ``user_dict``,
    whether text is ``lowercase``-d first, and ``max_len`` (tokens kept per text; None = all).

    Saved as ``recipe.json``; a user dictionary is copied beside it as ``user_dict.txt`` so the
    directory keeps working when the original file moves.
    """

    level: str = "char"
    user_dict: str | None = None
    lowercase: bool = False
    max_len: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.level not in TOKENIZERS:
            problems.append(f"level must be one of {list(TOKENIZERS)}, not {self.level!r}")
        if self.user_dict is not None and self.level != "word":
            problems.append(f"a jieba user dictionary applies to level 'word', not {self.level!r}")
        if self.max_len is not None and (isinstance(self.max_len, bool) or not isinstance(self.max_len, int)
                                         or self.max_len < 1):
            problems.append(f"max_len must be a positive integer or None, not {self.max_len!r}")
        if problems:
            raise ConfigError("invalid tokenisation recipe: " + "; ".join(problems))

    def tokenizer(self) -> Tokenizer:
        """``text -> tokens``: lower-cases first when asked; does not cut to ``max_len``."""
        base = get_tokenizer(self.level, user_dict=self.user_dict)
        if not self.lowercase:
            return base
        return lambda text: base(text.lower())

    def with_max_len(self, max_len: int | None) -> "Recipe":
        return replace(self, max_len=max_len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``recipe.json`` (and ``user_dict.txt``) into ``directory``."""
        directory = Path(directory)
        d = self.to_dict()
        if self.user_dict is not None:
            target = directory / USER_DICT_FILE
            if Path(self.user_dict).resolve() != target.resolve():
                with atomic_output(target, force=True, directory=False) as tmp:
                    tmp.write_bytes(Path(self.user_dict).read_bytes())
            d["user_dict"] = USER_DICT_FILE
        write_json(directory / RECIPE_FILE, d)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, default_level: str | None = None) -> "Recipe":
        """Read ``recipe.json`` from ``directory``; a directory written before recipes existed
        gets ``Recipe(level=default_level)`` when a level is known, else an error."""
        path = Path(directory) / RECIPE_FILE
        if not path.is_file():
            if default_level is None:
                raise MalformedFileError(path, None, "missing: cannot tell how texts were tokenised")
            return cls(level=default_level)
        d = read_json(path, expect=dict)
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise MalformedFileError(path, None, f"unknown recipe field(s): {', '.join(unknown)}")
        types = {"level": str, "user_dict": (str, type(None)), "lowercase": bool, "max_len": (int, type(None))}
        wrong = [f"{k} is {type(v).__name__}" for k, v in d.items() if not isinstance(v, types[k])]
        if wrong:
            raise MalformedFileError(path, None, "bad recipe field(s): " + ", ".join(wrong))
        if d.get("user_dict"):
            # a bundle's paths stay inside it: the dictionary is always saved beside recipe.json
            base = Path(directory).resolve()
            user = (base / d["user_dict"]).resolve()
            if user.parent != base:
                raise MalformedFileError(path, None, f"user_dict {d['user_dict']!r} is outside {directory}: a recipe "
                                                     f"names its dictionary as {USER_DICT_FILE} beside it")
            d["user_dict"] = str(Path(directory) / user.name)
        try:
            return cls(**d)
        except ConfigError as e:
            raise MalformedFileError(path, None, str(e)) from None
