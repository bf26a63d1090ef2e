"""Tiny transformer checkpoints built in-process (BERT-Chinese-like, GPT-2 with byte-level BPE,
LLaMA with SentencePiece-style BPE), shared by the source, extend, model and training tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers

CJK = "北京大学生中国人民你好我们的是在了天气很公园玩习"
LATIN = ["a", "b", "play", "##ing", "the", "##s", "game"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SENTENCES = [
    "北京大学的学生在中国人民大学学习。",
    "我们是中国人，你好世界！",
    "今天天气很好，我们去公园玩。",
    "北京的天气很好，学生们在公园学习。",
    "hello world, playing the game",
] * 4


def bert_vocab() -> list[str]:
    """BERT-Chinese in miniature: specials, standalone CJK characters, their ##X forms, Latin pieces."""
    return BERT_SPECIALS + list(CJK) + ["##" + c for c in CJK] + LATIN


def _tiny(cls, config):
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():  # distinct, non-trivial rows so a wrong id can never pass
        emb = model.get_input_embeddings().weight
        emb.copy_(torch.randn_like(emb))
    return model


def save_bin(model, path: Path, *, shards: int = 1) -> None:
    """``pytorch_model.bin`` (or ``shards`` files and an index) with ``torch.save``, as older
    transformers wrote them; transformers 5 no longer writes .bin itself."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    if shards == 1:
        torch.save(state, path / "pytorch_model.bin")
        return
    names = list(state)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in part}, path / fname)
        weight_map.update({k: fname for k in part})
    (path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def build_bert(path: Path, *, max_shard_size=None, fmt: str = "safetensors", dtype=None,
               tokenize_chinese_chars: bool = True, masked_lm: bool = False):
    """A tiny BERT-Chinese-like checkpoint in ``path``; returns (model, tokenizer)."""
    vocab = bert_vocab()
    tok = transformers.BertTokenizer(vocab={t: i for i, t in enumerate(vocab)},
                                     tokenize_chinese_chars=tokenize_chinese_chars)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    model = _tiny(transformers.BertForMaskedLM if masked_lm else transformers.BertModel, config)
    if dtype is not None:
        model = model.to(dtype)
    tok.save_pretrained(path)
    if fmt == "bin":
        save_bin(model, path)
    elif fmt == "bin-sharded":
        save_bin(model, path, shards=2)
    else:
        model.save_pretrained(path, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    return model, tok


def _byte_level_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=420, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tk


def _merges(tk) -> list[tuple[str, str]]:
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            for m in json.loads(tk.to_str())["model"]["merges"]]


def build_gpt2(path: Path, *, tie: bool = True):
    """A tiny GPT-2 with a byte-level BPE trained on Chinese sentences; returns (model, tokenizer)."""
    tk = _byte_level_tokenizer()
    tok = transformers.GPT2Tokenizer(vocab=tk.get_vocab(), merges=_merges(tk))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=64,
                                     tie_word_embeddings=tie, bos_token_id=eos, eos_token_id=eos)
    model = _tiny(transformers.GPT2LMHeadModel, config)
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return model, tok


def _sentencepiece_tokenizer():
    """SentencePiece-style BPE (LLaMA): "▁" word marks, byte fallback, trained in-process."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers

    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tk.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=340, show_progress=False,
        special_tokens=["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]))
    return tk


def build_llama(path: Path, *, tie: bool = False, dtype=None):
    """A tiny LLaMA (untied head by default) with a SentencePiece-style BPE; (model, tokenizer)."""
    tk = _sentencepiece_tokenizer()
    tok = transformers.LlamaTokenizer(vocab=tk.get_vocab(), merges=_merges(tk))
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=64, tie_word_embeddings=tie)
    model = _tiny(transformers.LlamaForCausalLM, config)
    if not tie:
        with torch.no_grad():
            model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight))
    if dtype is not None:
        model = model.to(dtype)
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return model, tok


def pad_and_truncate(path: Path, length: int = 8) -> None:
    """Switch on padding to ``length`` and truncation at ``length`` in ``path``'s tokenizer.json,
    as most sentence-transformers checkpoints ship it (MiniLM: 128)."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(path / "tokenizer.json"))
    pad = next(t for t in ("[PAD]", "<|endoftext|>", "<unk>") if tk.token_to_id(t) is not None)
    tk.enable_padding(length=length, pad_token=pad, pad_id=tk.token_to_id(pad))
    tk.enable_truncation(max_length=length)
    tk.save(str(path / "tokenizer.json"))


BUILDERS = {"bert": lambda p: build_bert(p), "gpt2": lambda p: build_gpt2(p), "llama": lambda p: build_llama(p)}


def emb(model) -> np.ndarray:
    """The model's input-embedding table as float32 NumPy (bf16 widened exactly)."""
    return model.get_input_embeddings().weight.detach().float().numpy()


def fill_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str = "a" * 40) -> Path:
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, path in files.items():
        shutil.copy(path, snap / name)
    return snap
