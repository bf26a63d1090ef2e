import csv
import json

import numpy as np
import pytest
import torch

from embgraft.training import rundir
from embgraft.training.classifier import Classifier
from embgraft.training.config import TrainConfig
from embgraft.errors import ConfigError, OutputExistsError
from embgraft.files import save_tensors
from embgraft.grafting.result import GraftResult
from embgraft.training.loop import train

QUIET = dict(progress=False, log=lambda *a, **k: None)


def config(task, **kw):
    base = dict(train=str(task["train"]), dev=str(task["dev"]), test=str(task["test"]), graft=str(task["graft"]),
                model="bag", epochs=3, batch_size=16, lr=0.05, patience=None, seed=1, tensorboard="off")
    base.update(kw)
    return TrainConfig(**base)


def final_embedding(run):
    return rundir.load_model_state(run)["embedding.weight"].numpy()


def test_run_directory_is_a_loadable_bundle(tiny_task, tmp_path):
    out = train(config(tiny_task), out=tmp_path / "run", **QUIET)
    run = out.out
    assert {p.name for p in run.iterdir()} >= {
        "config.json", "recipe.json", "vocab.txt", "labels.txt", "provenance.tsv", "graft_report.json",
        "embedding_init.safetensors", "model.safetensors", "metrics.json", "history.csv", "checkpoints"}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["test"]) >= {"accuracy", "macro_f1"} and metrics["test"]["n"] == 40
    assert metrics["test"]["accuracy"] > 0.9  # the classes share no character: an easy task
    rows = list(csv.DictReader(open(run / "history.csv", encoding="utf-8")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert (run / "labels.txt").read_text(encoding="utf-8") == "体育\n财经\n"
    clf = Classifier.load(run)
    proba = clf.predict_proba(["球赛冠军", "银行利率基金"])
    assert np.allclose(proba.sum(axis=1), 1.0)
    top = clf.predict(["球赛冠军", "银行利率基金"], top_k=2)
    assert [t[0][0] for t in top] == ["体育", "财经"] and len(top[0]) == 2
    # the weights loaded for serving are exactly the best epoch's
    assert np.array_equal(clf.model.embedding.full_weight().detach().numpy(), final_embedding(run))


def test_frozen_embedding_is_unchanged(tiny_task, tmp_path):
    run = train(config(tiny_task, embedding="frozen"), out=tmp_path / "run", **QUIET).out
    assert np.array_equal(final_embedding(run), GraftResult.load(tiny_task["graft"]).weights)


def test_partial_keeps_found_rows_bit_for_bit_and_trains_the_rest(tiny_task, tmp_path):
    graft = GraftResult.load(tiny_task["graft"])
    found = graft.found_mask()
    assert found.sum() >= 5 and (~found).sum() >= 5
    run = train(config(tiny_task, embedding="partial", weight_decay=0.5, sparse="off"), out=tmp_path / "run",
                **QUIET).out
    after = final_embedding(run)
    assert np.array_equal(after[found], graft.weights[found])
    moved = ~found & np.array([p.stage != "special" for p in graft.provenance])  # <unk> never occurs
    assert moved.sum() >= 5
    assert np.all(np.any(after[moved] != graft.weights[moved], axis=1))
    assert not after[graft.vocab.pad_id].any()


def test_gradual_freezes_the_embedding_for_n_epochs(tiny_task, tmp_path):
    one = train(config(tiny_task, embedding="gradual:5", epochs=1), out=tmp_path / "a", **QUIET).out
    assert np.array_equal(final_embedding(one), GraftResult.load(tiny_task["graft"]).weights)
    two = train(config(tiny_task, embedding="gradual:1", epochs=2), out=tmp_path / "b", **QUIET).out
    assert not np.array_equal(final_embedding(two), GraftResult.load(tiny_task["graft"]).weights)


@pytest.mark.parametrize("model, extra", [("bag", {}), ("textcnn", {"n_filters": 8, "schedule": "cosine",
                                                                   "warmup": 0.2})])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tiny_task, tmp_path, model, extra):
    cfg = config(tiny_task, model=model, epochs=4, **extra)
    whole = train(cfg, out=tmp_path / "whole", **QUIET).out
    part = train(cfg, out=tmp_path / "part", stop_after_epoch=2, **QUIET).out
    assert not (part / "model.safetensors").exists()
    resumed = train(cfg, out=tmp_path / "part", resume=True, **QUIET).out
    a, b = rundir.load_model_state(whole), rundir.load_model_state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = lambda run: [r["dev_accuracy"] for r in csv.DictReader(open(run / "history.csv", encoding="utf-8"))]
    assert hist(whole) == hist(resumed)


def test_resume_refuses_a_different_config(tiny_task, tmp_path):
    train(config(tiny_task), out=tmp_path / "run", stop_after_epoch=1, **QUIET)
    with pytest.raises(ConfigError, match=r"config differs \(lr: 0.05 then, 0.1 now\)"):
        train(config(tiny_task, lr=0.1), out=tmp_path / "run", resume=True, **QUIET)


def test_existing_run_dir_needs_force(tiny_task, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(OutputExistsError, match="--force"):
        train(config(tiny_task), out=tmp_path / "run", **QUIET)


def test_random_init_keeps_vocab_and_scale_but_not_rows(tiny_task, tmp_path):
    run = train(config(tiny_task, random_init=True, epochs=1), out=tmp_path / "run", **QUIET).out
    init = rundir.load_init_embedding(run)
    graft = GraftResult.load(tiny_task["graft"])
    assert init.shape == graft.weights.shape and not init[graft.found_mask()].tolist() == \
        graft.weights[graft.found_mask()].tolist()
    assert not init[graft.vocab.pad_id].any()
    methods = {line.split("\t")[2] for line in (run / "provenance.tsv").read_text(encoding="utf-8").splitlines()[1:]}
    assert methods == {"special", "init:random"}


def test_ngram_bag_adds_composed_rows(tiny_task, tmp_path):
    run = train(config(tiny_task, ngrams=2, epochs=1), out=tmp_path / "run", **QUIET).out
    init = rundir.load_init_embedding(run)
    from embgraft.text.vocab import Vocab

    vocab = Vocab.load(run / "vocab.txt")
    graft = GraftResult.load(tiny_task["graft"])
    bigrams = [t for t in vocab.tokens if len(t) == 2 and not t.startswith("<")]
    assert len(bigrams) > 20 and len(vocab) == len(graft.vocab) + len(bigrams)
    g = bigrams[0]
    expected = (graft.weights[graft.vocab.index(g[0])] + graft.weights[graft.vocab.index(g[1])]) / 2
    assert np.array_equal(init[vocab.index(g)], expected.astype(np.float32))
    assert Classifier.load(run).predict(["球赛"])[0][0][0] == "体育"


def test_textcnn_with_ngram_rows_trains_sparse_and_reloads_exactly(tiny_task, tmp_path):
    run = train(config(tiny_task, model="textcnn", n_filters=4, ngrams=2, epochs=2), out=tmp_path / "run",
                **QUIET).out
    from embgraft.text.vocab import Vocab

    graft = GraftResult.load(tiny_task["graft"])
    vocab = Vocab.load(run / "vocab.txt")
    state = rundir.load_model_state(run)
    # the n-gram rows follow the graft's rows, and the model knows where they start
    assert int(state["ngram_start"]) == len(graft.vocab) < len(vocab)
    from embgraft.training.prepare import use_sparse

    assert use_sparse(config(tiny_task, model="textcnn", ngrams=2))
    assert not use_sparse(config(tiny_task, model="textcnn"))
    init, final = rundir.load_init_embedding(run), final_embedding(run)
    seen = vocab.index("球赛")
    assert not np.array_equal(init[seen], final[seen])  # a bigram of the data was trained
    clf = Classifier.load(run)
    texts = ["球赛冠军", "银行利率基金"]
    assert [t[0][0] for t in clf.predict(texts)] == ["体育", "财经"]
    assert np.array_equal(clf.model.embedding.full_weight().detach().numpy(), final)


def test_ngrams_are_refused_for_models_without_ngram_rows():
    with pytest.raises(ConfigError, match=r"ngrams > 1 is for models that take n-gram rows \(bag, textcnn\)"):
        TrainConfig(train="t.tsv", dev="d.tsv", model="bilstm", ngrams=2)


def test_length_bucketing_by_default_only_for_bags():
    assert TrainConfig(train="t.tsv", dev="d.tsv", model="bag").length_bucket == 50
    for model in ("textcnn", "bilstm", "transformer"):
        assert TrainConfig(train="t.tsv", dev="d.tsv", model=model).length_bucket == 1
    assert TrainConfig(train="t.tsv", dev="d.tsv", model="textcnn", length_bucket=7).length_bucket == 7


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        TrainConfig(train="t.tsv", model="cnn", epochs=0, embedding="partial", schedule="warp", lr=-1,
                    length_bucket=0)
    with pytest.raises(ConfigError) as e2:
        TrainConfig(train="t.tsv", dev="d.tsv", model="bilstm", pooling="mean+max", epochs=0)
    assert "bilstm pooling must be one of ['max', 'mean', 'attention'], not 'mean+max'" in str(e2.value)
    assert "epochs must be a positive integer" in str(e2.value)
    msg = str(e.value)
    for part in ("--dev is needed", "model must be one of", "epochs must be a positive integer",
                 "embedding partial keeps the rows", "schedule must be one of", "lr must be a positive number",
                 "length_bucket must be a positive integer"):
        assert part in msg


def test_one_file_split_into_train_dev_test(tiny_task, tmp_path):
    both = tmp_path / "all.tsv"
    both.write_text(tiny_task["train"].read_text(encoding="utf-8") + tiny_task["dev"].read_text(encoding="utf-8"),
                    encoding="utf-8")
    out = train(TrainConfig(data=str(both), split=(0.6, 0.2, 0.2), graft=str(tiny_task["graft"]), model="bag",
                            epochs=1, lr=0.05, tensorboard="off"), out=tmp_path / "run", **QUIET)
    assert (out.metrics["dev"]["n"], out.metrics["test"]["n"]) == (32, 32)


def test_step_log_and_schedule_in_history(tiny_task, tmp_path):
    run = train(config(tiny_task, schedule="linear", log_every=2, epochs=2), out=tmp_path / "run", **QUIET).out
    steps = list(csv.DictReader(open(run / "history_steps.csv", encoding="utf-8")))
    assert [int(r["step"]) for r in steps] == list(range(2, 17, 2))  # 120 texts / 16 = 8 steps an epoch
    lrs = [float(r["lr"]) for r in steps]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] == pytest.approx(0.05 * (1 - 1 / 16))


def test_bf16_autocast_on_cpu(tiny_task, tmp_path, monkeypatch):
    seen = []  # the dtype of every convolution's output, in training steps and scoring alike
    forward = torch.nn.Conv1d.forward

    def recording(self, x):
        y = forward(self, x)
        seen.append(y.dtype)
        return y

    monkeypatch.setattr(torch.nn.Conv1d, "forward", recording)
    out = train(config(tiny_task, model="textcnn", n_filters=4, amp="bf16", epochs=1), out=tmp_path / "run", **QUIET)
    assert out.metrics["amp"] == "bfloat16" and set(seen) == {torch.bfloat16}
    seen.clear()
    out = train(config(tiny_task, model="textcnn", n_filters=4, amp="off", epochs=1), out=tmp_path / "off", **QUIET)
    assert out.metrics["amp"] is None and set(seen) == {torch.float32}


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from embgraft.training.loop import macro_f1

    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 5, 300), rng.integers(0, 6, 300) % 5
    pred[pred == 4] = 3  # class 4 never predicted
    for n in (5, 7):  # 7: classes absent from both
        assert macro_f1(labels, pred, n) == pytest.approx(
            f1_score(labels, pred, labels=list(range(n)), average="macro", zero_division=0))


def test_load_best_copies_the_checkpoint_in_place_in_row_chunks(tmp_path):
    from embgraft.errors import MalformedFileError

    torch.manual_seed(0)
    saved = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 3))
    (tmp_path / rundir.CKPT_DIR).mkdir()
    save_tensors(tmp_path / rundir.CKPT_DIR / rundir.BEST_TENSORS, saved.state_dict())
    model = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 3))
    table = model[0].weight
    rundir.load_best(tmp_path, model, chunk_bytes=40)  # the table's 176 bytes in chunks of 40, 40, 40, 40, 16
    assert model[0].weight is table  # filled in place, not replaced
    for k, v in saved.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(MalformedFileError, match=r"0.weight: F32 \(11, 4\), the model's is torch.float32 \(12, 4\)"):
        rundir.load_best(tmp_path, torch.nn.Sequential(torch.nn.Embedding(12, 4), torch.nn.Linear(4, 3)))
    with pytest.raises(MalformedFileError, match=r"missing \['2.weight'\], unexpected \[\]"):
        rundir.load_best(tmp_path, torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 3),
                                                       torch.nn.Linear(3, 3, bias=False)))
    with pytest.raises(MalformedFileError, match=r"0.weight: F32 \(11, 4\), the model's is torch.float64"):
        rundir.load_best(tmp_path, torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 3)).double())
    best = tmp_path / rundir.CKPT_DIR / "best.safetensors"
    best.write_bytes(best.read_bytes()[:-10])
    with pytest.raises(MalformedFileError, match="ends early"):
        rundir.load_best(tmp_path, model)
    best.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(MalformedFileError, match="not a safetensors file"):
        rundir.load_best(tmp_path, model)


def test_early_stopping_waits_for_min_steps(tiny_task, tmp_path):
    # a learning rate too small to change a prediction: dev never improves after epoch 1
    common = dict(epochs=10, batch_size=16, lr=1e-12, embedding_lr=1e-12, patience=1)
    quick = train(config(tiny_task, min_steps=0, **common), out=tmp_path / "quick", **QUIET)
    assert quick.metrics["epochs_run"] == 2  # stopped after its first epoch without a gain
    steps_per_epoch = quick.history[0]["step"]
    assert steps_per_epoch == 8  # 120 titles in batches of 16
    waited = train(config(tiny_task, min_steps=5 * steps_per_epoch, **common), out=tmp_path / "waited", **QUIET)
    assert waited.metrics["epochs_run"] == 5 and waited.history[-1]["step"] == 40


def test_a_model_alone_takes_the_settings_its_config_found():
    from embgraft.training.config import MODEL_DEFAULTS

    bag = TrainConfig(train="t.tsv", dev="d.tsv", model="bag")
    assert (bag.lr, bag.batch_size, bag.epochs, bag.label_smoothing) == (0.004, 256, 30, 0.1)
    assert TrainConfig(train="t.tsv", dev="d.tsv", model="bag", lr=0.01).lr == 0.01  # given wins
    for model, values in MODEL_DEFAULTS.items():
        cfg = TrainConfig(train="t.tsv", dev="d.tsv", model=model, hf_model="x" if model == "hf" else None)
        assert {k: getattr(cfg, k) for k in values} == values, model
