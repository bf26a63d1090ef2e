"""Long texts as windows (``--chunk``): scored apart, their logits pooled, in training and serving."""

import numpy as np
import pytest
import torch

from embgraft.text.tokenize import Recipe
from embgraft.text.vocab import Vocab
from embgraft.training.batches import pool_windows
from embgraft.training.encode import Chunking, TextEncoder, encode


def test_windows_cover_the_text_and_end_with_it():
    assert Chunking(4, 4).starts(10) == [0, 4, 6]
    assert Chunking(4, 2).starts(8) == [0, 2, 4]
    assert Chunking(4, 1, max_windows=3).starts(100) == [0, 48, 96]
    vocab = Vocab.from_tokens(list("abcdefghij"))
    enc = TextEncoder(vocab, Recipe(level="char"), chunks=Chunking(4, 4))
    assert enc.windows("abc") == [vocab.encode("abc")]  # within one window: as without chunking
    assert enc.windows("abcdefghij") == [vocab.encode("abcd"), vocab.encode("efgh"), vocab.encode("ghij")]
    data = encode(["abcdefghij", "ab"], np.array([0, 1]), enc)
    assert data.doc.tolist() == [0, 0, 0, 1] and len(data) == 2 and data.text_lengths.tolist() == [12, 2]


def test_window_logits_are_pooled_per_text():
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]])
    segments = torch.tensor([0, 0, 1])
    assert pool_windows(logits, segments, 2, "mean").tolist() == [[2.0, 1.0], [0.0, 5.0]]
    assert pool_windows(logits, segments, 2, "max").tolist() == [[3.0, 2.0], [0.0, 5.0]]
    assert pool_windows(logits, None, 3, "mean") is logits


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["mean", "max"])
def test_a_label_carried_by_the_end_of_a_text_is_learned_with_chunks_and_missed_without(tmp_path, pool):
    from embgraft.training.classifier import Classifier
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    rng = np.random.default_rng(0)
    filler, ends = list("的一是在不了有和人这中大为上个国"), {"体育": "球赛冠军队员", "财经": "股市银行利率"}

    def docs(n):
        rows = []
        for _ in range(n):
            label = str(rng.choice(list(ends)))
            rows.append(("".join(rng.choice(filler, 120)) + "".join(rng.choice(list(ends[label]), 8)), label))
        return rows

    for split, n in (("train", 200), ("dev", 40), ("test", 60)):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{t}\t{y}\n" for t, y in docs(n)), encoding="utf-8")
    base = dict(train=str(tmp_path / "train.tsv"), dev=str(tmp_path / "dev.tsv"), test=str(tmp_path / "test.tsv"),
                model="bag", max_len=32, epochs=15, batch_size=16, embedding_dim=16, lr=0.05, embedding_lr=0.05,
                label_smoothing=0.0, tensorboard="off", min_steps=0)
    quiet = dict(progress=False, log=lambda *a, **k: None)
    cut = train(TrainConfig(**base), out=tmp_path / "cut", **quiet).metrics["test"]["accuracy"]
    chunked = train(TrainConfig(**base, chunk=32, chunk_pool=pool), out=tmp_path / "chunked", **quiet)
    assert cut < 0.7 and chunked.metrics["test"]["accuracy"] > 0.9, (cut, chunked.metrics["test"]["accuracy"])
    # serving pools the same windows: the run's own test score, again from the loaded run
    texts = [ln.split("\t") for ln in (tmp_path / "test.tsv").read_text(encoding="utf-8").splitlines()]
    clf = Classifier.load(tmp_path / "chunked")
    served = np.mean([p[0][0] == y for p, (_, y) in zip(clf.predict([t for t, _ in texts]), texts)])
    assert served == pytest.approx(chunked.metrics["test"]["accuracy"])
