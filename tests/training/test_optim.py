import math

import pytest
import torch

from embgraft.models.bag import BagClassifier
from embgraft.models.embedding import TokenEmbedding
from embgraft.training.optim import Schedule, build_optimizers, warmup_steps


def test_warmup_steps_count_or_share():
    assert warmup_steps(0.1, 200) == 20 and warmup_steps(15, 200) == 15 and warmup_steps(0, 200) == 0


@pytest.mark.parametrize("name, expected", [
    ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.25, 0.5, 0.75, 1.0, 1 - 2 / 8, 1 - 4 / 8, 0.0]),
    ("cosine", [0.25, 0.5, 0.75, 1.0, 0.5 * (1 + math.cos(math.pi * 2 / 8)), 0.5, 0.0]),
    ("exponential", [0.25, 0.5, 0.75, 1.0, 0.5 ** (2 / 4), 0.5 ** (4 / 4), 0.5 ** (8 / 4)]),
])
def test_schedule_factor_at_given_steps(name, expected):
    s = Schedule(name, total_steps=12, warmup_steps=4, steps_per_epoch=4, gamma=0.5)
    got = [s.factor(step) for step in (0, 1, 2, 3, 6, 8, 12)]
    assert got == pytest.approx(expected, abs=1e-12)


def test_plateau_cuts_after_patience_and_resumes_its_state():
    s = Schedule("plateau", total_steps=100, plateau_factor=0.5, plateau_patience=2)
    for metric in (0.5, 0.6, 0.6, 0.55):
        s.end_epoch(metric)
    assert s.factor(50) == 0.5
    t = Schedule("plateau", total_steps=100, plateau_factor=0.5, plateau_patience=2)
    t.load_state_dict(s.state_dict())
    t.end_epoch(0.59)
    t.end_epoch(0.58)
    assert t.factor(0) == 0.25


def _bag(sparse=False):
    emb = TokenEmbedding(torch.randn(10, 4), padding_idx=0, sparse=sparse)
    return BagClassifier(embedding=emb, n_classes=3)


def test_param_groups_no_decay_on_embedding_biases():
    groups = _bag().param_groups(lr=1e-3, embedding_lr=1e-4, weight_decay=0.1)["dense"]
    by_name = {g["name"]: g for g in groups}
    assert by_name["embedding"]["lr"] == 1e-4 and by_name["embedding"]["weight_decay"] == 0.0
    assert by_name["body"]["weight_decay"] == 0.1 and by_name["body"]["params"][0].shape == (3, 4)
    assert by_name["body_no_decay"]["weight_decay"] == 0.0 and by_name["body_no_decay"]["params"][0].shape == (3,)


def test_sparse_embedding_gets_a_row_wise_adam():
    opts = build_optimizers(_bag(sparse=True), name="adamw", lr=1e-3, embedding_lr=1e-3, weight_decay=0.0)
    assert [type(o).__name__ for o in opts] == ["AdamW", "RowAdam"]


def test_row_adam_follows_sparse_adam_and_leaves_untouched_rows():
    from embgraft.training.optim import RowAdam

    torch.manual_seed(0)
    w0 = torch.randn(50, 8)
    w0[0] = 0
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    opt_a, opt_b = torch.optim.SparseAdam([a], lr=0.01), RowAdam([b], lr=0.01)
    for _ in range(20):
        ids = torch.randint(0, 40, (16, 5))  # rows 40..49 never occur
        for p, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            torch.nn.functional.embedding(ids, p, padding_idx=0, sparse=True).pow(2).sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, w0, atol=1e-2)
    assert torch.equal(b[40:], w0[40:]) and torch.equal(b[0], w0[0])


def test_row_adam_without_the_fused_kernel_computes_the_same(monkeypatch):
    from embgraft.training.optim import RowAdam

    torch.manual_seed(0)
    w0 = torch.randn(30, 4)
    ids = [torch.randint(0, 30, (8, 3)) for _ in range(5)]

    def run():
        p = torch.nn.Parameter(w0.clone())
        opt = RowAdam([p], lr=0.01)
        for batch in ids:
            opt.zero_grad()
            torch.nn.functional.embedding(batch, p, sparse=True).pow(2).sum().backward()
            opt.step()
        return p.detach()

    fused = run()
    monkeypatch.setattr(torch, "_fused_adam_", None, raising=False)
    assert torch.allclose(run(), fused, atol=1e-6)
