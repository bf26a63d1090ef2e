"""Runs on real THUCNews titles for the export tests, trained once per session and per model:
1,500 training titles, a character vocabulary grafted from random 16-dim vectors (so every
character has a row), one epoch. Skipped without ``../shared/data``."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA

THUC = SHARED_DATA / "thucnews-10k"
# model name -> train options; the bag has every feature the encoder has (bigrams, jieba words)
MODELS = {
    "bag": dict(model="bag", ngrams=2, words=True, pooling="mean+max", lr=0.05),
    "textcnn": dict(model="textcnn", n_filters=16, ngrams=2),
    "bilstm": dict(model="bilstm", hidden_dim=16, n_layers=2, pooling="attention"),
    "transformer": dict(model="transformer", n_layers=1, n_heads=2, hidden_dim=32),
}
QUIET = dict(progress=False, log=lambda *a, **k: None)


def real_titles(n: int = 200) -> list[str]:
    """``n`` test titles, then the edge cases: empty, empty after normalisation, very long."""
    lines = (THUC / "test.txt").read_text(encoding="utf-8").splitlines()
    return [ln.split("\t")[0] for ln in lines[:n]] + ["", "  \u3000 ", "\t", "中" * 3000 + "国足球" * 500]


@pytest.fixture(scope="session")
def thuc_graft(tmp_path_factory):
    if not THUC.is_dir():
        pytest.skip(f"THUCNews sample not found at {THUC}")
    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    root = tmp_path_factory.mktemp("thuc")
    for split, n in (("train", 1500), ("dev", 300)):
        lines = (THUC / f"{split}.txt").read_text(encoding="utf-8").splitlines()[:n]
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab = Vocab.from_corpus(root / "train.tsv", level="char")
    rng = np.random.default_rng(0)
    tokens = [t for t in vocab.tokens[2:] if not any(c.isspace() for c in t)]
    rows = [f"{t} " + " ".join(f"{x:.4f}" for x in rng.normal(size=16)) for t in tokens]
    (root / "vectors.txt").write_text(f"{len(rows)} 16\n" + "\n".join(rows) + "\n", encoding="utf-8")
    graft(vocab, str(root / "vectors.txt")).save(root / "graft")
    return root


@pytest.fixture(scope="session")
def thuc_run(thuc_graft):
    """``thuc_run(name)``: the run directory of ``MODELS[name]``, trained on first use."""
    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    made = {}

    def run(name: str):
        if name not in made:
            opts = dict(epochs=1, batch_size=64, lr=3e-3, patience=None, seed=1, tensorboard="off")
            opts.update(MODELS[name])
            cfg = TrainConfig(train=str(thuc_graft / "train.tsv"), dev=str(thuc_graft / "dev.tsv"),
                              graft=str(thuc_graft / "graft"), **opts)
            made[name] = train(cfg, out=thuc_graft / "runs" / name, **QUIET).out
        return made[name]

    return run
