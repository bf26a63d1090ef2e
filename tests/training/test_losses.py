import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embgraft.errors import MalformedFileError
from embgraft.training.losses import class_weights, classification_loss


def test_without_weights_or_gamma_it_is_cross_entropy_itself():
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 3), torch.tensor([0, 1, 2, 2, 1, 0, 2])
    assert torch.equal(classification_loss(logits, labels, label_smoothing=0.1),
                       F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_focal_and_weighted_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    w = torch.tensor([1.0, 3.0])
    p = torch.softmax(logits, 1)[torch.arange(3), labels]
    expected = (w[labels] * (1 - p) ** 2 * -p.log()).sum() / w[labels].sum()
    assert torch.allclose(classification_loss(logits, labels, weight=w, gamma=2.0), expected)
    # gamma 0 with weights: torch's weighted mean
    assert torch.allclose(classification_loss(logits, labels, weight=w), F.cross_entropy(logits, labels, weight=w))


def test_balanced_weights_and_a_weights_file(tmp_path):
    labels = np.array([0] * 9 + [1])
    assert class_weights("balanced", labels, ["a", "b"]).tolist() == pytest.approx([10 / 18, 10 / 2])
    f = tmp_path / "w.tsv"
    f.write_text("b\t2.5\na\t1\n", encoding="utf-8")
    assert class_weights(str(f), labels, ["a", "b"]).tolist() == [1.0, 2.5]
    f.write_text("a\t1\nc\t2\n", encoding="utf-8")
    with pytest.raises(MalformedFileError, match=r"w.tsv:2: 'c' is not one of the classes"):
        class_weights(str(f), labels, ["a", "b"])


@pytest.mark.slow
def test_class_weights_and_focal_loss_lift_macro_f1_on_a_1_to_9_split(shared_data, tmp_path):
    """Real THUCNews titles, finance : sports = 30 : 270 in training, balanced dev and test."""
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    root = shared_data / "thucnews-10k"

    def rows(name):
        return [line.split("\t") for line in (root / name).read_text(encoding="utf-8").splitlines()]

    def pick(name, counts):
        out = []
        for label, n in counts.items():
            out += [r for r in rows(name) if r[1] == label][:n]
        return out

    for name, counts in (("train.txt", {"0": 30, "7": 270}), ("dev.txt", {"0": 50, "7": 50}),
                         ("test.txt", {"0": 300, "7": 300})):
        (tmp_path / name).write_text("".join(f"{t}\t{y}\n" for t, y in pick(name, counts)), encoding="utf-8")
    base = dict(train=str(tmp_path / "train.txt"), dev=str(tmp_path / "dev.txt"), test=str(tmp_path / "test.txt"),
                model="bag", epochs=20, embedding_dim=64, metric="macro_f1", tensorboard="off", min_steps=0)
    quiet = dict(progress=False, log=lambda *a, **k: None)
    plain = train(TrainConfig(**base), out=tmp_path / "plain", **quiet).metrics["test"]["macro_f1"]
    weighted = train(TrainConfig(**base, class_weight="balanced"), out=tmp_path / "w", **quiet).metrics["test"]
    focal = train(TrainConfig(**base, class_weight="balanced", focal_gamma=2.0), out=tmp_path / "f", **quiet)
    assert weighted["macro_f1"] > plain + 0.05, (plain, weighted["macro_f1"])
    assert focal.metrics["test"]["macro_f1"] > plain + 0.05
    assert focal.metrics["class_weights"] == pytest.approx({"0": 300 / 60, "7": 300 / 540})
