import json
from dataclasses import fields

import numpy as np
import pytest
import torch

from embgraft.training.classifier import Classifier
from embgraft.training.config import TrainConfig
from embgraft.training.distill import teacher_targets
from embgraft.training.losses import distill_loss, distill_loss_mse, distill_loss_multilabel_mse
from embgraft.errors import ConfigError
from embgraft.training.loop import train

QUIET = dict(progress=False, log=lambda *a, **k: None)


@pytest.fixture
def teacher(tiny_task, tmp_path):
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), test=str(tiny_task["test"]),
                      graft=str(tiny_task["graft"]), model="bag", epochs=3, batch_size=16, lr=0.05, embedding_lr=0.05, label_smoothing=0.0,
                      patience=None,
                      seed=1, tensorboard="off")
    return train(cfg, out=tmp_path / "teacher", **QUIET).out


def like(run, **kw):
    """The config ``run`` was trained with (the settings in its ``config.json``), with ``kw`` changed."""
    saved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    return TrainConfig(**{**{f.name: saved[f.name] for f in fields(TrainConfig)}, **kw})


def test_distill_loss_is_t_squared_kl_of_the_softened_student():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    q = torch.softmax(logits / 2, dim=1)
    expected = 4 * (soft * (soft.log() - q.log())).sum(dim=1).mean()
    assert torch.allclose(distill_loss(logits, soft, temperature=2.0), expected)
    # nothing to learn when the student already predicts the teachers' distribution
    assert distill_loss(2 * soft.log(), soft, temperature=2.0).abs() < 1e-6


def test_the_mse_loss_compares_centred_logits_with_the_teachers_log_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    z = logits - logits.mean(dim=1, keepdim=True)
    t = soft.log() - soft.log().mean(dim=1, keepdim=True)
    assert torch.allclose(distill_loss_mse(logits, soft), ((z - t) ** 2).mean())
    assert float(distill_loss_mse(logits, soft)) == pytest.approx(0.8373, abs=1e-4)  # by hand: (0.5879 + 4.4356) / 6
    # the teacher's own logits, shifted by any constant per text, leave nothing to learn
    assert distill_loss_mse(soft.log() + torch.tensor([[3.0], [-7.0]]), soft).abs() < 1e-6
    with pytest.raises(ValueError, match="takes no temperature"):
        distill_loss_mse(logits, soft, temperature=2.0)


def test_the_multi_label_mse_loss_compares_per_label_logits():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    soft = torch.tensor([[0.9, 0.2], [0.5, 1.0]])  # a probability of 1: held at 1 - 1e-7, a finite logit
    s = soft.clamp(1e-7, 1 - 1e-7)
    expected = ((logits - torch.log(s / (1 - s))) ** 2).mean()
    assert torch.allclose(distill_loss_multilabel_mse(logits, soft), expected)
    assert torch.isfinite(expected)
    # per-label logits are not shift-invariant: the teacher's own are the only zero
    teacher = torch.log(s / (1 - s))
    assert distill_loss_multilabel_mse(teacher, soft).abs() < 1e-6
    assert distill_loss_multilabel_mse(teacher + 1, soft) == pytest.approx(1.0)


def test_teacher_targets_reorder_classes_soften_and_average(tiny_task, teacher):
    texts = ["球赛冠军", "银行利率基金", "冠军"]
    p = Classifier.load(teacher).predict_proba(texts)
    names = list(Classifier.load(teacher).labels.names)
    flipped = names[::-1]
    t1 = teacher_targets([str(teacher)], texts, np.zeros(3, dtype=np.int64), flipped, temperature=1.0, log=print)
    assert t1.dtype == np.float32 and t1.shape == (3, 2)
    assert np.allclose(t1, p[:, ::-1], atol=1e-6)
    t2 = teacher_targets([str(teacher)], texts, np.zeros(3, dtype=np.int64), names, temperature=2.0, log=print)
    root = np.sqrt(p)
    assert np.allclose(t2, root / root.sum(axis=1, keepdims=True), atol=1e-6)
    # softer than the teacher's own probabilities, and one teacher twice is the same teacher
    assert (t2.max(axis=1) < p.max(axis=1)).all()
    twice = teacher_targets([str(teacher)] * 2, texts, np.zeros(3, dtype=np.int64), names, temperature=2.0,
                            log=print)
    assert np.allclose(twice, t2, atol=1e-6)


def test_teachers_must_be_finished_runs_on_the_same_classes(tiny_task, teacher, tmp_path):
    names = list(Classifier.load(teacher).labels.names)
    with pytest.raises(ConfigError, match="no model.safetensors"):
        teacher_targets([str(tmp_path / "nowhere")], ["冠军"], np.zeros(1, dtype=np.int64), names, temperature=1.0)
    with pytest.raises(ConfigError, match=r"other classes: missing \['科技'\], not in this task \[\]"):
        teacher_targets([str(teacher)], ["冠军"], np.zeros(1, dtype=np.int64), names + ["科技"], temperature=1.0)


def _swap_labels(src, dst):
    swap = {"体育": "财经", "财经": "体育"}
    rows = [line.split("\t") for line in src.read_text(encoding="utf-8").splitlines()]
    dst.write_text("".join(f"{t}\t{swap[label]}\n" for t, label in rows), encoding="utf-8")
    return dst


@pytest.mark.parametrize("loss, temperature", [("kl", 2.0), ("mse", 1.0)])
def test_a_student_with_distill_weight_1_learns_the_teacher_not_the_labels(tiny_task, teacher, tmp_path, loss,
                                                                           temperature):
    swapped = _swap_labels(tiny_task["train"], tmp_path / "swapped.tsv")
    # every training label is wrong: from the labels alone the student learns the opposite classes ...
    alone = train(like(teacher, train=str(swapped)), out=tmp_path / "alone", **QUIET)
    assert alone.metrics["test"]["accuracy"] < 0.1
    # ... from the teacher alone it learns the right ones, with either distillation loss
    student = train(like(teacher, train=str(swapped), teachers=(str(teacher),), distill_weight=1.0,
                         distill_temperature=temperature, distill_loss=loss), out=tmp_path / "student", **QUIET)
    assert student.metrics["test"]["accuracy"] > 0.9
    saved = json.loads((tmp_path / "student" / "config.json").read_text(encoding="utf-8"))
    assert saved["teachers"] == [str(teacher)] and saved["distill_weight"] == 1.0
    assert saved["distill_loss"] == loss


def test_a_bad_teacher_is_refused_before_the_run_directory_is_written(tiny_task, teacher, tmp_path):
    with pytest.raises(ConfigError, match="no model.safetensors"):
        train(like(teacher, teachers=(str(tmp_path / "nowhere"),)), out=tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_distillation_settings_are_validated_with_the_rest():
    with pytest.raises(ConfigError) as e:
        TrainConfig(train="t", dev="d", distill_weight=1.5, distill_temperature=0)
    assert "distill_weight must be in [0, 1], not 1.5" in str(e.value)
    assert "distill_temperature must be a positive number, not 0" in str(e.value)
    with pytest.raises(ConfigError) as e:
        TrainConfig(train="t", dev="d", distill_loss="l2", distill_weight=2)
    assert "distill_loss must be one of ['kl', 'mse'], not 'l2'" in str(e.value)
    assert "distill_weight must be in [0, 1], not 2" in str(e.value)  # all problems in one message
    with pytest.raises(ConfigError, match="distill_temperature is for the kl loss: .* leave it at 1, not 2"):
        TrainConfig(train="t", dev="d", distill_loss="mse", distill_temperature=2)
    assert TrainConfig(train="t", dev="d", teachers="a,b").teachers == ("a", "b")


def test_unlabelled_texts_are_learnt_from_the_teachers(tiny_task, teacher, tmp_path):
    """The labelled set has only finance titles; the sports titles come unlabelled. With them the
    student learns sports from the teacher; without them it cannot."""
    rows = [line.split("\t") for line in tiny_task["train"].read_text(encoding="utf-8").splitlines()]
    finance = tmp_path / "finance.tsv"
    finance.write_text("".join(f"{t}\t{y}\n" for t, y in rows if y == "财经"), encoding="utf-8")
    unlabelled = tmp_path / "unlabelled.txt"
    unlabelled.write_text("".join(f"{t}\n" for t, y in rows if y == "体育"), encoding="utf-8")
    classes = tmp_path / "classes.txt"
    classes.write_text("体育\n财经\n", encoding="utf-8")
    test = [line.split("\t") for line in tiny_task["test"].read_text(encoding="utf-8").splitlines()]
    sports = [t for t, y in test if y == "体育"]

    def sports_recall(out):
        return float(np.mean([p[0][0] == "体育" for p in Classifier.load(out).predict(sports)]))

    common = dict(train=str(finance), classes=str(classes), teachers=(str(teacher),), distill_weight=1.0)
    with_text = train(like(teacher, unlabelled=str(unlabelled), **common), out=tmp_path / "with", **QUIET)
    without = train(like(teacher, **common), out=tmp_path / "without", **QUIET)
    assert with_text.metrics["n_unlabelled"] == 60 and with_text.metrics["n_train"] == 60
    assert sports_recall(tmp_path / "with") > 0.9 and sports_recall(tmp_path / "without") < 0.5


def test_unlabelled_texts_need_teachers_and_name_their_bad_lines(tiny_task, teacher, tmp_path):
    with pytest.raises(ConfigError, match="give --teachers with --unlabelled"):
        TrainConfig(train="t", dev="d", unlabelled="u.txt")
    bad = tmp_path / "u.jsonl"
    bad.write_text('{"text": "球赛"}\n{"text": "  "}\n', encoding="utf-8")
    from embgraft.errors import MalformedFileError

    with pytest.raises(MalformedFileError, match=r"u.jsonl:2: empty text"):
        train(like(teacher, teachers=(str(teacher),), unlabelled=str(bad)), out=tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()
