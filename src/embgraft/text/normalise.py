"""Normalisation rules used for *matching only*: the user's vocabulary is never changed.

A rule maps a token to the form the source is likelier to hold. ``variants`` tries each rule
alone, then each ordered combination (``nfkc+lower`` turns full-width ``Ａ`` into ``a``), then
the same rules backwards: the *source* may hold the unnormalised form (a half-width ``,`` in the
corpus, a full-width ``，`` in the vectors; ``国`` in the corpus, ``國`` in a traditional source).
Going backwards keeps the one-pass scan: we ask the file for a few more keys instead of
normalising each of its millions of tokens.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from itertools import combinations
from typing import Callable, Iterator, Sequence

from embgraft.errors import ConfigError


def _nfkc(token: str) -> str:
    return unicodedata.normalize("NFKC", token)  # full/half width, compatibility forms


def _lower(token: str) -> str:
    return token.lower()


@lru_cache(maxsize=1)
def _opencc_t2s() -> Callable[[str], str] | None:
    try:
        import opencc  # the official binding (pip install opencc) ...
    except ImportError:
        try:
            import opencc_python_reimplemented as opencc  # type: ignore[no-redef]  # ... or this one
        except ImportError:
            return None
    for config in ("t2s", "t2s.json"):
        try:
            return opencc.OpenCC(config).convert
        except Exception:  # the two bindings name their configs differently
            continue
    return None


def _t2s(token: str) -> str:
    convert = _opencc_t2s()
    return token if convert is None else convert(token)


@lru_cache(maxsize=1)
def _opencc_s2t() -> Callable[[str], str] | None:
    if _opencc_t2s() is None:
        return None
    try:
        import opencc
    except ImportError:
        import opencc_python_reimplemented as opencc  # type: ignore[no-redef]
    for config in ("s2t", "s2t.json"):
        try:
            return opencc.OpenCC(config).convert
        except Exception:
            continue
    return None


_HALF_TO_FULL = {c: c + 0xFEE0 for c in range(0x21, 0x7F)} | {0x20: 0x3000}


def _widen(token: str) -> str:
    """Inverse of NFKC's width folding: ASCII to its full-width form."""
    return token.translate(_HALF_TO_FULL)


def _s2t(token: str) -> str:
    convert = _opencc_s2t()
    return token if convert is None else convert(token)


# rule name -> function; the order of a user's rule list is the order variants are tried
RULES: dict[str, Callable[[str], str]] = {"nfkc": _nfkc, "lower": _lower, "t2s": _t2s}
# rule name -> (label, function) for the forms a source may hold that the rule would have
# mapped to the token
INVERSES: dict[str, tuple[tuple[str, Callable[[str], str]], ...]] = {
    "nfkc": (("widen", _widen),),
    "lower": (("upper", str.upper), ("capitalize", str.capitalize)),
    "t2s": (("s2t", _s2t),),
}

# rules that need an optional package, and the package to install
RULE_EXTRAS = {"t2s": ("opencc", "pip install 'embgraft[zh]'  (OpenCC)")}


def check_rules(rules: Sequence[str]) -> list[str]:
    """Problems with a rule list, as messages (empty when fine)."""
    return [f"unknown normalisation rule {r!r} (known: {', '.join(RULES)})" for r in rules
            if r not in RULES]


def unavailable_rules(rules: Sequence[str]) -> dict[str, str]:
    """Rules whose optional package is missing -> how to install it."""
    out = {}
    for r in rules:
        if r == "t2s" and _opencc_t2s() is None:
            out[r] = RULE_EXTRAS[r][1]
    return out


def variants(token: str, rules: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(rule label, form) for every ordered combination of ``rules``, shortest combinations
    first, then the inverse forms (``widen``, ``upper``, ``capitalize``, ``s2t``), skipping
    forms already produced."""
    if unknown := check_rules(rules):
        raise ConfigError("; ".join(unknown))
    seen = {token}
    applied: dict[tuple[str, str], str] = {}  # (rule, form) -> result: most rules leave most forms as they are
    for n in range(1, len(rules) + 1):
        for combo in combinations(rules, n):
            form = token
            for rule in combo:
                key = (rule, form)
                if key not in applied:
                    applied[key] = RULES[rule](form)
                form = applied[key]
            if form not in seen:
                seen.add(form)
                yield "+".join(combo), form
    for rule in rules:
        for label, inverse in INVERSES[rule]:
            form = inverse(token)
            if form not in seen:
                seen.add(form)
                yield label, form
