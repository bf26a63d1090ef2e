"""Transformer checkpoints as sources: tiny BERT/GPT-2/LLaMA checkpoints built in-process
(``tests/helpers/checkpoints.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tokenizers  # noqa: F401
import torch
import transformers

from embgraft.cli import main  # noqa: E402
from embgraft.grafting.cascade import graft  # noqa: E402
from embgraft.grafting.result import GraftResult  # noqa: E402
from embgraft.sources import detect_kind, open_source  # noqa: E402
from embgraft.errors import CheckpointError  # noqa: E402
from embgraft.hf.tokenizer import SourceTokenizer, byte_level_decode, byte_level_encode  # noqa: E402
from embgraft.hf.weights import choose_embedding_key, locate_embedding  # noqa: E402
from embgraft.sources.checkpoint import CheckpointSource  # noqa: E402
from embgraft.text.vocab import Vocab  # noqa: E402

from helpers.checkpoints import (BERT_SPECIALS, BUILDERS, CJK, LATIN, SENTENCES, bert_vocab, build_bert,  # noqa: E402
                                 build_gpt2, build_llama, emb, fill_hub_cache, pad_and_truncate, save_bin)

# -- BERT-Chinese: exact rows, composition from standalone characters --------------------------------


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert")
    model, tok = build_bert(path)
    return path, model, tok


def test_bert_exact_rows_are_the_models_rows_bit_for_bit(bert):
    path, model, tok = bert
    src = open_source(path)
    assert isinstance(src, CheckpointSource) and detect_kind(path) == "checkpoint"
    assert (src.dim, src.n_rows, src.tokenizer.family.name) == (16, len(bert_vocab()), "wordpiece")
    weights = emb(model)
    wanted = list(CJK) + ["play", "the", "[CLS]", "##ing", "##北", "北京", "猫"]
    got = src.lookup(wanted)
    assert set(got) == set(CJK) | {"play", "the", "[CLS]"}  # never a ##X entry, never a word
    ids = tok.convert_tokens_to_ids(sorted(got))
    for token, i in zip(sorted(got), ids):
        assert got[token].dtype == np.float32
        assert np.array_equal(got[token], weights[i]), token
    assert src.scan.n_requested == len(wanted) and src.scan.n_found == len(got)


def test_bert_composed_word_is_the_mean_of_its_characters_standalone_rows(bert):
    path, model, tok = bert
    weights = emb(model)
    vocab = Vocab.from_tokens(["北京", "大学生", "北", "猫北", "playing"], counts=[5, 4, 3, 2, 1])
    result = graft(vocab, open_source(path), normalise=(), progress=False)
    prov = dict(zip(vocab.tokens, result.provenance))
    for word in ("北京", "大学生"):
        p = prov[word]
        assert p.method == "composed:mean" and p.source_tokens == tuple(word)
        ids = tok.convert_tokens_to_ids(list(word))
        expected = weights[ids].astype(np.float64).mean(axis=0).astype(np.float32)
        np.testing.assert_allclose(result.weights[vocab.index(word)], expected, rtol=0, atol=1e-7)
    assert prov["北"].method == "exact"
    assert prov["playing"].source_tokens == ("play", "##ing")  # Latin continuations are trained rows
    assert prov["猫北"].method.startswith("init")  # [UNK] is not a piece: only half the word is covered


def test_cjk_continuation_rows_are_never_used(tmp_path):
    # without BERT's CJK splitting the tokenizer itself says 北 ##京; the source takes 京's own row
    model, tok = build_bert(tmp_path, tokenize_chinese_chars=False)
    assert tok.tokenize("北京") == ["北", "##京"]
    src = open_source(tmp_path)
    pieces = src.pieces("北京", {})
    assert [(p.label, p.n_chars) for p in pieces] == [("北", 1), ("京", 1)]
    assert np.array_equal(pieces[1].vector, emb(model)[tok.convert_tokens_to_ids("京")])


def test_special_map_comes_from_the_checkpoint(bert):
    path, model, tok = bert
    weights = emb(model)
    vocab = Vocab.from_tokens(["北"], extra_specials=("<cls>", "<sep>", "<mask>"))
    src = open_source(path)
    assert src.special_tokens == {"<pad>": "[PAD]", "<unk>": "[UNK]", "<cls>": "[CLS]", "<sep>": "[SEP]",
                                  "<mask>": "[MASK]"}
    result = graft(vocab, src, progress=False)
    for ours, theirs in (("<unk>", "[UNK]"), ("<cls>", "[CLS]"), ("<mask>", "[MASK]")):
        i = vocab.index(ours)
        assert result.provenance[i].method == "special" and result.provenance[i].source_tokens == (theirs,)
        assert np.array_equal(result.weights[i], weights[tok.convert_tokens_to_ids(theirs)])
    assert not result.weights[vocab.pad_id].any()  # <pad> stays zeros


# -- layouts: sharded, .bin, bf16, task-model prefixes, unknown keys ----------------------------------


@pytest.mark.parametrize("fmt", ["sharded", "bin", "bin-sharded", "masked-lm"])
def test_layouts_give_the_same_rows(tmp_path, fmt):
    if fmt == "sharded":
        model, tok = build_bert(tmp_path, max_shard_size="4KB")
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1
    elif fmt == "masked-lm":
        model, tok = build_bert(tmp_path, masked_lm=True)
    else:
        model, tok = build_bert(tmp_path, fmt=fmt)
    src = open_source(tmp_path)
    if fmt == "sharded":  # only the shard that holds the embedding is opened
        assert src.table.path.name == index["weight_map"][src.key]
    if fmt == "masked-lm":
        assert src.key == "bert.embeddings.word_embeddings.weight"
    got = src.lookup(list(CJK))
    weights = emb(model)
    for ch in CJK:
        assert np.array_equal(got[ch], weights[tok.convert_tokens_to_ids(ch)])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_rows_are_converted_exactly(tmp_path, dtype):
    model, tok = build_bert(tmp_path, dtype=getattr(torch, dtype), max_shard_size="8KB")
    src = open_source(tmp_path)
    assert src.table.stored_dtype == {"bfloat16": "BF16", "float16": "F16"}[dtype]
    weights = emb(model)  # the stored half values, widened
    got = src.lookup(list(CJK))
    for ch in CJK:
        assert got[ch].dtype == np.float32
        assert np.array_equal(got[ch], weights[tok.convert_tokens_to_ids(ch)])
    assert np.array_equal(src.read_table(), weights)
    assert any("converted to float32" in n for n in src.scan.notes)
    wide = open_source(tmp_path, dtype="float64").read_table()
    assert wide.dtype == np.float64 and np.array_equal(wide, weights.astype(np.float64))


def test_unknown_layout_lists_candidates_and_tensor_key_overrides(tmp_path):
    from safetensors.torch import save_file

    model, tok = build_bert(tmp_path)
    state = {k.replace("embeddings.word_embeddings", "enc.token_table"): v.contiguous()
             for k, v in model.state_dict().items()}
    (tmp_path / "model.safetensors").unlink()
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"candidates: .*enc\.token_table\.weight.*--tensor-key"):
        open_source(tmp_path)
    with pytest.raises(CheckpointError, match=r"no tensor 'nope'.*enc\.token_table\.weight"):
        open_source(tmp_path, tensor_key="nope")
    src = open_source(tmp_path, tensor_key="enc.token_table.weight")
    assert np.array_equal(src.lookup(["北"])["北"], emb(model)[tok.convert_tokens_to_ids("北")])


def test_a_hub_fetch_gets_only_the_shard_with_the_embedding(tmp_path):
    build_bert(tmp_path / "full", max_shard_size="4KB")
    small = tmp_path / "small"  # what the first hub download holds: config, tokenizer, index
    small.mkdir()
    for p in (tmp_path / "full").iterdir():
        if not p.name.endswith(".safetensors"):
            shutil.copy(p, small / p.name)
    fetched = []

    def fetch(name):
        fetched.append(name)
        if not (tmp_path / "full" / name).is_file():
            return None
        return Path(shutil.copy(tmp_path / "full" / name, small / name))

    path, key, fmt, _ = locate_embedding(small, model_type="bert", tensor_key=None, fetch=fetch)
    index = json.loads((small / "model.safetensors.index.json").read_text())
    assert fetched == [index["weight_map"][key]] and path.name == fetched[0] and fmt == "safetensors"
    # no index, no model.safetensors: the .bin is tried next
    save_bin(build_bert(tmp_path / "bin")[0], tmp_path / "binsrc")
    (tmp_path / "binsmall").mkdir()
    fetched.clear()

    def fetch_bin(name):
        fetched.append(name)
        src = tmp_path / "binsrc" / name
        return Path(shutil.copy(src, tmp_path / "binsmall" / name)) if src.is_file() else None

    path, key, fmt, _ = locate_embedding(tmp_path / "binsmall", model_type="bert", tensor_key=None,
                                         fetch=fetch_bin)
    assert fetched == ["model.safetensors", "pytorch_model.bin"] and fmt == "torch"


def test_choose_embedding_key_table():
    keys = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"}
    assert choose_embedding_key(keys, model_type="gpt2")[0] == "transformer.wte.weight"
    assert choose_embedding_key({"wte.weight", "wpe.weight"}, model_type="gpt2")[0] == "wte.weight"
    # a wrapper's extra prefix, when one key alone ends with a listed name
    assert choose_embedding_key({"language_model.model.embed_tokens.weight"},
                                model_type="llama")[0] == "language_model.model.embed_tokens.weight"
    # a model type the table lacks, with exactly one well-known name present
    key, how = choose_embedding_key({"model.embed_tokens.weight", "lm_head.weight"}, model_type="newarch")
    assert key == "model.embed_tokens.weight" and "not in the table" in how
    with pytest.raises(CheckpointError, match="shared.weight"):
        choose_embedding_key({"shared.weight", "encoder.embed_tokens.weight"}, model_type="newarch")


def test_missing_weights_and_missing_tokenizer_are_errors(tmp_path):
    build_bert(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        open_source(tmp_path / "a")
    build_bert(tmp_path / "b")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "b" / name).unlink()
    with pytest.raises(CheckpointError, match="no tokenizer files"):
        open_source(tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        CheckpointSource(tmp_path / "nowhere")


def _pipeline(kind: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {"<unk>": 0, "a": 1, "##b": 2, "▁a": 3}
    if kind == "wordpiece":
        return Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    if kind == "byte-level":
        tk.pre_tokenizer = pre_tokenizers.ByteLevel()
    elif kind == "metaspace":
        tk.pre_tokenizer = pre_tokenizers.Metaspace()
        tk.decoder = decoders.Metaspace()
    elif kind == "replace-only":  # Gemma: spaces become "▁" in the normaliser, nothing prepended
        tk.normalizer = normalizers.Replace(" ", "▁")
    return tk


@pytest.mark.parametrize("kind, family", [("wordpiece", "wordpiece"), ("byte-level", "byte-level"),
                                          ("metaspace", "sentencepiece"), ("replace-only", "sentencepiece"),
                                          ("plain", "plain")])
def test_tokenizer_family_from_the_pipeline(kind, family):
    view = SourceTokenizer(_pipeline(kind), special_tokens={"unk_token": "<unk>"})
    assert view.family.name == family
    assert view.exact_id("<unk>") is None or view.exact_id("<unk>") == 0  # an added token only
    if family == "wordpiece":
        assert view.exact_id("a") == 1 and view.exact_id("##b") is None and view.exact_id("b") is None
    if family == "sentencepiece":
        assert view.exact_id("a") == 3  # "▁a", the word-start entry, before the bare one


# -- byte-level BPE (GPT-2/Qwen) and SentencePiece (LLaMA) ------------------------------------------------


def test_byte_level_alphabet_round_trips():
    for text in ("北京", "a b", "😀é\x00"):
        enc = byte_level_encode(text)
        assert byte_level_decode(enc) == text.encode("utf-8")
    assert byte_level_encode("北") == "åĮĹ"  # GPT-2's alphabet, as the library spells it


def test_gpt2_byte_level_exact_and_composed(tmp_path):
    model, tok = build_gpt2(tmp_path)
    weights = emb(model)
    src = open_source(tmp_path)
    assert src.tokenizer.family.name == "byte-level" and src.key == "transformer.wte.weight"
    # words the BPE merged into one token are exact; their entries are byte-level strings
    merged = [w for w in ("北京", "我们", "学生", "天气", "公园", "北京大学") if len(tok.tokenize(w)) == 1]
    assert merged
    got = src.lookup(merged + ["北京大学生在"])
    assert set(got) == set(merged)
    for w in merged:
        assert np.array_equal(got[w], weights[tok.convert_tokens_to_ids(byte_level_encode(w))])
    # 猫 never occurs: three byte pieces, one character covered, labels readable
    pieces = src.pieces("猫", {})
    assert len(pieces) == len(tok.tokenize("猫")) == 3
    assert sum(p.n_chars for p in pieces) == 1 and "\\x" in pieces[0].label
    for word in ("北京大学生", "猫在公园"):
        ids = tok.convert_tokens_to_ids(tok.tokenize(word))  # what transformers says, not our backend
        pieces = src.pieces(word, {})
        assert [p.label for p in pieces] == [byte_level_decode(t).decode("utf-8", "backslashreplace")
                                              for t in tok.tokenize(word)]
        assert sum(p.n_chars for p in pieces) == len(word)
        vocab = Vocab.from_tokens([word, "我们"])
        result = graft(vocab, src, normalise=(), progress=False)
        expected = weights[ids].astype(np.float64).mean(axis=0).astype(np.float32)
        np.testing.assert_allclose(result.weights[vocab.index(word)], expected, rtol=0, atol=1e-7)
    assert src.special_tokens["<eos>"] == "<|endoftext|>"


def test_llama_sentencepiece_exact_and_composed(tmp_path):
    model, tok = build_llama(tmp_path, dtype=torch.bfloat16)
    weights = emb(model)
    src = open_source(tmp_path)
    assert src.tokenizer.family.name == "sentencepiece" and src.key == "model.embed_tokens.weight"
    vocab = tok.get_vocab()
    got = src.lookup(["北", "京", "hello", "<s>"])
    # "▁北" (word start) is preferred; "京" inside a word has only its bare entry
    assert np.array_equal(got["北"], weights[vocab["▁北"] if "▁北" in vocab else vocab["北"]])
    assert np.array_equal(got["京"], weights[vocab["▁京"] if "▁京" in vocab else vocab["京"]])
    assert np.array_equal(got["<s>"], weights[vocab["<s>"]])
    for word in ("北京大学生", "猫在公园", "playing"):
        tokens = tok.tokenize(word)
        pieces = src.pieces(word, {})
        kept = [t for t in tokens if t != "▁"]  # a bare word mark carries nothing of the word
        assert [p.label for p in pieces] == kept
        assert sum(p.n_chars for p in pieces) == len(word)
    # 猫 is not in the vocabulary: byte-fallback pieces <0x..> stand for it
    assert any(p.label.startswith("<0x") for p in src.pieces("猫", {}))


# -- hub ids, offline from a local cache --------------------------------------------------------------------


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # the library read both at import; tests change them afterwards
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_resolves_offline_from_the_cache_with_only_the_needed_shard(tmp_path, offline_hub):
    ckpt = tmp_path / "ckpt"
    model, tok = build_bert(ckpt, max_shard_size="4KB")
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["embeddings.word_embeddings.weight"]
    # the cache holds the small files and the one shard: any other shard would have to be fetched
    files = {p.name: p for p in ckpt.iterdir() if not p.name.endswith(".safetensors")}
    files[shard] = ckpt / shard
    fill_hub_cache(offline_hub, "tiny-org/tiny-bert", files)
    assert detect_kind("tiny-org/tiny-bert") == "checkpoint"
    src = open_source("tiny-org/tiny-bert", progress=False)
    assert src.name == "tiny-org/tiny-bert" and src.table.path.name == shard
    assert np.array_equal(src.lookup(["京"])["京"], emb(model)[tok.convert_tokens_to_ids("京")])
    # a revision given as a commit works the same; an unknown repository says where it looked
    assert open_source("tiny-org/tiny-bert", revision="a" * 40).dim == 16
    with pytest.raises(CheckpointError, match="local hub cache"):
        open_source("tiny-org/absent")


def test_a_hub_id_without_owner_resolves_offline(tmp_path, offline_hub):
    ckpt = tmp_path / "ckpt"
    model, tok = build_bert(ckpt)
    fill_hub_cache(offline_hub, "bert-base-chinese", {p.name: p for p in ckpt.iterdir()})
    src = open_source("bert-base-chinese", progress=False)  # the README's own example
    assert np.array_equal(src.lookup(["京"])["京"], emb(model)[tok.convert_tokens_to_ids("京")])
    with pytest.raises(CheckpointError, match="no-such-model: no such file or directory, and no such repository"):
        open_source("no-such-model")


# -- the CLI, end to end; no torch on the graft path --------------------------------------------------------


def test_cli_graft_from_a_bert_directory_at_word_level(bert, tmp_path, capsys):
    path, model, tok = bert
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES[:4]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["graft", "--source", str(path), "--corpus", str(corpus), "--level", "word",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "composed:mean" in printed and "exact" in printed
    result = GraftResult.load(out)
    weights = emb(model)
    methods = {p.method for p in result.provenance}
    assert {"exact", "composed:mean", "special"} <= methods
    for token, p, row in zip(result.vocab.tokens, result.provenance, result.weights):
        if p.method == "exact":
            assert np.array_equal(row, weights[tok.convert_tokens_to_ids(token)])
        elif p.method == "composed:mean":
            ids = tok.convert_tokens_to_ids(list(p.source_tokens))
            np.testing.assert_allclose(row, weights[ids].astype(np.float64).mean(0), rtol=0, atol=1e-6)
    assert result.report.sources[0]["kind"] == "checkpoint"
    # a bad tensor key is a one-line error, not a traceback
    assert main(["graft", "--source", str(path), "--corpus", str(corpus), "--out", str(tmp_path / "o2"),
                 "--tensor-key", "nope", "--no-progress"]) == 2
    assert "no tensor 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_reading_a_checkpoint_never_imports_torch_or_transformers(tmp_path, dtype):
    model, tok = build_bert(tmp_path, dtype=getattr(torch, dtype), max_shard_size="8KB")
    np.save(tmp_path / "expected.npy", emb(model))
    code = (
        "import sys, numpy as np\n"
        "from embgraft.sources import open_source\n"
        f"src = open_source({str(tmp_path)!r})\n"
        "assert len(src.lookup(['北', '京'])) == 2 and src.pieces('北京', {})\n"
        f"assert np.array_equal(src.read_table(), np.load({str(tmp_path / 'expected.npy')!r}))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- issue 9: the tokenizer's padding, truncation and [UNK] never reach a composed row ---------------------


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("padded", [False, True])
def test_composed_rows_are_the_mean_of_the_real_pieces(tmp_path, kind, padded):
    model, tok = BUILDERS[kind](tmp_path)
    if padded:
        pad_and_truncate(tmp_path, length=4)
    weights = emb(model)
    words = ["北京大学生", "中国人民", "猫在公园"]  # longer than the truncation
    vocab = Vocab.from_tokens(words + ["北"])
    result = graft(vocab, open_source(tmp_path, progress=False), normalise=(), compose_min_coverage=0.5,
                   progress=False)
    for word in words:
        p = result.provenance[vocab.index(word)]
        tokens = [t for t in tok.tokenize(word) if t != "[UNK]"]
        if kind == "bert":  # the characters' standalone rows
            tokens = [t.removeprefix("##") for t in tokens]
        ids = tok.convert_tokens_to_ids(tokens)
        assert p.stage == "composed" and len(p.source_tokens) == len(tokens) + word.count("猫") * (kind == "bert")
        expected = weights[ids].astype(np.float64).mean(axis=0).astype(np.float32)
        assert np.array_equal(result.weights[vocab.index(word)], expected), (word, p)


def test_unknown_pieces_are_left_out_and_named_in_provenance(bert):
    path, model, tok = bert
    weights = emb(model)
    vocab = Vocab.from_tokens(["猫北", "猫狗"])
    result = graft(vocab, open_source(path, progress=False), normalise=(), compose_min_coverage=0.5,
                   progress=False)
    half, none = (result.provenance[vocab.index(w)] for w in ("猫北", "猫狗"))
    assert half.method == "composed:mean" and half.source_tokens == ("unknown:猫", "北")
    assert np.array_equal(result.weights[vocab.index("猫北")], weights[tok.convert_tokens_to_ids("北")])
    # nothing known: init, never the [UNK] row, and the provenance says why
    assert none.method == "init:normal" and none.source_tokens == ("unknown:猫", "unknown:狗")
    assert not np.array_equal(result.weights[vocab.index("猫狗")], weights[tok.convert_tokens_to_ids("[UNK]")])


# -- issue 8.12: byte-level composition is composed:bytes, and can be switched off -------------------------


def test_byte_level_composition_has_its_own_provenance_and_switch(tmp_path, capsys):
    model, tok = build_gpt2(tmp_path / "gpt2")
    vocab = Vocab.from_tokens(["猫", "北京大学生", "我们"])
    src = open_source(tmp_path / "gpt2", progress=False)
    on = graft(vocab, src, normalise=(), progress=False)
    methods = {t: p.method for t, p in zip(vocab.tokens, on.provenance)}
    assert methods["猫"] == "composed:bytes" and methods["北京大学生"] == "composed:mean"
    ids = tok.convert_tokens_to_ids(tok.tokenize("猫"))
    assert np.array_equal(on.weights[vocab.index("猫")],
                          emb(model)[ids].astype(np.float64).mean(0).astype(np.float32))
    off = graft(vocab, src, normalise=(), compose_bytes="off", progress=False)
    assert off.provenance[vocab.index("猫")].method == "init:normal"
    assert off.provenance[vocab.index("北京大学生")].method == "composed:mean"
    table = on.report.coverage_table()
    assert "composed:bytes" in table and "composed:mean" in table  # separate rows
    # the CLI switch
    corpus = tmp_path / "c.txt"
    corpus.write_text("猫 北京大学生\n", encoding="utf-8")
    args = ["graft", "--source", str(tmp_path / "gpt2"), "--corpus", str(corpus), "--level", "space",
            "--normalise", "none", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "on")]) == 0
    assert "composed:bytes" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "off"), "--compose-bytes", "off"]) == 0
    assert "composed:bytes" not in capsys.readouterr().out
    assert GraftResult.load(tmp_path / "off").report.config["compose_bytes"] == "off"


# -- issue 8.6: a BERT-style target vocabulary's specials take the checkpoint's rows -----------------------


def test_bert_style_specials_exact_match_and_pad_says_zeros(bert, tmp_path):
    path, model, tok = bert
    weights = emb(model)
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京"]) + "\n",
                                        encoding="utf-8")
    vocab = Vocab.load(tmp_path / "vocab.txt")
    assert vocab.specials == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    result = graft(vocab, open_source(path, progress=False), progress=False)
    for special in ("[UNK]", "[CLS]", "[SEP]"):
        i = vocab.index(special)
        assert result.provenance[i].method == "special" and result.provenance[i].source_tokens == (special,)
        assert np.array_equal(result.weights[i], weights[tok.convert_tokens_to_ids(special)])
    pad = result.provenance[vocab.pad_id]
    assert pad.source_tokens == ("zeros",) and pad.source == "" and not result.weights[vocab.pad_id].any()
    # <pad> in our own spelling: zeros too, and provenance no longer claims the [PAD] row
    ours = graft(Vocab.from_tokens(["北"]), open_source(path, progress=False), progress=False)
    assert ours.provenance[0].source_tokens == ("zeros",)


# -- issue 8.10: rows come in the dtype asked for; bf16/fp16 widened exactly ------------------------------


@pytest.mark.parametrize("stored", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_rows_come_in_the_requested_dtype(tmp_path, stored, fmt):
    model, tok = build_bert(tmp_path, dtype=getattr(torch, stored), fmt=fmt)
    table = model.get_input_embeddings().weight.detach()
    ids = tok.convert_tokens_to_ids(list("北京"))
    for dtype, numpy_dtype in (("float64", np.float64), ("float32", np.float32), ("float16", np.float16),
                               ("bfloat16", np.float32)):  # NumPy has no bfloat16: exact float32
        src = open_source(tmp_path, dtype=dtype, progress=False)
        got = src.lookup(["北", "京"])
        want = table.to(getattr(torch, "float32" if dtype == "bfloat16" else dtype)).numpy()
        for ch, i in zip("北京", ids):
            assert got[ch].dtype == numpy_dtype and np.array_equal(got[ch], want[i]), (dtype, ch)
        full = src.read_table()
        assert full.dtype == numpy_dtype and np.array_equal(full, want)


def test_composition_is_one_tokenizer_call_and_one_read(bert):
    path, model, tok = bert
    src = open_source(path, progress=False)
    calls = {"encode_batch": 0, "encode": 0, "rows": 0}
    encoder, read = src.tokenizer.encoder, src.table.rows

    class Counting:  # the Rust tokenizer takes no new attributes: count through a proxy
        def __getattr__(self, name):
            if name in calls:
                calls[name] += 1
            return getattr(encoder, name)

    src.tokenizer.encoder = Counting()
    src.table.rows = lambda ids: (calls.__setitem__("rows", calls["rows"] + 1), read(ids))[1]
    words = ["北京", "大学生", "中国人民", "公园", "天气很", "猫北"]
    vocab = Vocab.from_tokens(words + ["北"])
    result = graft(vocab, src, normalise=(), progress=False)
    assert sum(p.stage == "composed" for p in result.provenance) == 5
    # one read for the exact rows, one for every composed word's pieces
    assert calls == {"encode_batch": 1, "encode": 0, "rows": 2}
