"""`embgraft extend`: new tokens in a transformer's tokenizer and embedding, on tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from embgraft.cli import main
from embgraft.errors import ConfigError, OutputExistsError
from embgraft.hf.extend import REPORT_FILE, extend
from helpers import checkpoints as ck

WORDS = ["北京大学", "公园玩", "学生们"]


def rows(weight) -> np.ndarray:
    return weight.detach().float().numpy()


def piece_mean(table: np.ndarray, ids: list[int]) -> np.ndarray:
    return table[ids].astype(np.float64).mean(axis=0)


def test_cli_extends_bert_from_a_token_file(tmp_path, capsys):
    model, tok = ck.build_bert(tmp_path / "bert")
    old = rows(model.get_input_embeddings().weight)
    (tmp_path / "new.txt").write_text("\n".join(WORDS + ["北", "", "猫狗"]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["extend", "--model", str(tmp_path / "bert"), "--tokens", str(tmp_path / "new.txt"),
                 "--out", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert "mean-of-pieces" in printed and "北 (already in the vocabulary)" in printed
    assert "Loading weights" in err  # transformers' own bar, which --no-progress (below) keeps off

    new_tok = transformers.AutoTokenizer.from_pretrained(out)
    new_model = transformers.AutoModel.from_pretrained(out)
    new = rows(new_model.get_input_embeddings().weight)
    assert np.array_equal(new[:len(old)], old)  # old rows untouched, bit for bit
    for word in WORDS:
        assert new_tok.tokenize(word) == [word]
        assert new_tok.tokenize(f"在{word}学习") == ["在", word, "学", "习"]
        chars = tok.convert_tokens_to_ids(list(word))  # standalone character rows, never ##X
        np.testing.assert_allclose(new[new_tok.convert_tokens_to_ids(word)], piece_mean(old, chars),
                                   rtol=0, atol=1e-7)
    # 猫 and 狗 are both [UNK]: no piece, so the mean of every old row
    cat = new_tok.convert_tokens_to_ids("猫狗")
    np.testing.assert_allclose(new[cat], old.astype(np.float64).mean(axis=0), rtol=0, atol=1e-6)

    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    by_token = {a["token"]: a for a in report["added"]}
    assert by_token["北京大学"]["pieces"] == list("北京大学") and by_token["北京大学"]["method"] == "mean-of-pieces"
    assert by_token["猫狗"]["method"] == "mean-of-all" and by_token["猫狗"]["pieces"] == []
    assert report["methods"] == {"mean-of-pieces": 3, "mean-of-all": 1}
    assert report["rows_after"] == len(old) + 4 and report["output_head"] == "none"

    # an existing --out is refused without --force
    assert main(["extend", "--model", str(tmp_path / "bert"), "--tokens", str(tmp_path / "new.txt"),
                 "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["extend", "--model", str(tmp_path / "bert"), "--tokens", str(tmp_path / "new.txt"),
                 "--out", str(out), "--force", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
    assert transformers.utils.logging.is_progress_bar_enabled()  # off for the load only


def test_gpt2_stays_tied_and_rows_pad_to_a_multiple(tmp_path):
    model, tok = ck.build_gpt2(tmp_path / "gpt2")
    old = rows(model.get_input_embeddings().weight)
    report = extend(tmp_path / "gpt2", out=tmp_path / "out", tokens=WORDS + ["猫"], pad_to_multiple_of=64)
    assert report.output_head == "tied" and report.rows_after % 64 == 0 and report.rows_after > len(old)

    new_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    lm = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert lm.lm_head.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    new = rows(lm.get_input_embeddings().weight)
    assert new.shape[0] == report.rows_after and lm.config.vocab_size == report.rows_after
    assert np.array_equal(new[:len(old)], old)
    for word in WORDS + ["猫"]:
        assert new_tok.tokenize(word) == [word]
        ids = tok.convert_tokens_to_ids(tok.tokenize(word))  # its byte-level pieces before
        np.testing.assert_allclose(new[new_tok.convert_tokens_to_ids(word)], piece_mean(old, ids),
                                   rtol=0, atol=1e-7)
    # rows that only pad to the multiple hold the mean of all old rows, not noise
    np.testing.assert_allclose(new[len(new_tok):], np.broadcast_to(old.astype(np.float64).mean(0),
                                                                   new[len(new_tok):].shape), rtol=0, atol=1e-6)


def test_llama_untied_output_head_is_initialised_too_and_bf16_stays_bf16(tmp_path):
    model, tok = ck.build_llama(tmp_path / "llama", tie=False, dtype=torch.bfloat16)
    old_in = rows(model.get_input_embeddings().weight)
    old_out = rows(model.lm_head.weight)
    report = extend(tmp_path / "llama", out=tmp_path / "out", tokens=WORDS)
    assert report.output_head == "initialised"

    new_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    lm = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert lm.get_input_embeddings().weight.dtype == torch.bfloat16
    new_in, new_out = rows(lm.get_input_embeddings().weight), rows(lm.lm_head.weight)
    assert np.array_equal(new_in[:len(old_in)], old_in) and np.array_equal(new_out[:len(old_out)], old_out)
    for added in report.added:
        word = added.token
        pieces = [t for t in tok.tokenize(word) if t != "▁"]  # a bare word mark is no piece
        ids = tok.convert_tokens_to_ids(pieces)
        assert added.piece_ids == ids
        i = new_tok.convert_tokens_to_ids(word)
        assert word in new_tok.tokenize(f"在{word}学习")
        expected_in = torch.tensor(piece_mean(old_in, ids)).to(torch.bfloat16).float().numpy()
        expected_out = torch.tensor(piece_mean(old_out, ids)).to(torch.bfloat16).float().numpy()
        assert np.array_equal(new_in[i], expected_in) and np.array_equal(new_out[i], expected_out)


def test_corpus_top_n_takes_the_most_frequent_words_the_tokenizer_splits(tmp_path):
    model, tok = ck.build_bert(tmp_path / "bert")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(ck.SENTENCES) + "\n", encoding="utf-8")
    report = extend(tmp_path / "bert", out=tmp_path / "out", corpus=corpus, top=3)
    assert len(report.added) == 3
    counts = [a.count for a in report.added]
    assert counts == sorted(counts, reverse=True) and all(c > 0 for c in counts)
    for a in report.added:
        assert len(tok.tokenize(a.token)) > 1 or tok.tokenize(a.token) == ["[UNK]"]
    # words the tokenizer already has as one token were passed over, and said so
    assert all(why in ("already in the vocabulary", "already a single token") for _, why in report.skipped)
    new_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert all(new_tok.tokenize(a.token) == [a.token] for a in report.added)


def test_option_errors(tmp_path, capsys):
    ck.build_bert(tmp_path / "bert")
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京\n", encoding="utf-8")
    assert main(["extend", "--model", str(tmp_path / "bert"), "--corpus", str(corpus),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--top" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="nothing to add"):
        extend(tmp_path / "bert", out=tmp_path / "o", tokens=["北", "京"])
    with pytest.raises(ConfigError, match="pad_to_multiple_of"):
        extend(tmp_path / "bert", out=tmp_path / "o", tokens=["北京"], pad_to_multiple_of=0)
    (tmp_path / "o").mkdir()
    with pytest.raises(OutputExistsError):
        extend(tmp_path / "bert", out=tmp_path / "o", tokens=["北京"])
    assert not (tmp_path / "o2").exists()


def test_extend_a_hub_id_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    model, tok = ck.build_bert(tmp_path / "bert", max_shard_size="4KB")
    cache = tmp_path / "hub"
    ck.fill_hub_cache(cache, "tiny-org/tiny-bert", {p.name: p for p in (tmp_path / "bert").iterdir()})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    report = extend("tiny-org/tiny-bert", out=tmp_path / "out", tokens=["北京"])
    assert [a.token for a in report.added] == ["北京"]
    loaded = transformers.AutoModel.from_pretrained(tmp_path / "out")
    old = rows(model.get_input_embeddings().weight)
    np.testing.assert_allclose(rows(loaded.get_input_embeddings().weight)[-1],
                               piece_mean(old, tok.convert_tokens_to_ids(["北", "京"])), rtol=0, atol=1e-7)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
@pytest.mark.parametrize("padded", [False, True])
def test_new_rows_are_the_mean_of_the_real_pieces_whatever_the_padding(tmp_path, kind, padded):
    model, tok = ck.BUILDERS[kind](tmp_path / kind)
    if padded:
        ck.pad_and_truncate(tmp_path / kind, length=4)
    before = json.loads((tmp_path / kind / "tokenizer.json").read_text(encoding="utf-8"))
    old = rows(model.get_input_embeddings().weight)
    words = ["北京大学生", "中国人民", "猫北"]  # longer than the truncation; 猫 is [UNK] in BERT
    report = extend(tmp_path / kind, out=tmp_path / "out", tokens=words)
    new_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    new = rows(transformers.AutoModel.from_pretrained(tmp_path / "out").get_input_embeddings().weight)
    by_token = {a.token: a for a in report.added}
    for word in words:
        tokens = [t for t in tok.tokenize(word) if t != "[UNK]"]
        if kind == "bert":
            tokens = [t.removeprefix("##") for t in tokens]
        ids = tok.convert_tokens_to_ids(tokens)
        assert by_token[word].piece_ids == ids and by_token[word].method == "mean-of-pieces"
        np.testing.assert_allclose(new[new_tok.convert_tokens_to_ids(word)], piece_mean(old, ids), rtol=0, atol=1e-7)
    if kind == "bert":
        assert by_token["猫北"].unknown == ["猫"] and by_token["猫北"].pieces == ["北"]
        assert "(猫: unknown)" in report.table()
    # what extend saves keeps the tokenizer's own padding and truncation
    after = json.loads((tmp_path / "out" / "tokenizer.json").read_text(encoding="utf-8"))
    assert (after["padding"], after["truncation"]) == (before["padding"], before["truncation"])
