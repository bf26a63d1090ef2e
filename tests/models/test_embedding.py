import pytest
import torch

from embgraft.models import MODELS, build_model
from embgraft.models.embedding import TokenEmbedding


def weight():
    torch.manual_seed(0)
    w = torch.randn(7, 6)
    w[0] = 0
    return w


@pytest.mark.parametrize("frozen", [None, [0, 1, 1, 0, 0, 1, 0], [1] * 7])
def test_lookup_bag_and_full_weight_match_the_table(frozen):
    w = weight()
    emb = TokenEmbedding(w, frozen=None if frozen is None else torch.tensor(frozen, dtype=torch.bool))
    ids = torch.tensor([[1, 2, 3, 0], [5, 4, 6, 6]])
    assert torch.equal(emb(ids), w[ids])
    assert torch.allclose(emb.bag(ids), torch.stack([w[[1, 2, 3]].mean(0), w[[5, 4, 6, 6]].mean(0)]))
    assert torch.equal(emb.full_weight(), w)


def test_partial_rows_stay_bit_identical_under_adamw_decay_and_pad_stays_zero():
    w = weight()
    frozen = torch.tensor([0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    emb = TokenEmbedding(w, frozen=frozen)
    opt = torch.optim.AdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(5):
        ids = torch.tensor([[1, 2, 3, 4, 5, 6, 0]])
        loss = (emb(ids) ** 2).sum() + emb.bag(ids).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = emb.full_weight()
    assert torch.equal(after[frozen], w[frozen])
    assert not torch.equal(after[[3, 4, 6]], w[[3, 4, 6]])
    assert torch.equal(after[0], torch.zeros(6))


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if not s.hf])
def test_every_model_maps_ids_to_logits(name):
    torch.manual_seed(0)
    emb = TokenEmbedding(weight(), padding_idx=0)
    model = build_model(name, embedding=emb, n_classes=3, options={"n_heads": 2, "n_filters": 5, "hidden_dim": 8})
    ids = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 0, 0, 0]])
    out = model(ids)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.sum().backward()
    assert emb.trainable.grad is not None and emb.trainable.grad[-1].abs().sum() == 0  # padding row


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("frozen", [None, [0, 1, 1, 0, 0, 1, 0]])
def test_bag_gradient_matches_a_plain_mean_and_skips_padding(sparse, frozen):
    w = weight()
    emb = TokenEmbedding(w, frozen=None if frozen is None else torch.tensor(frozen, dtype=torch.bool),
                         sparse=sparse)
    ids = torch.tensor([[1, 2, 3, 3, 0], [5, 4, 6, 0, 0], [0, 0, 0, 0, 0]])
    upstream = torch.randn(3, 6)
    (emb.bag(ids) * upstream).sum().backward()
    ref = w.clone().requires_grad_(True)
    mask = (ids != 0).unsqueeze(-1).float()
    expected = (ref[ids] * mask).sum(1) / mask.sum(1).clamp_min(1)
    (expected * upstream).sum().backward()
    grad = emb.trainable.grad.to_dense() if sparse else emb.trainable.grad
    rows = torch.nonzero(emb.trainable_mask).squeeze(1)
    assert torch.allclose(grad[emb.t_slot[rows]], ref.grad[rows], atol=1e-6)
    assert not grad[-1].any()  # the padding / "not mine" row gets nothing
    assert torch.allclose(emb.bag(ids), expected.detach(), atol=1e-6)


def test_dropout_keeps_expectation_and_is_identity_in_eval():
    from embgraft.models.dropout import Dropout

    torch.manual_seed(0)
    d = Dropout(0.5)
    x = torch.ones(200, 500)
    y = d(x)
    assert set(y.unique().tolist()) == {0.0, 2.0} and abs(y.mean().item() - 1) < 0.02
    assert torch.equal(d.eval()(x), x)


def _masked_max(w, ids):
    rows = w[ids].masked_fill((ids == 0).unsqueeze(-1), float("-inf"))
    out = rows.amax(1)
    return out.masked_fill(torch.isinf(out), 0.0)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("frozen", [None, [0, 1, 1, 0, 0, 1, 0]])
def test_max_bag_ignores_padding_and_sends_each_gradient_to_the_winning_row(sparse, frozen):
    w = weight()
    w[3] = -torch.arange(1.0, 7.0)  # all negative: a padding zero must not win
    emb = TokenEmbedding(w, frozen=None if frozen is None else torch.tensor(frozen, dtype=torch.bool),
                         sparse=sparse)
    ids = torch.tensor([[1, 2, 3, 3, 0], [3, 0, 0, 0, 0], [5, 4, 6, 0, 0], [0, 0, 0, 0, 0]])
    upstream = torch.randn(4, 6)
    out = emb.bag(ids, mode="max")
    (out * upstream).sum().backward()
    ref = w.clone().requires_grad_(True)
    expected = _masked_max(ref, ids)
    (expected * upstream).sum().backward()
    assert torch.equal(out.detach(), expected.detach())
    assert torch.equal(out[1].detach(), w[3]) and not out[3].any()  # one negative row; no row at all
    grad = emb.trainable.grad.to_dense() if sparse else emb.trainable.grad
    rows = torch.nonzero(emb.trainable_mask).squeeze(1)
    # row 3 appears twice in the first text: its gradient counts once per dimension it won
    assert torch.equal(grad[emb.t_slot[rows]], ref.grad[rows])
    assert not grad[-1].any()
    with torch.no_grad():
        assert torch.equal(emb.bag(ids, mode="max"), expected.detach())


def test_bag_pooling_mean_max_concatenates_both_and_rejects_unknown_modes():
    from embgraft.errors import ConfigError

    w = weight()
    emb = TokenEmbedding(w)
    model = build_model("bag", embedding=emb, n_classes=2, options={"pooling": "mean+max", "dropout": 0.0})
    assert model.out.in_features == 12
    ids = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]])
    features = torch.cat([emb.bag(ids), _masked_max(w, ids)], dim=1)
    assert torch.allclose(model(ids), model.out(features))
    with pytest.raises(ConfigError, match="bag pooling must be one of"):
        build_model("bag", embedding=emb, n_classes=2, options={"pooling": "attention"})
    with pytest.raises(ValueError, match="bag mode must be mean or max"):
        emb.bag(ids, mode="sum")
