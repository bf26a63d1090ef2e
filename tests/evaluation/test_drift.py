import json
import math

import numpy as np
import pytest

from embgraft.evaluation.drift import embedding_drift
from embgraft.errors import EmbgraftError

TOKENS = ["<pad>", "<unk>", "中", "国", "人", "猫", "狗"]
METHODS = ["special", "special", "exact", "exact", "normalised:lower", "composed:mean", "init:normal"]
COUNTS = [0, 0, 10, 8, 5, 3, 1]
BEFORE = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [1, 1], [3, 4], [-1, 0]], dtype=np.float32)
AFTER = np.array([[0, 0], [1, 0], [1, 0], [0, 2], [1, -1], [0, 0], [0, 1]], dtype=np.float32)
R2 = 1 / math.sqrt(2)


@pytest.fixture
def drift():
    return embedding_drift(BEFORE, AFTER, METHODS, TOKENS, COUNTS, n_neighbours=2, n_tokens=2, n_most_moved=3)


def test_per_method_summaries(drift):
    json.dumps(drift, allow_nan=False)
    assert drift["n_rows"] == 7 and drift["dim"] == 2
    pm = drift["per_method"]
    assert list(pm) == ["special", "exact", "normalised:lower", "composed:mean", "init:normal"]
    assert pm["special"] == {"n_rows": 2, "n_unchanged": 2, "n_cosine_undefined": 1,
                             "l2": {"count": 2, "mean": 0.0, "median": 0.0, "max": 0.0},
                             "cosine": {"count": 1, "mean": 0.0, "median": 0.0, "max": 0.0}}
    # 中 unchanged, 国 stretched from (0,1) to (0,2): moved 1, same direction
    assert pm["exact"]["n_rows"] == 2 and pm["exact"]["n_unchanged"] == 1
    assert pm["exact"]["l2"] == {"count": 2, "mean": 0.5, "median": 0.5, "max": 1.0}
    assert pm["exact"]["cosine"] == pytest.approx({"count": 2, "mean": 0.0, "median": 0.0, "max": 0.0}, abs=1e-12)
    # 人 (1,1) -> (1,-1): distance 2, orthogonal
    assert pm["normalised:lower"]["l2"]["max"] == pytest.approx(2.0)
    assert pm["normalised:lower"]["cosine"]["mean"] == pytest.approx(1.0)
    # 猫 (3,4) -> (0,0): distance 5, no direction after
    assert pm["composed:mean"]["l2"]["mean"] == pytest.approx(5.0)
    assert pm["composed:mean"]["n_cosine_undefined"] == 1
    assert pm["composed:mean"]["cosine"] == {"count": 0, "mean": None, "median": None, "max": None}
    # 狗 (-1,0) -> (0,1)
    assert pm["init:normal"]["l2"]["mean"] == pytest.approx(math.sqrt(2))
    assert pm["init:normal"]["cosine"]["mean"] == pytest.approx(1.0)
    ov = drift["overall"]
    assert ov["n_rows"] == 7 and ov["n_unchanged"] == 3 and ov["n_cosine_undefined"] == 2
    assert ov["l2"]["max"] == pytest.approx(5.0)
    assert ov["l2"]["mean"] == pytest.approx((0 + 0 + 0 + 1 + 2 + 5 + math.sqrt(2)) / 7)
    assert ov["l2"]["median"] == pytest.approx(1.0)


def test_most_moved(drift):
    assert [(r["token"], r["method"]) for r in drift["most_moved"]] == [
        ("猫", "composed:mean"), ("人", "normalised:lower"), ("狗", "init:normal")]
    assert drift["most_moved"][0]["l2"] == pytest.approx(5.0) and drift["most_moved"][0]["cosine"] is None


def test_neighbours_before_and_after(drift):
    nb = drift["neighbours"]
    assert [x["token"] for x in nb] == ["中", "国"]  # the two most frequent non-special tokens
    zhong, guo = nb
    # <unk> = (1,0) is identical to 中 but special: excluded; 中 itself excluded
    assert [(x["token"], round(x["similarity"], 6)) for x in zhong["before"]] == [("人", round(R2, 6)), ("猫", 0.6)]
    # after: 猫 became zero (no direction) and drops out; 国 and 狗 tie at 0, id order
    assert [(x["token"], round(x["similarity"], 6)) for x in zhong["after"]] == [("人", round(R2, 6)), ("国", 0.0)]
    assert zhong["kept"] == 1 and zhong["l2"] == 0.0 and zhong["count"] == 10
    assert [(x["token"], round(x["similarity"], 6)) for x in guo["before"]] == [("猫", 0.8), ("人", round(R2, 6))]
    assert [(x["token"], round(x["similarity"], 6)) for x in guo["after"]] == [("狗", 1.0), ("中", 0.0)]
    assert guo["kept"] == 0


def test_defaults_and_bounds():
    d = embedding_drift(BEFORE, AFTER, METHODS, TOKENS, COUNTS)
    # unchanged rows (中) are not listed as moved
    assert [r["token"] for r in d["most_moved"]] == ["猫", "人", "狗", "国"]
    assert len(d["neighbours"]) == 5  # all five regular tokens
    assert all(len(x["before"]) <= 4 for x in d["neighbours"])  # at most the 4 other regular rows
    assert d["n_neighbours"] == 8


def test_bad_shapes_raise():
    with pytest.raises(EmbgraftError, match="one shape"):
        embedding_drift(BEFORE, AFTER[:3], METHODS, TOKENS, COUNTS)
    with pytest.raises(EmbgraftError, match="6 methods"):
        embedding_drift(BEFORE, AFTER, METHODS[:6], TOKENS, COUNTS)
    bad = AFTER.copy()
    bad[2, 0] = np.nan
    with pytest.raises(EmbgraftError, match="NaN"):
        embedding_drift(BEFORE, bad, METHODS, TOKENS, COUNTS)


def test_drift_for_run_reads_the_run_files(tmp_path):
    import shutil

    from safetensors.numpy import save_file

    from embgraft.evaluation.drift import drift_for_run, read_provenance
    from embgraft.errors import MalformedFileError
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    src = tmp_path / "vec.txt"
    src.write_text("3 2\n中 1 0\n国 0 1\n人 1 1\n", encoding="utf-8")
    vocab = Vocab.from_tokens(["中", "国", "中国", "猫\t狗"], counts=[9, 7, 3, 1])
    result = graft(vocab, src, progress=False)
    g = result.save(tmp_path / "graft")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("vocab.txt", "provenance.tsv"):
        shutil.copy(g / name, run / name)
    save_file({"embedding": result.weights}, str(run / "embedding_init.safetensors"))
    final = result.weights.copy()
    final[~result.found_mask()] += 0.5  # `partial`: only the rows not found in the source move
    final[0] = 0

    tokens, methods = read_provenance(run / "provenance.tsv")
    assert tokens == list(vocab.tokens) and "猫\t狗" in tokens
    assert methods == [p.method for p in result.provenance]
    d = drift_for_run(run, final, n_tokens=2, n_neighbours=2)
    assert d == embedding_drift(result.weights, final, methods, tokens, list(vocab.counts), n_tokens=2,
                                n_neighbours=2)
    assert d["per_method"]["exact"]["n_unchanged"] == d["per_method"]["exact"]["n_rows"] == 2
    assert d["per_method"]["composed:mean"]["l2"]["max"] == pytest.approx(0.5 * np.sqrt(2))
    assert [x["token"] for x in d["neighbours"]] == ["中", "国"]

    with pytest.raises(EmbgraftError, match="one shape"):
        drift_for_run(run, final[:3])
    (run / "provenance.tsv").write_text("id\ttoken\tmethod\tsource\tsource_tokens\n0\t<pad>\tspecial\n",
                                        encoding="utf-8")
    with pytest.raises(MalformedFileError, match=r"provenance.tsv:2: expected 5"):
        drift_for_run(run, final)
    (run / "embedding_init.safetensors").unlink()
    with pytest.raises(EmbgraftError, match="initial embedding"):
        drift_for_run(run, final)
