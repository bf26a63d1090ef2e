import pytest
import torch

from embgraft.models.embedding import TokenEmbedding
from embgraft.models.textcnn import TextCNN


def model(ngrams=1):
    torch.manual_seed(0)
    w = torch.randn(12, 5)
    w[0] = 0
    # rows 0..7: padding and tokens; rows 8..11: n-grams
    return TextCNN(embedding=TokenEmbedding(w, padding_idx=0), n_classes=3, n_filters=4, kernel_sizes=(2, 3),
                   dropout=0.0, ngrams=ngrams, ngram_start=8 if ngrams > 1 else None)


def test_ngram_branch_convolves_tokens_only_and_bags_everything():
    m = model(ngrams=2).eval()
    ids = torch.tensor([[1, 2, 3, 8, 9, 0, 0, 0],   # 3 tokens, then 2 n-gram ids
                        [4, 5, 6, 7, 10, 11, 9, 0]])  # 4 tokens, then 3 n-gram ids
    tokens = m._token_ids(ids)
    # n-gram ids become padding; the width is the longest text's tokens rounded up to 4
    assert tokens.tolist() == [[1, 2, 3, 0], [4, 5, 6, 7]]
    w = m.embedding.full_weight()
    # each text's windows over its own tokens only, as if it were alone and unpadded
    convs = torch.stack([torch.cat([torch.relu(c(w[t[t != 0]].T[None]).amax(2))[0] for c in m.convs])
                         for t in tokens])
    bag = torch.stack([w[[1, 2, 3, 8, 9]].mean(0), w[[4, 5, 6, 7, 10, 11, 9]].mean(0)])
    expected = m.out(torch.cat([convs, bag], 1))
    assert torch.allclose(m(ids), expected, atol=1e-6)
    # the branch widens the output layer by one embedding width
    assert m.out.in_features == 2 * 4 + 5 and model().out.in_features == 2 * 4


def test_token_ids_pad_up_to_the_widest_kernel():
    m = model(ngrams=2)
    assert m._token_ids(torch.tensor([[1, 8, 9]])).tolist() == [[1, 0, 0, 0]]


def test_ngram_start_is_saved_with_the_weights():
    m = model(ngrams=2)
    assert int(m.state_dict()["ngram_start"]) == 8
    assert "ngram_start" not in model().state_dict()  # plain TextCNNs load as before
    with pytest.raises(ValueError, match="ngram_start"):
        TextCNN(embedding=TokenEmbedding(torch.zeros(4, 2)), n_classes=2, ngrams=2, ngram_start=9)


def test_a_text_scores_the_same_alone_and_in_any_batch():
    """Padding to the batch's longest text never wins a filter's maximum (it used to: one title
    scored 0.2301 alone and 0.3166 inside a file)."""
    m = model().eval()
    short = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        alone = m(short)
        for width in (4, 7, 12):
            batch = torch.zeros(3, width, dtype=torch.long)
            batch[0, :3] = short[0]
            batch[1, :width] = torch.arange(width) % 7 + 1
            batch[2, :2] = torch.tensor([4, 5])
            assert torch.allclose(m(batch)[0], alone[0], atol=1e-6), width
        # a text shorter than the widest kernel: its one window, padded with zeros, still counts
        one = torch.tensor([[6, 0, 0]])
        assert torch.isfinite(m(one)).all()
        assert torch.allclose(m(torch.tensor([[6, 0, 0, 0, 0, 0]]))[0], m(one)[0], atol=1e-6)
