"""N-gram and word rows held by the graft (graft(..., ngrams=...)) and taken by add_ngram_rows."""

import numpy as np

from embgraft.grafting.cascade import graft
from embgraft.grafting.ngrams import add_ngram_rows, ngram_entries
from embgraft.grafting.result import GraftResult
from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab

TEXTS = ["北京大学", "北京天气", "大学生"]


def test_ngram_rows_from_the_graft(tmp_path):
    vec = tmp_path / "v.txt"
    rows = {"北": [1, 0], "京": [0, 1], "大": [1, 1], "学": [2, 0], "天": [0, 2], "气": [3, 3], "生": [1, 2],
            "北京": [9, 9]}
    vec.write_text(f"{len(rows)} 2\n" + "".join(f"{t} {a} {b}\n" for t, (a, b) in rows.items()), encoding="utf-8")
    recipe = Recipe(level="char")
    vocab = Vocab.build([list(t) for t in TEXTS], level="char", recipe=recipe)
    entries = ngram_entries(TEXTS, recipe, n=2)
    result = graft(vocab, str(vec), ngrams=entries, normalise=(), progress=False)
    plain = graft(vocab, str(vec), normalise=(), progress=False)
    np.testing.assert_array_equal(result.weights, plain.weights)  # the vocabulary's rows as without
    j = result.ngrams.get("北京")
    assert result.ngrams.provenance[j].method == "exact" and list(result.ngrams.weights[j]) == [9, 9]
    result.save(tmp_path / "g")
    loaded = GraftResult.load(tmp_path / "g")
    assert loaded.ngrams.tokens == result.ngrams.tokens
    grown = add_ngram_rows(loaded, TEXTS, n=2)
    i = grown.vocab.index("北京")
    assert list(grown.weights[i]) == [9, 9] and grown.provenance[i].method == "exact"
