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
