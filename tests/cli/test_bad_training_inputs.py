"""The failing cases of ``../shared/reviews/training-half-qa.md`` (its ids in brackets), each as
a hostile user would meet it: exit 2, exactly one line on stderr, no traceback, nothing written
or removed, the old output intact."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from embgraft.cli import main
from embgraft.errors import ConfigError, MalformedFileError, OutputExistsError

FAST = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--tensorboard", "off"]


def train_args(task, out, *more, model="bag"):
    return ["train", "--train", str(task["train"]), "--dev", str(task["dev"]), "--test", str(task["test"]),
            "--graft", str(task["graft"]), "--model", model, "--out", str(out), *FAST, *more]


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: what must not change."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def refused(argv, capsys, *expected: str) -> str:
    """``embgraft argv`` exits 2 with one stderr line holding each of ``expected``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture
def run(tiny_task, tmp_path, capsys):
    """A finished bag run."""
    out = tmp_path / "runs" / "bag"
    assert main(train_args(tiny_task, out, "--lr", "0.05")) == 0
    capsys.readouterr()
    return out


# -- 1. security ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_never_decides_to_run_its_own_code(tiny_task, tmp_path, ck, capsys):
    """[s02 s03 s04] an hf run whose config says trust_remote_code and whose encoder config names
    custom code: predict, evaluate and --teachers never run that code (only the caller's
    --trust-remote-code could allow it)."""
    ck.build_bert(tmp_path / "tiny-bert")
    good = tmp_path / "hf-run"
    assert main(["train", "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--model", "hf",
                 "--hf-model", str(tmp_path / "tiny-bert"), "--out", str(good), *FAST]) == 0
    evil = tmp_path / "evil"
    shutil.copytree(good, evil)
    config = json.loads((evil / "config.json").read_text(encoding="utf-8"))
    config["trust_remote_code"] = True
    (evil / "config.json").write_text(json.dumps(config), encoding="utf-8")
    enc = json.loads((evil / "hf" / "config.json").read_text(encoding="utf-8"))
    enc["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}
    (evil / "hf" / "config.json").write_text(json.dumps(enc), encoding="utf-8")
    pwned = tmp_path / "PWNED"
    (evil / "hf" / "configuration_evil.py").write_text(f"open({str(pwned)!r}, 'w').write('x')\n", encoding="utf-8")
    capsys.readouterr()
    # the encoder is a BERT transformers knows: its config is read as such, the auto_map ignored
    assert main(["predict", str(evil), "央行宣布下调存款准备金率"]) == 0
    assert main(["evaluate", str(evil), "--data", str(tiny_task["test"]), "--out", str(tmp_path / "ev")]) == 0
    assert main(train_args(tiny_task, tmp_path / "student", "--teachers", str(evil))) == 0
    assert not pwned.exists()  # on main at 49c148f all three ran the file (trust_remote_code from config.json)


def test_a_recipe_names_no_file_outside_its_bundle(tmp_path, run, capsys):
    """[s08] recipe.json's user_dict may not leave the run directory."""
    recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    recipe.update(level="word", user_dict="../../../../../../etc/passwd")
    (run / "recipe.json").write_text(json.dumps(recipe), encoding="utf-8")
    refused(["predict", str(run), "央行宣布"], capsys, "recipe.json", "outside")


# -- 2. nothing lost --------------------------------------------------------------------------------
@pytest.mark.parametrize("out", ["", "."])
def test_an_empty_or_working_directory_out_is_refused(tiny_task, tmp_path, monkeypatch, capsys, out):
    """[z20 z22] --out "" (an unset variable) or . with --force deleted everything in the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("x", encoding="utf-8")
    before = tree(tmp_path)
    refused(train_args(tiny_task, out, "--force"), capsys, "working directory" if out else "empty")
    assert tree(tmp_path) == before


def test_force_keeps_the_old_run_when_the_new_one_fails(tiny_task, tmp_path, run, monkeypatch):
    """[x01 x02] a failing (or killed) run over an old one with --force leaves the old one whole."""
    from embgraft.training import loop
    from embgraft.training.config import TrainConfig

    before = tree(run)

    def boom(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(loop, "_run_epoch", boom)
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=1, tensorboard="off")
    with pytest.raises(RuntimeError):
        loop.train(cfg, out=run, force=True, progress=False, log=lambda *a, **k: None)
    assert tree(run) == before
    assert [p.name for p in run.parent.iterdir()] == ["bag"]  # no temporary directory or lock left


def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_nothing(tiny_task, tmp_path, monkeypatch):
    """[f35 df01] a run that dies before it could be resumed leaves no half directory."""
    from embgraft.training import loop
    from embgraft.training.config import TrainConfig

    monkeypatch.setattr(loop, "_run_epoch", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=1, tensorboard="off")
    with pytest.raises(OSError):
        loop.train(cfg, out=tmp_path / "new", progress=False, log=lambda *a, **k: None)
    assert not (tmp_path / "new").exists() and not (tmp_path / ".new.lock").exists()


def test_force_replaces_only_a_run_directory_and_never_an_input(tiny_task, tmp_path, run, capsys):
    """[x03 x04 x05 k08] --force over a folder of notes, a file, the graft used as input, a teacher."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("t", encoding="utf-8")
    file = tmp_path / "file.txt"
    file.write_text("important", encoding="utf-8")
    kept = {p: tree(p) for p in (notes, file, tiny_task["graft"], run)}
    refused(train_args(tiny_task, notes, "--force"), capsys, "not a run directory")
    refused(train_args(tiny_task, file, "--force"), capsys, "is a file")
    refused(train_args(tiny_task, tiny_task["graft"], "--force"), capsys, "input")
    refused(train_args(tiny_task, run, "--force", "--teachers", str(run)), capsys, "input")
    assert {p: tree(p) for p in kept} == kept


def test_evaluate_and_graft_outputs_never_replace_their_inputs(tiny_task, tmp_path, run, capsys):
    """[e12 e13 e14 g05 g08] evaluate --out the run, its parent, the data file; graft --export into a
    directory, --out the corpus's folder."""
    data = tmp_path / "t.tsv"
    shutil.copy(tiny_task["test"], data)
    keep = tmp_path / "g05dir"
    keep.mkdir()
    (keep / "keep.txt").write_text("keep", encoding="utf-8")
    corpus_dir = tmp_path / "data"
    corpus_dir.mkdir()
    shutil.copy(tiny_task["train"], corpus_dir / "train.tsv")
    kept = {p: tree(p) for p in (run, data, keep, corpus_dir)}
    refused(["evaluate", str(run), "--data", str(data), "--out", str(run), "--force"], capsys, "input")
    refused(["evaluate", str(run), "--data", str(data), "--out", str(run.parent), "--force"], capsys, "input")
    refused(["evaluate", str(run), "--data", str(data), "--out", str(data), "--force"], capsys, "input")
    graft = ["graft", "--source", str(tiny_task["vectors"]), "--corpus", str(corpus_dir / "train.tsv"),
             "--no-progress"]
    refused([*graft, "--out", str(tmp_path / "g"), "--export-word2vec", str(keep), "--force"], capsys,
            "is a directory")
    refused([*graft, "--out", str(corpus_dir), "--force"], capsys, "input")
    assert {p: tree(p) for p in kept} == kept and not (tmp_path / "g").exists()


def test_two_trainings_into_one_directory_are_not_mixed(tiny_task, tmp_path):
    """[z12] a second training while the first holds the directory is refused."""
    from embgraft.files import exclusive
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    out = tmp_path / "conc"
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=1, tensorboard="off")
    with exclusive(out):  # as the first training holds it
        with pytest.raises(OutputExistsError, match="being written by another embgraft process"):
            train(cfg, out=out, progress=False, log=lambda *a, **k: None)
    assert not out.exists()


# -- 3. no silent wrong results ---------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, says", [
    ("--lr", "nan", "lr must be a finite number"), ("--lr", "inf", "lr must be a finite number"),
    ("--lr", "1e30", "above 10"), ("--weight-decay", "nan", "weight_decay must be a finite number"),
    ("--embedding-lr", "nan", "embedding_lr must be a finite number"),
    ("--grad-clip", "nan", "grad_clip must be a finite number"),
    ("--distill-temperature", "inf", "distill_temperature must be a finite number"),
    ("--distill-loss", "l2", "distill_loss must be one of ['kl', 'mse'], not 'l2'"),
])
def test_non_finite_and_absurd_numbers_are_refused(tiny_task, tmp_path, capsys, flag, value, says):
    """[f07 f08 f09 f10 f11 f14]"""
    refused(train_args(tiny_task, tmp_path / "run", flag, value), capsys, says)
    assert not (tmp_path / "run").exists()


def test_a_run_that_diverges_stops_with_the_epoch_and_step(tiny_task, tmp_path, monkeypatch):
    """[f07 k07] a non-finite loss stops the run; nothing is saved as best."""
    import torch

    from embgraft.errors import NonFiniteLossError
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", diverging)
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=2, batch_size=16, tensorboard="off")
    with pytest.raises(NonFiniteLossError, match="at epoch 1, step 3"):
        train(cfg, out=tmp_path / "run", progress=False, log=lambda *a, **k: None)
    assert not (tmp_path / "run").exists()


def test_weights_that_do_not_fit_the_run_are_refused(tmp_path, run, capsys):
    """[m_predict_shapes m_predict_vocabshort m_predict_lblextra m_predict_lblfewer m_predict_trunc
    m_predict_emptymodel m_predict_recipebad e_corrupt_*]"""
    def corrupted(name, change):
        bad = tmp_path / name
        shutil.copytree(run, bad)
        change(bad)
        return bad

    vocab = (run / "vocab.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    labels = (run / "labels.txt").read_text(encoding="utf-8")
    model = (run / "model.safetensors").read_bytes()
    cases = [
        (lambda d: (d / "vocab.txt").write_text("".join(vocab[:10]), encoding="utf-8"), "tokens"),
        (lambda d: (d / "labels.txt").write_text(labels + "娱乐\n", encoding="utf-8"), "classes"),
        (lambda d: (d / "labels.txt").write_text(labels.splitlines()[0] + "\n", encoding="utf-8"), "class"),
        (lambda d: (d / "model.safetensors").write_bytes(model[: len(model) // 2]), "model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors"),
        (lambda d: (d / "recipe.json").write_text("[1, 2, 3]", encoding="utf-8"), "recipe.json"),
    ]
    for i, (change, says) in enumerate(cases):
        bad = corrupted(f"bad{i}", change)
        refused(["predict", str(bad), "央行宣布"], capsys, says)
        refused(["evaluate", str(bad), "--data", str(run.parent.parent / "test.tsv"), "--out", str(tmp_path / "e")],
                capsys, says)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("yaml_text, says", [
    ("random_init: 'no'\n", "random_init must be true or false"),
    ("words: 'false'\n", "words must be true or false"),
    ("weight_decay: abc\n", "weight_decay must be a finite number"),
    ("warmup: abc\n", "warmup must be a finite number"),
    ("gamma: abc\n", "gamma must be a finite number"),
    ("train_fraction: half\n", "train_fraction must be a finite number"),
    ("dropout: high\n", "dropout must be a finite number"),
    ("label_smoothing: abc\n", "label_smoothing must be a finite number"),
    ("log_every: abc\n", "log_every must be an integer"),
    ("embedding: 5\n", "embedding must be a string"),
    ("train_layers: 3\n", "train_layers must be a string"),
    ("split: 0.8,abc,0.1\n", "split must be numbers separated by commas"),
    ("split: [0.8, x, 0.1]\n", "split must be numbers separated by commas"),
    ("kernel_sizes: 2,a\n", "kernel_sizes must be integers separated by commas"),
    ("teachers: 5\n", "teachers must be names separated by commas"),
    ("model: [bag]\n", "model must be a string"),
    ("seed: abc\n", "seed must be an integer"),
    ("classes: 5\n", "classes must be a string"),
])
def test_wrong_typed_config_values_name_the_key(tiny_task, tmp_path, capsys, yaml_text, says):
    """[c_random_init_str c_words_str c_wd_str c_warmup_str c_gamma_str c_tf_str c_dropout_str c_ls_str
    c_logevery_str c_emb_int c_tl_int c_split_bad c_split_list_str c_ks_bad c_teachers_int c_model_list
    c_seed_str c_classes_int]"""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml_text, encoding="utf-8")
    argv = train_args(tiny_task, tmp_path / "run", "--config", str(cfg))
    if yaml_text.startswith("model:"):  # the file's key, not a flag, must name the model
        i = argv.index("--model")
        argv[i:i + 2] = []
    refused(argv, capsys, says)
    assert not (tmp_path / "run").exists()


def test_yaml_scientific_numbers_are_numbers(tiny_task, tmp_path):
    """[c_lr_sci] PyYAML reads `lr: 1e-3` as a string; it is the number it looks like."""
    from embgraft.training.config import TrainConfig

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("lr: 1e-3\nembedding_lr: 5E-4\n", encoding="utf-8")
    c = TrainConfig.from_sources(file=cfg, overrides={"train": "t.tsv", "dev": "d.tsv"})
    assert (c.lr, c.embedding_lr) == (0.001, 0.0005)


@pytest.mark.parametrize("more, says", [
    (["--split", "0.8,abc,0.1"], "split must be numbers"),
    (["--kernel-sizes", "2,x", "--model", "textcnn"], "kernel_sizes must be integers"),
    (["--n-filters", "0", "--model", "textcnn"], "n_filters must be a positive integer"),
    (["--kernel-sizes", "0", "--model", "textcnn"], "kernel_sizes must be positive widths"),
    (["--kernel-sizes=-2", "--model", "textcnn"], "kernel_sizes must be positive widths"),
    (["--n-heads", "0", "--model", "transformer"], "n_heads must be a positive integer"),
    (["--level", "word"], "level 'word' does not apply with --graft"),
])
def test_bad_model_options_are_caught_before_anything_is_written(tiny_task, tmp_path, capsys, more, says):
    """[f44 f46 f15 f16 f17 f20 f48]"""
    argv = train_args(tiny_task, tmp_path / "run")
    i = argv.index("--model")
    argv[i:i + 2] = []  # the case names its own model where it needs one
    refused([*argv, *(more if "--model" in more else [*more, "--model", "bag"])], capsys, says)
    assert not (tmp_path / "run").exists()


def test_data_with_dev_is_an_error(tiny_task, tmp_path, capsys):
    """[f45]"""
    refused(["train", "--data", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--graft",
             str(tiny_task["graft"]), "--model", "bag", "--out", str(tmp_path / "run"), *FAST], capsys,
            "--data is split")


def test_cv_refuses_split(tiny_task, tmp_path, capsys):
    """[cv09]"""
    refused(["cv", "--data", str(tiny_task["train"]), "--split", "0.5,0.3,0.2", "--graft", str(tiny_task["graft"]),
             "--model", "bag", "--folds", "2", "--out", str(tmp_path / "cv"), *FAST], capsys, "--split does not apply")


def test_gbk_config_and_classes_files_are_one_line_errors(tiny_task, tmp_path, capsys):
    """[c_config_gbk d27_classes_gbk]"""
    cfg = tmp_path / "gbk.yaml"
    cfg.write_bytes("model: bag\n# 中文注释\n".encode("gbk"))
    refused(train_args(tiny_task, tmp_path / "run", "--config", str(cfg)), capsys, "gbk.yaml:2", "UTF-8")
    classes = tmp_path / "cls.txt"
    classes.write_bytes("体育\n财经\n".encode("gbk"))
    refused(train_args(tiny_task, tmp_path / "run", "--classes", str(classes)), capsys, "cls.txt:1", "UTF-8")
    assert not (tmp_path / "run").exists()


def test_resume_refuses_changed_data_and_accepts_another_spelling(tiny_task, tmp_path, capsys):
    """[z10 r06]"""
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=3, tensorboard="off", batch_size=16)
    quiet = dict(progress=False, log=lambda *a, **k: None)
    train(cfg, out=tmp_path / "run", stop_after_epoch=1, **quiet)
    respelled = TrainConfig(**{**cfg.to_dict(), "graft": str(tiny_task["graft"]) + "/",
                               "split": tuple(cfg.split), "teachers": ()})
    assert train(respelled, out=tmp_path / "run", resume=True, **quiet).metrics["epochs_run"] == 3
    train(cfg, out=tmp_path / "run2", stop_after_epoch=1, **quiet)
    with open(tiny_task["train"], "a", encoding="utf-8") as f:
        f.write("球赛冠军\t体育\n")
    with pytest.raises(ConfigError, match="train changed since the run started"):
        train(cfg, out=tmp_path / "run2", resume=True, **quiet)


def test_resumed_steps_are_logged_once(tiny_task, tmp_path):
    """[z06] history_steps.csv after a resume: every step once."""
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), graft=str(tiny_task["graft"]),
                      model="bag", epochs=3, tensorboard="off", batch_size=16, log_every=2, patience=None)
    quiet = dict(progress=False, log=lambda *a, **k: None)
    train(cfg, out=tmp_path / "run", stop_after_epoch=2, **quiet)
    train(cfg, out=tmp_path / "run", resume=True, **quiet)
    steps = [line.split(",")[0] for line in (tmp_path / "run" / "history_steps.csv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(2, 25, 2)]  # 8 steps an epoch, 3 epochs


def test_a_runs_config_json_is_a_config(tiny_task, tmp_path, run):
    """[c_rerun_from_config_json] config.json's run facts are ignored when it is given back."""
    from embgraft.training.config import TrainConfig

    again = TrainConfig.from_sources(file=run / "config.json")
    assert again.to_dict() == TrainConfig.from_sources(file=run / "config.json", overrides={}).to_dict()
    assert again.model == "bag" and again.graft == str(tiny_task["graft"])


def test_predict_names_a_missing_run_directory(tmp_path, tiny_task, capsys):
    """[p34 p35]"""
    refused(["predict", str(tmp_path / "typo"), "股市"], capsys, "no such directory")
    refused(["predict", str(tiny_task["train"]), "股市"], capsys, "not a run directory")


def test_predict_on_a_device_this_machine_lacks(run, capsys):
    """[p25 p26]"""
    import torch

    if not torch.cuda.is_available():
        refused(["predict", str(run), "股市", "--device", "cuda"], capsys, "no CUDA device")
    refused(["predict", str(run), "股市", "--device", "tpu"], capsys, "device")


def test_classifier_predict_takes_one_string_as_one_text(run):
    """[a02 a05]"""
    from embgraft.training.classifier import Classifier

    clf = Classifier.load(run)
    assert len(clf.predict("湖人队击败勇士")) == 1
    assert clf.predict("湖人队击败勇士") == clf.predict(["湖人队击败勇士"])
    with pytest.raises(ConfigError, match="texts must be strings"):
        clf.predict([b"abc"])


def test_a_write_error_names_the_output_not_its_temporary_name(run, tmp_path, capsys):
    """[ro: write errors named .evaluation.tmp-xxxx]"""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        refused(["evaluate", str(run), "--data", str(run.parent.parent / "test.tsv"), "--out", str(ro / "ev")],
                capsys, str(ro))
    finally:
        ro.chmod(0o755)


def test_malformed_file_error_is_what_corrupt_runs_raise(run, tmp_path):
    from embgraft.training.classifier import Classifier

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    (bad / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(MalformedFileError):
        Classifier.load(bad)


def test_a_gb18030_vector_file_is_named_not_grafted(tiny_task, tmp_path, capsys):
    """[g07] a GB18030 copy of a vector file used to graft with exit 0, matching its ASCII only."""
    text = tiny_task["vectors"].read_text(encoding="utf-8")
    gbk = tmp_path / "gbk.vec"
    gbk.write_bytes(text.encode("gb18030"))
    refused(["graft", "--source", str(gbk), "--corpus", str(tiny_task["train"]), "--out", str(tmp_path / "g"),
             "--no-progress"], capsys, "gbk.vec:2", "GB18030")
    assert not (tmp_path / "g").exists()


def test_labels_mixing_ids_and_names_are_refused_without_classes(tiny_task, tmp_path, capsys):
    """[d14c] `3` and `society` in one training file used to become 2 classes each."""
    lines = tiny_task["train"].read_text(encoding="utf-8").splitlines()
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("".join(f"{ln.split(chr(9))[0]}\t{'0' if i % 2 else ln.split(chr(9))[1]}\n"
                             for i, ln in enumerate(lines)), encoding="utf-8")
    argv = train_args(tiny_task, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(mixed)
    refused(argv, capsys, "mixed.tsv:1", "class ids", "--classes")


# -- 9. outputs that keep their rows ----------------------------------------------------------------
def test_predict_keeps_one_row_per_input_line_and_escapes_fields(run, tmp_path, capsys):
    """[p14 p28 p29 p30 p02 p03 p23] blank lines keep their row; tabs and newlines are escaped; an
    empty text is refused as in training; an empty input file says so."""
    inp = tmp_path / "in.txt"
    inp.write_text("球赛冠军\n\n银行利率\n  \n", encoding="utf-8")
    assert main(["predict", str(run), "--input", str(inp), "--output", str(tmp_path / "p.tsv")]) == 0
    rows = (tmp_path / "p.tsv").read_text(encoding="utf-8").split("\n")[1:-1]
    assert [r.split("\t")[0] for r in rows] == ["球赛冠军", "", "银行利率", ""]
    assert rows[1] == "\t\t\t[]" and rows[0].split("\t")[1]
    assert main(["predict", str(run), "左\t右", "上\n下", "--output", str(tmp_path / "t.tsv")]) == 0
    rows = (tmp_path / "t.tsv").read_text(encoding="utf-8").split("\n")[1:-1]
    assert [r.split("\t")[0] for r in rows] == ["左\\t右", "上\\n下"] and all(r.count("\t") == 3 for r in rows)
    assert main(["predict", str(run), "左\t右", "--output", str(tmp_path / "t.jsonl")]) == 0
    assert json.loads((tmp_path / "t.jsonl").read_text(encoding="utf-8"))["text"] == "左\t右"
    capsys.readouterr()
    refused(["predict", str(run), "   "], capsys, "text 1 is empty")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    refused(["predict", str(run), "--input", str(empty)], capsys, "empty.txt", "no text")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("keep", encoding="utf-8")
    refused(["predict", str(run), "x", "--output", str(full), "--force"], capsys, "is a directory")  # [e15]
    assert (full / "keep.txt").read_text(encoding="utf-8") == "keep"


# -- 8. messages that point at the cause ------------------------------------------------------------
def test_a_txt_read_as_plain_text_names_the_line_that_made_it_so(tiny_task, tmp_path, capsys):
    """[d15 d05 d22 d03] a .txt whose 21st line has no tab was read as plain text, and the error
    blamed line 1."""
    lines = tiny_task["train"].read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "nolabel.txt"
    bad.write_text("\n".join(lines[:20] + ["没有标签的一行"] + lines[20:]) + "\n", encoding="utf-8")
    argv = train_args(tiny_task, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(bad)
    refused(argv, capsys, "nolabel.txt:1", "line 21 has no tab", "--format tsv")


def test_a_stray_tab_past_the_sniffed_lines_is_an_error_not_a_class(tiny_task, tmp_path, capsys):
    """[d05c] a tab inside a text past line 50 of a .txt became an 11th class."""
    lines = tiny_task["train"].read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "tab60.txt"
    bad.write_text("\n".join(lines[:59] + ["左边\t右边\t体育"] + lines[59:]) + "\n", encoding="utf-8")
    argv = train_args(tiny_task, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(bad)
    refused(argv, capsys, "tab60.txt:60", "2 tabs", "--format tsv")


def test_a_directory_given_as_data_says_so(tiny_task, tmp_path, capsys):
    """[d24]"""
    (tmp_path / "bad").mkdir()
    argv = train_args(tiny_task, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(tmp_path / "bad")
    refused(argv, capsys, "is a directory, not a data file")


def test_an_unterminated_csv_quote_names_its_line(tiny_task, tmp_path, capsys):
    """[d11c] the error named the file's last line."""
    rows = [ln.split("\t") for ln in tiny_task["train"].read_text(encoding="utf-8").splitlines()]
    bad = tmp_path / "q.csv"
    body = [f"{t},{y}" for t, y in rows]
    body[30] = '"' + body[30]
    bad.write_text("text,label\n" + "\n".join(body) + "\n", encoding="utf-8")
    argv = train_args(tiny_task, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(bad)
    refused(argv, capsys, "q.csv:32", "unterminated quote")
