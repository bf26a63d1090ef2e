"""Integration: the THUCNews character vocabulary grafted from the real Tencent subset."""

import unicodedata
from collections import Counter

import numpy as np
import pytest

from embgraft.grafting.cascade import graft
from embgraft.text.vocab import Vocab


def read_tencent(path):
    rows = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").rsplit(" ", 200)
            rows[parts[0]] = parts[1:]
    return rows


def test_thucnews_char_graft_from_tencent(shared_data):
    train = shared_data / "thucnews-10k" / "train.txt"
    tencent = shared_data / "pretrained" / "tencent-char-200d.txt"
    vocab = Vocab.from_corpus(train, level="char")
    res = graft(vocab, tencent, progress=False)
    file_rows = read_tencent(tencent)

    # every exact row equals the file's vector to the last printed digit
    exact = [i for i, p in enumerate(res.provenance) if p.method == "exact"]
    for i in exact:
        assert [f"{v:.6f}" for v in res.weights[i]] == file_rows[vocab.tokens[i]]
        assert np.array_equal(res.weights[i], np.array(file_rows[vocab.tokens[i]], dtype=np.float64)
                              .astype(np.float32))

    # upper-case Latin letters are filled from their lower-case rows
    upper = [t for t in vocab.tokens if len(t) == 1 and "A" <= t <= "Z"]
    assert upper, "THUCNews headlines contain upper-case letters"
    for t in upper:
        p = res.provenance[vocab.index(t)]
        assert (p.method, p.source_tokens) == ("normalised:lower", (t.lower(),))
        assert [f"{v:.6f}" for v in res.weights[vocab.index(t)]] == file_rows[t.lower()]

    # coverage figures, computed here independently of the library
    counts = Counter()
    for line in train.read_text(encoding="utf-8").splitlines():
        counts.update(ch for ch in line.split("\t")[0] if not ch.isspace())
    n_tokens = sum(counts.values())
    exact_types = [c for c in counts if c in file_rows]
    rep = res.report
    assert rep.n_corpus_tokens == n_tokens
    assert rep.stages["exact"]["n_types"] == len(exact_types) == len(exact)
    assert rep.stages["exact"]["n_tokens"] == sum(counts[c] for c in exact_types)
    assert rep.stages["exact"]["share_tokens"] == pytest.approx(sum(counts[c] for c in exact_types) / n_tokens)
    missing = {c for c in counts if c not in file_rows}
    by_rule = {c for c in missing if unicodedata.normalize("NFKC", c).lower() in file_rows}
    assert set(upper) <= by_rule
    assert rep.stages["normalised"]["n_types"] >= len(by_rule)
    assert sum(rep.stages[s]["n_types"] for s in ("exact", "normalised", "composed", "init")) == len(counts)
    assert rep.stages["exact"]["share_tokens"] + rep.stages["normalised"]["share_tokens"] > 0.99
    left = [c for c in missing - by_rule if res.provenance[vocab.index(c)].stage == "init"]
    assert rep.init_sample[0] == max(((c, counts[c]) for c in left), key=lambda cc: cc[1])
