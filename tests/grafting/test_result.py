import numpy as np
import pytest
import torch

from embgraft.errors import OutputExistsError
from embgraft.grafting.cascade import graft
from embgraft.grafting.result import GraftResult
from embgraft.sources import open_source
from embgraft.text.vocab import Vocab

ROWS = "4 3\n中 0.123456 -1.5 2.25\n国 1e-3 0.3 -0.7\nnew york 0.1 0.2 0.3\n人 5 6 7\n"


@pytest.fixture
def result(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text(ROWS, encoding="utf-8")
    vocab = Vocab.from_tokens(["中", "国", "new york", "中国", "猫\t狗"], counts=[5, 4, 3, 2, 1])
    return graft(vocab, p, progress=False)


def test_save_load_round_trip(result, tmp_path):
    out = result.save(tmp_path / "g")
    assert sorted(x.name for x in out.iterdir()) == [
        "embedding.safetensors", "graft_report.json", "provenance.tsv", "recipe.json", "vocab.txt"]
    back = GraftResult.load(out)
    assert back.recipe == result.tokenisation()
    assert np.array_equal(back.weights, result.weights)
    assert back.vocab.tokens == result.vocab.tokens
    assert back.provenance == result.provenance
    assert back.report == result.report
    lines = (out / "provenance.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id\ttoken\tmethod\tsource\tsource_tokens"
    assert lines[6].split("\t")[1:3] == ["中国", "composed:mean"]
    assert lines[6].endswith('["中", "国"]')
    assert lines[7].split("\t")[1] == "猫\\t狗"  # tab escaped


def test_existing_output_needs_force(result, tmp_path):
    result.save(tmp_path / "g")
    with pytest.raises(OutputExistsError, match="--force"):
        result.save(tmp_path / "g")
    result.save(tmp_path / "g", force=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_embedding_module(result):
    emb = result.to_embedding(freeze=True)
    assert isinstance(emb, torch.nn.Embedding)
    assert emb.padding_idx == 0 and emb.weight.requires_grad is False
    assert torch.equal(emb.weight, torch.from_numpy(result.weights))
    assert result.embedding.weight.requires_grad is True
    assert result.found_mask().tolist() == [False, False, True, True, True, False, False]


def test_export_word2vec_reads_back_bit_for_bit(result, tmp_path):
    path = result.export_word2vec(tmp_path / "out.vec")
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0] == "5 3"
    assert text[1] == "中 0.123456 -1.5 2.25"
    src = open_source(path, progress=False)
    got = src.lookup(result.vocab.tokens[2:])
    for tok, vec in got.items():
        assert np.array_equal(vec, result.weights[result.vocab.index(tok)])
    assert len(got) == 5  # "猫\t狗" survives too: the file is split from the right


def test_outputs_get_the_usual_modes(result, tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        out = result.save(tmp_path / "g")
        path = result.export_word2vec(tmp_path / "g.vec")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "embedding.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_cast_weights_bfloat16_matches_torch_including_ties():
    import numpy as np
    import torch

    from embgraft.grafting.result import cast_weights

    rng = np.random.default_rng(0)
    w = rng.normal(0, 3, (64, 33)).astype(np.float32)
    w[0, :4] = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x00008000], dtype=np.uint32).view(np.float32)  # ties, a subnormal
    got = cast_weights(w, "bfloat16")
    assert torch.equal(torch.from_numpy(got), torch.from_numpy(w).to(torch.bfloat16).float())
    assert np.array_equal(cast_weights(got, "bfloat16"), got)  # idempotent


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_exports_read_back_exactly_by_gensim(tmp_path, dtype, binary):
    """A float16 graft's values are float32 values: written as such, a float32 reader gets them
    bit for bit, in text and binary form; specials only when asked."""
    from gensim.models import KeyedVectors

    from embgraft.grafting.result import GraftReport, GraftResult, Provenance
    from embgraft.text.vocab import Vocab

    vocab = Vocab.from_tokens(["北京", "大学", "a b"])
    rng = np.random.default_rng(0)
    prov = [Provenance("exact", "s", (t,)) for t in vocab.tokens]
    report = GraftReport.build(vocab=vocab, provenance=prov, sources=[], config={}, dim=5, source_stats={},
                               pca=None, notes=[], seconds=0.0)
    result = GraftResult(weights=rng.normal(size=(len(vocab), 5)) / 3, vocab=vocab, provenance=prov, report=report,
                         dtype=dtype)
    path = result.export_word2vec(tmp_path / "g.bin", binary=binary)
    if not binary:  # gensim splits text rows at spaces: the token with one is for embgraft's reader
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(["2 5"] + [ln for ln in lines[1:] if not ln.startswith("a b")]) + "\n",
                        encoding="utf-8")
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert list(kv.index_to_key) == ["北京", "大学"]
    assert result.word2vec_left_out(binary=binary) == (["a b"] if binary else [])
    for token in kv.index_to_key:
        assert np.array_equal(kv[token], result.weights[vocab.index(token)].astype(np.float32)), token
    kv = KeyedVectors.load_word2vec_format(str(result.export_word2vec(tmp_path / "s.bin", include_specials=True,
                                                                      binary=True)), binary=True)
    assert "<pad>" in kv.index_to_key and "<unk>" in kv.index_to_key


def test_a_word2vec_binary_file_is_known_by_its_content(tmp_path):
    """[synonyms' words.vector] another extension than .bin."""
    from embgraft.sources import detect_kind, open_source

    path = tmp_path / "words.vector"
    path.write_bytes(b"2 3\n" + "北京".encode() + b" " + np.array([1, 2, 3], "<f4").tobytes()
                     + "大学".encode() + b" " + np.array([4, 5, 6], "<f4").tobytes())
    assert detect_kind(path) == "word2vec-binary"
    assert open_source(path).lookup(["大学"])["大学"].tolist() == [4.0, 5.0, 6.0]
    (tmp_path / "text.vector").write_text("1 2\n北京 0.5 0.25\n", encoding="utf-8")
    assert detect_kind(tmp_path / "text.vector") == "text"
