"""A larger transfer set for distillation: altered copies of the labelled training texts, which the
teachers score and the student learns from their predictions alone (``train --augment N``).

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural Networks") made
each copy by masking words (p 0.1), replacing words by others of the same part of speech (p 0.1)
and, with p 0.25, cutting the copy to an n-gram of it (n uniform in 1..5). Here, per token of the
text's own tokenisation (characters, jieba words or space tokens, as the student sees them):

- **deletion** (p :data:`P_DELETE`) stands in for masking: a static student has no mask token, and an
  unknown one would map every masked token to one row it never learns from labels (EDA's random
  deletion, Wei & Zou 2019);
- **replacement** (p :data:`P_REPLACE`) by one of the token's :data:`N_NEIGHBOURS` nearest rows (cosine)
  among the rows the graft found in its source, in place of a POS tagger: nearness in a pretrained
  table is the closest offline stand-in for "a word of the same kind";
- **a window** (p :data:`P_WINDOW`): the copy becomes a random run of 1..5 tokens (2..10 characters
  at character level, a word being ~1.7 characters on THUCNews titles).

A copy equal to its text, or to an earlier copy, is dropped; a text yields at most ``n_copies``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

P_DELETE = 0.1
P_REPLACE = 0.1
P_WINDOW = 0.25
N_NEIGHBOURS = 5
MAX_NEIGHBOUR_ROWS = 50_000  # the first (most frequent) found rows a replacement may come from
WINDOW_TOKENS = {"char": (2, 10), "word": (1, 5), "space": (1, 5)}


def neighbour_table(tokens: Sequence[str], rows: np.ndarray, found: np.ndarray, *,
                    k: int = N_NEIGHBOURS, max_rows: int = MAX_NEIGHBOUR_ROWS,
                    block: int = 2048) -> dict[str, list[str]]:
    """For each found token (``found`` (n,) bool over ``tokens`` / ``rows`` (n, dim)), its ``k``
    nearest other found tokens by cosine, nearest first; only the first ``max_rows`` found rows
    (vocabularies are ordered by frequency) take part. Computed in blocks of ``block`` rows."""
    index = np.flatnonzero(found)[:max_rows]
    if len(index) < 2:
        return {}
    table = rows[index].astype(np.float32)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    table = table / np.where(norms > 0, norms, 1.0)
    k = min(k, len(index) - 1)
    out: dict[str, list[str]] = {}
    for start in range(0, len(index), block):
        sims = table[start:start + block] @ table.T  # (b, m)
        sims[np.arange(sims.shape[0]), np.arange(start, start + sims.shape[0])] = -np.inf  # never itself
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for r, near in enumerate(top):
            out[tokens[index[start + r]]] = [tokens[index[j]] for j in near]
    return out


def augment(texts: Sequence[str], *, n_copies: int, tokenize: Callable[[str], list[str]], level: str,
            neighbours: dict[str, list[str]] | None = None, seed: int = 0) -> list[str]:
    """Up to ``n_copies`` altered copies of each of ``texts``, in text order (module docstring);
    reproducible by ``seed``. ``tokenize`` and ``level`` are the student's recipe's; without
    ``neighbours`` tokens are deleted and windowed but never replaced."""
    rng = np.random.default_rng([seed, 19])
    glue = " " if level == "space" else ""
    low, high = WINDOW_TOKENS.get(level, (1, 5))
    neighbours = neighbours or {}
    out: list[str] = []
    for text in texts:
        toks = tokenize(text)
        if len(toks) < 2:
            continue
        seen = {glue.join(toks)}
        for _ in range(n_copies * 3):  # a few tries: short texts often give back a copy already made
            if len(seen) > n_copies:
                break
            copy = []
            for tok in toks:
                u = rng.random()
                if u < P_DELETE:
                    continue
                if u < P_DELETE + P_REPLACE and tok in neighbours:
                    tok = neighbours[tok][int(rng.integers(len(neighbours[tok])))]
                copy.append(tok)
            if copy and rng.random() < P_WINDOW:
                n = int(rng.integers(low, high + 1))
                if n < len(copy):
                    start = int(rng.integers(0, len(copy) - n + 1))
                    copy = copy[start:start + n]
            made = glue.join(copy)
            if made.strip() and made not in seen:
                seen.add(made)
                out.append(made)
    return out
