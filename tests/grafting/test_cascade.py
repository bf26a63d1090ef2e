import numpy as np
import pytest

from embgraft.errors import ConfigError, EmbgraftError
from embgraft.grafting.cascade import GraftConfig, graft
from embgraft.text.normalise import unavailable_rules
from embgraft.sources import open_source
from embgraft.text.vocab import Vocab

SOURCE = {
    "中": [1.0, 2.0, 3.0, 4.0],
    "国": [3.0, 0.0, -1.0, 2.0],
    "中国": [0.5, 0.5, 0.5, 0.5],
    "人": [-2.0, 1.0, 0.0, 1.0],
    "a": [0.25, 0.75, -0.5, 1.0],
    "好": [2.0, 2.0, 2.0, -2.0],
    "学": [1.0, -1.0, 1.0, -1.0],
}


def write_source(path, rows=SOURCE):
    dim = len(next(iter(rows.values())))
    lines = [f"{len(rows)} {dim}"] + [t + " " + " ".join(repr(v) for v in vec) for t, vec in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(tok, rows=SOURCE):
    return np.array(rows[tok], dtype=np.float32)


def vocab_of(tokens, counts=None):
    return Vocab.from_tokens(tokens, counts=counts or [1] * len(tokens))


@pytest.fixture
def src_path(tmp_path):
    return write_source(tmp_path / "src.txt")


def test_cascade_provenance_and_exact_rows(src_path):
    vocab = vocab_of(["中", "国", "A", "中国人", "好学", "？"], counts=[10, 8, 4, 2, 1, 5])
    res = graft(vocab, src_path, progress=False)
    by_tok = dict(zip(vocab.tokens, res.provenance))
    assert by_tok["<pad>"].method == "special" and by_tok["<unk>"].method == "special"
    assert by_tok["中"].method == "exact" and by_tok["中"].source_tokens == ("中",)
    assert by_tok["A"].method == "normalised:lower" and by_tok["A"].source_tokens == ("a",)
    assert by_tok["中国人"].method == "composed:mean"
    assert by_tok["中国人"].source_tokens == ("中国", "人")  # longest known pieces first
    assert by_tok["好学"].source_tokens == ("好", "学")
    assert by_tok["？"].method == "init:normal"
    w = res.weights
    assert w.shape == (8, 4) and w.dtype == np.float32
    assert np.array_equal(w[vocab.index("中")], row("中"))
    assert np.array_equal(w[vocab.index("A")], row("a"))
    assert np.allclose(w[vocab.index("中国人")], (row("中国") + row("人")) / 2, atol=0, rtol=1e-7)
    assert np.array_equal(w[vocab.pad_id], np.zeros(4, np.float32))


@pytest.mark.parametrize("pool, expect", [
    ("sum", lambda: row("好") + row("学")),
    ("max", lambda: np.maximum(row("好"), row("学"))),
    ("first", lambda: row("好")),
    ("last", lambda: row("学")),
])
def test_compose_poolings(src_path, pool, expect):
    vocab = vocab_of(["好学"])
    res = graft(vocab, src_path, compose=pool, progress=False)
    assert np.array_equal(res.weights[vocab.index("好学")], expect())
    assert res.provenance[vocab.index("好学")].method == f"composed:{pool}"


def test_compose_coverage_and_off(src_path):
    vocab = vocab_of(["中国", "好猫"])  # 猫 is absent: half the word is covered
    res = graft(vocab, src_path, progress=False)
    assert res.provenance[vocab.index("好猫")].method == "init:normal"
    res = graft(vocab, src_path, compose_min_coverage=0.5, progress=False)
    assert res.provenance[vocab.index("好猫")].method == "composed:mean"
    assert np.array_equal(res.weights[vocab.index("好猫")], row("好"))
    res = graft(vocab_of(["中", "好学"]), src_path, compose="off", progress=False)
    assert res.provenance[3].method == "init:normal"


def test_full_width_and_traditional_normalisation(src_path):
    vocab = vocab_of(["Ａ", "國"])
    res = graft(vocab, src_path, progress=False)
    assert res.provenance[vocab.index("Ａ")].method == "normalised:nfkc+lower"
    if "t2s" in unavailable_rules(["t2s"]):
        pytest.skip("OpenCC not installed")
    assert res.provenance[vocab.index("國")].method == "normalised:t2s"
    assert np.array_equal(res.weights[vocab.index("國")], row("国"))


def test_normalisation_order_and_none(src_path):
    vocab = vocab_of(["中", "A"])
    res = graft(vocab, src_path, normalise=(), progress=False)
    assert res.provenance[vocab.index("A")].method == "init:normal"


def test_init_methods_match_found_statistics(tmp_path):
    rng = np.random.default_rng(1)
    rows = {chr(0x4E00 + i): rng.normal(2.0, 0.5, 8).tolist() for i in range(400)}
    path = write_source(tmp_path / "s.txt", rows)
    toks = list(rows) + [f"<x{i}>" for i in range(3000)]
    found = np.array([rows[t] for t in rows], dtype=np.float32).astype(np.float64)
    res = graft(vocab_of(toks), path, compose="off", normalise=(), progress=False)
    init = res.weights[[i for i, p in enumerate(res.provenance) if p.method == "init:normal"]]
    assert len(init) == 3000
    assert np.allclose(init.mean(0), found.mean(0), atol=0.05)
    assert np.allclose(init.std(0), found.std(0), atol=0.05)
    again = graft(vocab_of(toks), path, compose="off", normalise=(), progress=False)
    assert np.array_equal(res.weights, again.weights)  # seeded
    # drawn at once, the rows are those of one draw per row, in row order (<unk> first)
    found32 = np.array([rows[t] for t in rows], dtype=np.float32)
    draw = np.random.default_rng(0)
    mean, std = found32.mean(axis=0, dtype=np.float64), found32.std(axis=0, dtype=np.float64)
    one_by_one = np.stack([draw.normal(mean, std).astype(np.float32) for _ in range(3001)])
    assert np.array_equal(res.weights[1], one_by_one[0]) and np.array_equal(init, one_by_one[1:])
    res = graft(vocab_of(toks[:410]), path, init="mean", compose="off", progress=False)
    assert np.allclose(res.weights[-1], found.mean(0).astype(np.float32))
    res = graft(vocab_of(toks[:410]), path, init="zeros", compose="off", progress=False)
    assert not res.weights[-1].any()
    res = graft(vocab_of(toks), path, init="uniform", compose="off", progress=False)
    u = res.weights[-3000:]
    half = np.sqrt(3) * found.std(0)
    assert (u >= found.mean(0) - half - 1e-5).all() and (u <= found.mean(0) + half + 1e-5).all()


def test_post_processing(src_path):
    vocab = vocab_of(["中", "国", "人", "好", "学", "中国"])
    res = graft(vocab, src_path, unit_norm=True, scale=2.0, progress=False)
    norms = np.linalg.norm(res.weights, axis=1)
    assert np.allclose(norms[2:], 2.0) and norms[0] == 0.0
    res = graft(vocab, src_path, centre=True, progress=False)
    assert np.allclose(res.weights[2:].mean(0), 0.0, atol=1e-6)
    res = graft(vocab, src_path, dim=2, progress=False)
    assert res.weights.shape == (8, 2) and not res.weights[0].any()
    assert res.report.pca["from_dim"] == 4 and 0 < res.report.pca["explained_variance"] <= 1
    with pytest.raises(ConfigError, match="wider than the sources' 4"):
        graft(vocab, src_path, dim=5, progress=False)


def test_fallback_sources_in_order(tmp_path, src_path):
    second = write_source(tmp_path / "b.txt", {"猫": [9.0, 9.0, 9.0, 9.0], "中": [7.0, 7.0, 7.0, 7.0]})
    vocab = vocab_of(["中", "猫"])
    res = graft(vocab, [open_source(src_path, progress=False), open_source(second, progress=False)],
                progress=False)
    assert res.provenance[vocab.index("中")].source == str(src_path)
    assert res.provenance[vocab.index("猫")].source == str(second)
    assert np.array_equal(res.weights[vocab.index("猫")], np.full(4, 9.0, np.float32))
    narrow = write_source(tmp_path / "n.txt", {"猫": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="sources differ in width"):
        graft(vocab, [src_path, narrow], progress=False)


def test_config_errors_are_collected():
    with pytest.raises(ConfigError) as err:
        GraftConfig(normalise=("nfkc", "upper"), compose="median", init="xavier", dim=0, compose_bytes="maybe")
    msg = str(err.value)
    for part in ("'upper'", "'median'", "'xavier'", "dim must be", "compose_bytes must be one of ['on', 'off']"):
        assert part in msg


def test_nothing_found_is_an_error(src_path):
    with pytest.raises(EmbgraftError, match="none of the 2 target tokens"):
        graft(vocab_of(["猫", "狗"]), src_path, progress=False)


def test_report_coverage_figures(src_path):
    vocab = vocab_of(["中", "A", "中国人", "？"], counts=[6, 2, 1, 1])
    rep = graft(vocab, src_path, progress=False).report
    assert rep.stages["exact"] == {"n_types": 1, "share_types": 0.25, "n_tokens": 6, "share_tokens": 0.6}
    assert rep.methods["normalised:lower"]["n_tokens"] == 2
    assert rep.stages["composed"]["n_types"] == 1
    assert rep.init_sample == [("？", 1)]
    table = rep.coverage_table()
    assert "exact" in table and "found in the source (exact + normalised): 80.00%" in table


def test_reverse_normalisation_finds_the_sources_unnormalised_form(tmp_path):
    path = write_source(tmp_path / "s.txt", {"，": [1.0, 1.0], "China": [2.0, 2.0], "中": [3.0, 3.0]})
    vocab = vocab_of([",", "china", "中"])
    res = graft(vocab, path, progress=False)
    assert res.provenance[vocab.index(",")].method == "normalised:widen"
    assert res.provenance[vocab.index(",")].source_tokens == ("，",)
    assert res.provenance[vocab.index("china")].method == "normalised:capitalize"
    assert np.array_equal(res.weights[vocab.index("china")], np.array([2.0, 2.0], np.float32))


def test_compose_from_normalised_pieces(tmp_path):
    path = write_source(tmp_path / "s.txt", {"２": [1.0, 0.0], "０": [0.0, 1.0], "中": [3.0, 3.0]})
    vocab = vocab_of(["2020", "中"])
    res = graft(vocab, path, progress=False)
    p = res.provenance[vocab.index("2020")]
    assert (p.method, p.source_tokens) == ("composed:mean", ("２", "０", "２", "０"))
    assert np.array_equal(res.weights[vocab.index("2020")], np.array([0.5, 0.5], np.float32))


# -- issue 8, item 10: dtype means one thing end to end ------------------------------------------
THIRDS = {"中": [0.1, 1 / 3, -2 / 3, 1e-5], "国": [0.2, 0.7, 0.9, -0.1]}


def test_float64_is_kept_from_the_file_to_the_result(tmp_path):
    src = write_source(tmp_path / "s.txt", THIRDS)
    res = graft(vocab_of(["中", "国", "猫"]), src, dtype="float64", progress=False, init="normal")
    assert res.weights.dtype == np.float64
    i = res.vocab.index("中")
    assert res.weights[i].tolist() == [0.1, 1 / 3, -2 / 3, 1e-5]  # parsed as float64, not via float32
    assert res.to_embedding().weight.dtype.is_floating_point and str(res.to_embedding().weight.dtype) == "torch.float64"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_a_result_in_memory_equals_the_same_result_loaded(tmp_path, dtype):
    from embgraft.grafting.result import GraftResult

    src = write_source(tmp_path / "s.txt", THIRDS)
    res = graft(vocab_of(["中", "国", "猫", "狗"]), src, dtype=dtype, progress=False, scale=1.7)
    res.save(tmp_path / "out")
    back = GraftResult.load(tmp_path / "out")
    assert back.dtype == res.dtype == dtype
    assert back.weights.dtype == res.weights.dtype
    assert np.array_equal(back.weights, res.weights)
    import torch

    assert torch.equal(back.to_embedding().weight, res.to_embedding().weight)


def test_bfloat16_rounds_as_torch_does(tmp_path):
    import torch

    src = write_source(tmp_path / "s.txt", THIRDS)
    vocab = vocab_of(["中", "国", "猫", "狗"])
    full = graft(vocab, src, dtype="float32", progress=False, scale=1.7)
    bf = graft(vocab, src, dtype="bfloat16", progress=False, scale=1.7)
    assert not np.array_equal(full.weights, bf.weights)  # it was rounded
    assert torch.equal(bf.to_embedding().weight, torch.from_numpy(full.weights).to(torch.bfloat16))
    assert torch.equal(torch.from_numpy(bf.weights), torch.from_numpy(full.weights).to(torch.bfloat16).float())


def test_a_vocabulary_of_specials_only_says_so(src_path):
    with pytest.raises(ConfigError, match=r"^the vocabulary holds only its specials \(<pad>, <unk>\): nothing"):
        graft(vocab_of([]), src_path, progress=False)


def test_a_vocabulary_carries_its_recipe_into_the_saved_graft(tmp_path):
    """From Python, as the README shows it: a word vocabulary built with a user dictionary and
    lower-casing, grafted and saved, tokenises the same way when loaded back."""
    from embgraft.grafting.result import GraftResult
    from embgraft.text.tokenize import Recipe
    from embgraft.text.vocab import Vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("量子纠缠态很神奇 ABC\n量子纠缠态\n", encoding="utf-8")
    user = tmp_path / "mine.txt"
    user.write_text("量子纠缠态 10 n\n", encoding="utf-8")
    vectors = tmp_path / "v.txt"
    vectors.write_text("2 2\n量子纠缠态 0.5 0.5\nabc 1 0\n", encoding="utf-8")
    vocab = Vocab.from_corpus(corpus, level="word", user_dict=user, lowercase=True)
    assert "量子纠缠态" in vocab and "abc" in vocab  # the dictionary and the lower-casing were used
    saved = graft(vocab, str(vectors)).save(tmp_path / "graft")
    recipe = GraftResult.load(saved).tokenisation()
    assert (recipe.level, recipe.lowercase) == ("word", True)
    assert recipe.user_dict == str(saved / "user_dict.txt")
    assert recipe.tokenizer()("量子纠缠态ABC") == Recipe(level="word", user_dict=str(user),
                                                       lowercase=True).tokenizer()("量子纠缠态ABC")
