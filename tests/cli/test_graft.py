import json
import subprocess
import sys

import pytest

from helpers.imports import assert_not_imported

from embgraft.cli import main


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "vec.txt"
    src.write_text("3 2\n中 1 2\n国 3 4\na 5 6\n", encoding="utf-8")
    corpus = tmp_path / "c.tsv"
    corpus.write_text("中国A中\t1\n国猫\t0\n", encoding="utf-8")
    return src, corpus


def test_graft_command_writes_outputs_and_prints_coverage(files, tmp_path, capsys):
    src, corpus = files
    out = tmp_path / "out"
    assert main(["graft", "--source", str(src), "--corpus", str(corpus), "--out", str(out),
                 "--no-progress", "--export-word2vec", str(tmp_path / "g.vec")]) == 0
    printed = capsys.readouterr().out
    assert "grafted 6 tokens x 2 dims" in printed
    assert "normalised:lower" in printed and "left to init, most frequent first: 猫(1)" in printed
    assert {p.name for p in out.iterdir()} == {"embedding.safetensors", "vocab.txt", "provenance.tsv",
                                              "graft_report.json", "recipe.json"}
    assert json.loads((out / "recipe.json").read_text(encoding="utf-8")) == {
        "level": "char", "user_dict": None, "lowercase": False, "max_len": None}
    assert (tmp_path / "g.vec").read_text(encoding="utf-8").startswith("4 2\n中 1.0 2.0\n")


def test_errors_are_one_line_with_exit_2(files, tmp_path, capsys):
    src, corpus = files
    src.write_text("3 2\n中 1 2\n国 3\na 5 6\n", encoding="utf-8")
    assert main(["graft", "--source", str(src), "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"embgraft graft: error: {src}:3: expected a token and 2 values, found 1 values\n"
    assert not (tmp_path / "o").exists()


def test_existing_output_is_kept_without_force(files, tmp_path, capsys):
    src, corpus = files
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["graft", "--source", str(src), "--corpus", str(corpus), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_graft_command_does_not_import_torch(files, tmp_path):
    src, corpus = files
    code = (
        "from embgraft.cli import main\n"
        f"rc = main(['graft', '--source', {str(src)!r}, '--corpus', {str(corpus)!r}, "
        f"'--out', {str(tmp_path / 'o')!r}, '--no-progress'])\n"
        "assert rc == 0, rc\n"
    )
    assert_not_imported(code, ["torch"])


def test_an_existing_export_path_stops_the_graft_before_anything_is_written(files, tmp_path, capsys):
    src, corpus = files
    out, export = tmp_path / "out", tmp_path / "g.vec"
    export.write_text("mine", encoding="utf-8")
    assert main(["graft", "--source", str(src), "--corpus", str(corpus), "--out", str(out),
                 "--no-progress", "--export-word2vec", str(export)]) == 2
    assert capsys.readouterr().err == f"embgraft graft: error: {export} exists; pass --force (force=True) to overwrite it\n"
    assert not out.exists() and export.read_text(encoding="utf-8") == "mine"


def test_cli_choices_are_the_librarys_tables():
    from embgraft.cli import build_parser
    from embgraft.grafting.compose import POOLINGS
    from embgraft.grafting.config import DTYPES, INIT_METHODS

    graft_parser = build_parser()._subparsers._group_actions[0].choices["graft"]
    choices = {a.dest: a.choices for a in graft_parser._actions if a.choices}
    assert choices["compose"] == [*POOLINGS, "off"]
    assert choices["init"] == list(INIT_METHODS)
    assert choices["dtype"] == list(DTYPES)


def test_graft_rows_output_from_the_command_line(tmp_path, ck, capsys):
    """--rows output runs the encoder on each entry; --contextual-* options need it."""
    from embgraft.grafting.result import GraftResult

    ck.build_bert(tmp_path / "bert")
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京大学的学生\n中国人民\n", encoding="utf-8")
    base = ["graft", "--source", str(tmp_path / "bert"), "--corpus", str(corpus), "--no-progress"]
    assert main([*base, "--rows", "output", "--contextual-pool", "cls", "--out", str(tmp_path / "g")]) == 0
    assert "contextual:cls@1" in capsys.readouterr().out
    methods = {p.method for p in GraftResult.load(tmp_path / "g").provenance}
    assert "contextual:cls@1" in methods
    assert main([*base, "--contextual-pool", "cls", "--out", str(tmp_path / "g2")]) == 2
    assert "--contextual-pool needs --rows output" in capsys.readouterr().err
    assert main(["graft", "--source", str(tmp_path / "bert") + "/../missing.txt", "--corpus", str(corpus),
                 "--rows", "output", "--out", str(tmp_path / "g3"), "--no-progress"]) == 2


def test_graft_rows_in_the_corpus_context_from_the_command_line(tmp_path, ck, capsys):
    """--contextual-context corpus runs --corpus's texts: each char's row is its mean over them; the
    n-gram and word rows too; a --vocab without --corpus is one line, exit 2."""
    import numpy as np
    from safetensors.numpy import load_file

    from embgraft.grafting.result import GraftResult
    from embgraft.hf.encoder import ContextualConfig
    from embgraft.sources.checkpoint import CheckpointSource

    ck.build_bert(tmp_path / "bert")
    corpus = tmp_path / "c.txt"
    texts = ["北京大学的学生", "中国人民"]
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    base = ["graft", "--source", str(tmp_path / "bert"), "--no-progress", "--rows", "output",
            "--contextual-context", "corpus", "--contextual-scale-to", "none"]
    assert main([*base, "--corpus", str(corpus), "--ngrams", "2", "--out", str(tmp_path / "g")]) == 0
    assert "contextual:corpus@1" in capsys.readouterr().out
    result = GraftResult.load(tmp_path / "g")
    want = CheckpointSource(tmp_path / "bert", rows="output", progress=False, contexts=texts,
                            contextual=ContextualConfig(context="corpus", scale_to="none", device="cpu")
                            ).lookup(["学", "北京"])
    i = result.vocab.tokens.index("学")
    assert result.provenance[i].method == "contextual:corpus@1"
    np.testing.assert_array_equal(result.weights[i], want["学"])
    ngrams = load_file(str(tmp_path / "g" / "ngrams.safetensors"))
    assert any(np.array_equal(row, want["北京"]) for row in ngrams[next(iter(ngrams))])
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<unk>\n北\n京\n", encoding="utf-8")
    assert main([*base, "--vocab", str(vocab), "--out", str(tmp_path / "g2")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--contextual-context corpus runs the corpus's texts" in err
    assert not (tmp_path / "g2").exists()


def test_graft_bad_context_values_are_one_line_and_leave_nothing(tmp_path, ck, capsys):
    """A --contextual-context other than alone|corpus and too few --contextual-context-pieces: both
    in one line, exit 2, no output."""
    ck.build_bert(tmp_path / "bert")
    capsys.readouterr()  # the helper's own save bars
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京大学的学生\n", encoding="utf-8")
    assert main(["graft", "--source", str(tmp_path / "bert"), "--corpus", str(corpus), "--no-progress",
                 "--rows", "output", "--contextual-context", "document", "--contextual-context-pieces", "1",
                 "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "context must be one of ['alone', 'corpus'], not 'document'" in err
    assert "context_pieces must be >= 2, not 1" in err
    assert not (tmp_path / "g").exists()


def test_graft_last_k_beyond_the_model_is_one_line_and_leaves_nothing(tmp_path, ck, capsys):
    ck.build_bert(tmp_path / "bert")  # one layer: hidden states 0..1
    corpus = tmp_path / "c.txt"
    corpus.write_text("中国人民\n", encoding="utf-8")
    capsys.readouterr()  # the tiny checkpoint's own writing
    assert main(["graft", "--source", str(tmp_path / "bert"), "--corpus", str(corpus), "--no-progress",
                 "--rows", "output", "--contextual-last-k", "3", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "last_k 3 is more hidden states than the model has: 0..1, so at most 2" in err
    assert not (tmp_path / "g").exists()
    from transformers.utils import logging as tf_logging

    assert tf_logging.is_progress_bar_enabled()  # --no-progress silenced transformers' bars for the load only


def test_graft_ngrams_holds_exact_and_composed_rows_that_train_takes(tmp_path, capsys):
    from safetensors.numpy import load_file

    src = tmp_path / "vec.txt"
    src.write_text("3 2\n中 1 2\n国 3 4\n中国 9 8\n", encoding="utf-8")
    data = tmp_path / "train.tsv"
    data.write_text("中国中\t甲\n国中\t乙\n中国国\t甲\n国国中\t乙\n", encoding="utf-8")
    out = tmp_path / "g"
    assert main(["graft", "--source", str(src), "--corpus", str(data), "--ngrams", "2", "--out", str(out),
                 "--no-progress"]) == 0
    assert "+ 3 n-gram rows (2..2" in capsys.readouterr().out
    rows = load_file(str(out / "ngrams.safetensors"))["embedding"]
    prov = [line.split("\t") for line in (out / "ngrams_provenance.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    by_token = {p[1]: (p[2], rows[int(p[0])].tolist()) for p in prov}
    assert by_token["中国"] == ("exact", [9.0, 8.0])  # the source's own row, bit for bit
    assert by_token["国中"] == ("composed:mean", [2.0, 3.0]) and by_token["国国"][0] == "composed:mean"
    run = tmp_path / "run"
    assert main(["train", "--train", str(data), "--dev", str(data), "--graft", str(out), "--model", "bag",
                 "--ngrams", "2", "--epochs", "1", "--embedding", "frozen", "--out", str(run), "--no-progress",
                 "--tensorboard", "off"]) == 0
    run_prov = {p.split("\t")[1]: p.split("\t")[2]
                for p in (run / "provenance.tsv").read_text(encoding="utf-8").splitlines()[1:]}
    assert run_prov["中国"] == "exact"
    assert main(["graft", "--source", str(src), "--corpus", str(data), "--words", "--out", str(tmp_path / "g2"),
                 "--no-progress"]) == 2
    assert "give --ngrams N (N >= 2) with them" in capsys.readouterr().err
