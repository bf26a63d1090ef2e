import json
import subprocess
import sys

import pytest

from embgraft.cli import main

FAST = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--tensorboard", "off"]


def args(task, out, *more):
    return ["train", "--train", str(task["train"]), "--dev", str(task["dev"]), "--test", str(task["test"]),
            "--graft", str(task["graft"]), "--model", "bag", "--out", str(out), *FAST, *more]


@pytest.mark.slow
def test_train_then_predict_from_the_command_line(tiny_task, tmp_path, capsys):
    assert main(args(tiny_task, tmp_path / "run", "--lr", "0.05")) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "run"), "球赛冠军", "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("\t球赛冠军") and lines[0].count("0.") >= 2
    inp = tmp_path / "in.txt"
    inp.write_text("球赛\n银行\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "run"), "--input", str(inp), "--output", str(tmp_path / "p.tsv")]) == 0
    rows = (tmp_path / "p.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "text\tlabel\tprobability\ttop_k" and len(rows) == 3


def test_config_file_with_flag_overrides(tiny_task, tmp_path):
    conf = tmp_path / "run.yaml"
    conf.write_text("# embgraft train --config run.yaml --out run\nmodel: textcnn\nn-filters: 4\nlr: 0.5\n"
                    "kernel_sizes: 2,3\nepochs: 3\n", encoding="utf-8")
    assert main(args(tiny_task, tmp_path / "run", "--config", str(conf), "--model", "bag", "--lr", "0.02")) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert (saved["model"], saved["lr"], saved["epochs"], saved["n_filters"], saved["kernel_sizes"]) == \
        ("bag", 0.02, 1, 4, [2, 3])


def test_invalid_config_lists_every_problem(tiny_task, tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text("epochs: 0\nschedul: cosine\n", encoding="utf-8")
    assert main(args(tiny_task, tmp_path / "run", "--config", str(conf))) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s)" in err and "'schedul' (did you mean 'schedule'?)" in err
    assert main(args(tiny_task, tmp_path / "run", "--epochs", "0", "--embedding", "half")) == 2
    err = capsys.readouterr().err
    assert "epochs must be a positive integer" in err and "embedding must be full, frozen" in err
    assert main(args(tiny_task, tmp_path / "run", "--model", "bilstm", "--ngrams", "2")) == 2
    err = capsys.readouterr().err
    assert "ngrams > 1 is for models that take n-gram rows (bag, textcnn), not 'bilstm'" in err
    assert main(args(tiny_task, tmp_path / "run", "--model", "bag", "--words", "--pooling", "sum")) == 2
    err = capsys.readouterr().err
    assert "words joins the n-gram rows: give ngrams >= 2 with it" in err
    assert main(args(tiny_task, tmp_path / "run", "--model", "bag", "--pooling", "sum")) == 2
    assert "bag pooling must be one of ['mean', 'max', 'mean+max'], not 'sum'" in capsys.readouterr().err
    assert main(args(tiny_task, tmp_path / "run", "--length-bucket", "0")) == 2
    assert "length_bucket must be a positive integer, not 0" in capsys.readouterr().err
    assert main(args(tiny_task, tmp_path / "run", "--teachers", str(tmp_path / "nowhere"))) == 2
    assert f"teacher {tmp_path / 'nowhere'} is not a finished run directory" in capsys.readouterr().err
    assert main(args(tiny_task, tmp_path / "run", "--distill-weight", "2")) == 2
    assert "distill_weight must be in [0, 1], not 2.0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content, where", [("球赛\t体育\n银行\t\n", ":2: no label"),
                                            ("球赛\t体育\n \t财经\n", ":2: empty text"),
                                            ("球赛\t体育\n银行\t财经\n冠军\t娱乐\n", ":3: label '娱乐' is not one of")])
def test_bad_rows_are_one_line_errors_naming_file_and_line(tiny_task, tmp_path, content, where):
    bad = tmp_path / "dev_bad.tsv"
    bad.write_text(content, encoding="utf-8")
    cmd = [sys.executable, "-m", "embgraft", *args(tiny_task, tmp_path / "run")]
    cmd[cmd.index("--dev") + 1] = str(bad)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f"dev_bad.tsv{where}" in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
    cmd += ["--on-bad-row", "skip"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0


def test_existing_run_dir_is_refused_without_force(tiny_task, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(args(tiny_task, tmp_path / "run")) == 2
    assert "--force" in capsys.readouterr().err
    assert main(args(tiny_task, tmp_path / "run", "--force")) == 0


def test_predict_on_an_unfinished_run_says_so(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["predict", str(tmp_path / "run"), "x"]) == 2
    assert "did not finish" in capsys.readouterr().err
