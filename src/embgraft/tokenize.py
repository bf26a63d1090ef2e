"""Tokenizers that turn one text into the tokens a vocabulary counts.

``TOKENIZERS`` maps a level name to a class; ``get_tokenizer`` builds one. Each class lists the
options it accepts, so an option given for the wrong level is an error rather than ignored.
jieba is imported only when a ``word`` tokenizer first runs, so char-level work never pays for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

from embgraft.errors import ConfigError, MalformedFileError

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
        # jieba's Tokenizer holds a lock and cannot be pickled (DataLoader workers pickle us).
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
