"""A transformer checkpoint's input-embedding table as a source, read without the model.

A checkpoint is a local directory or a hub id. For a hub id only the config, the tokenizer
files, the shard index and the one shard that holds the embedding are downloaded (through
``huggingface_hub``; offline, from its local cache). The table is read lazily: the tensor's
name comes from ``config.json``'s ``model_type`` through :data:`EMBEDDING_KEYS` (or
``tensor_key``), and only the rows the graft asks for are read -- from ``.safetensors``
(sharded or not; safetensors validates the file and gives dtype, shape and offset, then rows
are read with positioned reads, so no page stays mapped) or from a memory-mapped
``torch.load(weights_only=True)`` (``.bin``). The model is never instantiated.

Target tokens are matched through the checkpoint's own tokenizer (``tokenizer.json`` read with
``tokenizers``; older checkpoints are converted by ``transformers``). The tokenizer family --
WordPiece ``##``, SentencePiece ``▁`` or byte-level BPE -- decides which vocabulary entry is a
surface string's *standalone* row (:data:`TOKENIZER_FAMILIES`); an absent token is composed
from the pieces the tokenizer gives it, with CJK characters taken from their standalone rows
(BERT-Chinese's ``##X`` rows for CJK were never trained).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from embgraft.errors import ConfigError, EmbgraftError, MalformedFileError
from embgraft.sources.base import Piece, ScanStats

# model_type (config.json) -> names the input-embedding tensor goes by, base model first, then
# the prefix a task model (…ForMaskedLM, …ForCausalLM) saves it under.
EMBEDDING_KEYS: dict[str, tuple[str, ...]] = {
    "bert": ("embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"),
    "roberta": ("embeddings.word_embeddings.weight", "roberta.embeddings.word_embeddings.weight"),
    "xlm-roberta": ("embeddings.word_embeddings.weight", "roberta.embeddings.word_embeddings.weight"),
    "ernie": ("embeddings.word_embeddings.weight", "ernie.embeddings.word_embeddings.weight"),
    "nezha": ("embeddings.word_embeddings.weight", "nezha.embeddings.word_embeddings.weight"),
    "electra": ("embeddings.word_embeddings.weight", "electra.embeddings.word_embeddings.weight"),
    "albert": ("embeddings.word_embeddings.weight", "albert.embeddings.word_embeddings.weight"),
    "distilbert": ("embeddings.word_embeddings.weight", "distilbert.embeddings.word_embeddings.weight"),
    "deberta-v2": ("embeddings.word_embeddings.weight", "deberta.embeddings.word_embeddings.weight"),
    "megatron-bert": ("embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"),
    "gpt2": ("wte.weight", "transformer.wte.weight"),
    "gpt_neo": ("wte.weight", "transformer.wte.weight"),
    "gptj": ("wte.weight", "transformer.wte.weight"),
    "gpt_neox": ("embed_in.weight", "gpt_neox.embed_in.weight"),
    "bloom": ("word_embeddings.weight", "transformer.word_embeddings.weight"),
    "falcon": ("word_embeddings.weight", "transformer.word_embeddings.weight"),
    "opt": ("decoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"),
    "llama": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "mistral": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "mixtral": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "qwen2": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "qwen2_moe": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "qwen3": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "qwen3_moe": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "gemma": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "gemma2": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "gemma3_text": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "phi3": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "deepseek_v2": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "deepseek_v3": ("embed_tokens.weight", "model.embed_tokens.weight"),
    "internlm2": ("tok_embeddings.weight", "model.tok_embeddings.weight"),
    "chatglm": ("embedding.word_embeddings.weight", "transformer.embedding.word_embeddings.weight"),
    "t5": ("shared.weight", "encoder.embed_tokens.weight"),
    "mt5": ("shared.weight", "encoder.embed_tokens.weight"),
    "umt5": ("shared.weight", "encoder.embed_tokens.weight"),
    "bart": ("shared.weight", "model.shared.weight", "model.encoder.embed_tokens.weight"),
    "mbart": ("shared.weight", "model.shared.weight", "model.encoder.embed_tokens.weight"),
}

CONFIG_FILE = "config.json"
# (index file, single file, format): where the weights live, safetensors first
WEIGHT_LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("model.safetensors.index.json", "model.safetensors", "safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin", "torch"),
)
# any of these in a checkpoint directory means it has a tokenizer
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "*.model", "*.tiktoken")
# what a hub download fetches before it knows which shard holds the embedding
HUB_SMALL_FILES = (
    CONFIG_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model", "*.tiktoken",
    "*.index.json",
)

# our special token -> the tokenizer attribute naming the source's token for the same role
SPECIAL_ROLES: dict[str, str] = {
    "<pad>": "pad_token",
    "<unk>": "unk_token",
    "<cls>": "cls_token",
    "<sep>": "sep_token",
    "<mask>": "mask_token",
    "<bos>": "bos_token",
    "<eos>": "eos_token",
}

_CHUNK_BYTES = 1 << 24  # 16 MiB: the most stored rows read at once
_GAP_BYTES = 1 << 20  # rows between two wanted ones are read through, up to 1 MiB of them


@dataclass(frozen=True)
class TokenizerFamily:
    """How a tokenizer family writes a surface string into its vocabulary.

    ``exact_forms`` are tried in order (names of :data:`SURFACE_FORMS`) to find a string's
    standalone entry. ``continuation`` marks a piece *inside* a word (WordPiece ``##``); such
    entries are never an exact match. ``marker`` is the family's word-boundary symbol
    (SentencePiece ``▁``), taken from the tokenizer file when it names another one.
    """

    name: str
    exact_forms: tuple[str, ...]
    continuation: str = ""
    marker: str = ""


TOKENIZER_FAMILIES: dict[str, TokenizerFamily] = {
    # BERT: "北" is the standalone row, "##北" the (for CJK never trained) continuation row
    "wordpiece": TokenizerFamily("wordpiece", ("plain",), continuation="##"),
    # LLaMA/T5: "▁北京" at a word's start, "北京" inside a word
    "sentencepiece": TokenizerFamily("sentencepiece", ("word-start", "marked"), marker="▁"),
    # GPT-2/Qwen: the UTF-8 bytes spelt in the byte-level alphabet, bare or after a space ("Ġ")
    "byte-level": TokenizerFamily("byte-level", ("bytes", "bytes-after-space")),
    # anything else (WordLevel, plain BPE): the string itself
    "plain": TokenizerFamily("plain", ("plain",)),
}

# form name -> (tokenizer view, surface string) -> vocabulary string
SURFACE_FORMS: dict[str, Callable[["SourceTokenizer", str], str]] = {
    "plain": lambda tz, s: s,
    "word-start": lambda tz, s: tz.marker + s.replace(" ", tz.marker),
    "marked": lambda tz, s: s.replace(" ", tz.marker),
    "bytes": lambda tz, s: byte_level_encode(s),
    "bytes-after-space": lambda tz, s: byte_level_encode(" " + s),
}


class CheckpointError(EmbgraftError):
    """A checkpoint that cannot be read as a source: missing files, unknown layout, no hub."""


# -- byte-level alphabet, read off the tokenizers library --------------------------------------------


def byte_level_encode(text: str) -> str:
    """``text``'s UTF-8 bytes in GPT-2's byte-level alphabet ("北" -> "åĮĹ"), by ``tokenizers``."""
    return "".join(p for p, _ in _byte_level().pre_tokenize_str(text))


@lru_cache(maxsize=1)
def _byte_level():
    from tokenizers import pre_tokenizers

    # no regex split and no prefix space: the whole string, byte for byte
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


@lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """symbol -> byte for every byte that occurs in valid UTF-8, found by encoding probe
    characters with the library's own pre-tokenizer (so no copy of GPT-2's table lives here)."""
    probe = "".join(chr(c) for c in range(0x800))  # ASCII, every 2-byte lead, every continuation
    probe += "".join(chr(c) for c in (0x800, *range(0x1000, 0x10000, 0x1000)))  # every 3-byte lead
    probe += "".join(chr(c) for c in range(0x10000, 0x110000, 0x40000))  # every 4-byte lead
    symbols = byte_level_encode(probe)
    raw = probe.encode("utf-8")
    if len(symbols) != len(raw):
        raise CheckpointError("the tokenizers byte-level pre-tokenizer did not map bytes one to one")
    return dict(zip(symbols, raw))


def byte_level_decode(symbols: str) -> bytes:
    """Inverse of :func:`byte_level_encode` for one vocabulary entry."""
    table = _byte_level_decoder()
    return bytes(table[c] for c in symbols if c in table)


def is_cjk(text: str) -> bool:
    """True when every character is a CJK ideograph (BERT's ``tokenize_chinese_chars`` set)."""
    return bool(text) and all(_is_cjk_char(c) for c in text)


def _is_cjk_char(ch: str) -> bool:
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


# -- the source tokenizer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PieceRef:
    """One piece of a surface string: vocabulary ``id``, readable ``label`` and how many of the
    string's characters it covers that no earlier piece covered (``n_chars``)."""

    label: str
    id: int
    n_chars: int


class SourceTokenizer:
    """A checkpoint's tokenizer, reduced to what grafting needs: standalone ids and pieces.

    ``backend`` is a ``tokenizers.Tokenizer``; ``special_tokens`` maps roles (``pad_token`` ...)
    to the tokens the checkpoint uses for them.
    """

    def __init__(self, backend, *, special_tokens: Mapping[str, str] | None = None) -> None:
        self.backend = backend
        spec = json.loads(backend.to_str())
        self.family, self.marker, self.continuation = _detect_family(spec)
        self.vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        self.added: frozenset[str] = frozenset(t["content"] for t in spec.get("added_tokens") or ())
        roles = dict(special_tokens or {})
        unk = roles.get("unk_token") or (spec.get("model") or {}).get("unk_token")
        if unk and unk in self.vocab:
            roles.setdefault("unk_token", unk)
        self.roles = {r: t for r, t in roles.items() if t in self.vocab}
        self.unk_id: int | None = self.vocab.get(self.roles["unk_token"]) if "unk_token" in self.roles else None

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | os.PathLike, *, trust_remote_code: bool = False) -> "SourceTokenizer":
        """``tokenizer.json`` through ``tokenizers`` (no torch); otherwise ``transformers``
        converts whatever the directory holds (``vocab.txt``, ``vocab.json`` + ``merges.txt`` ...)."""
        path = Path(path)
        if (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            try:
                backend = Tokenizer.from_file(str(path / "tokenizer.json"))
            except Exception as exc:  # the Rust error names what is wrong in the file
                raise MalformedFileError(path / "tokenizer.json", None, str(exc)) from None
            return cls(backend, special_tokens=_special_tokens_from_files(path))
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: no tokenizer that embgraft can read ({exc})") from None
        return cls.from_transformers(tok)

    @classmethod
    def from_transformers(cls, tok) -> "SourceTokenizer":
        """Wrap a ``transformers`` tokenizer (it must be backed by ``tokenizers``)."""
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            raise CheckpointError(
                f"{type(tok).__name__} is not backed by the tokenizers library; embgraft needs a "
                "fast tokenizer (a tokenizer.json) to map tokens to rows"
            )
        roles = {role: str(getattr(tok, role)) for role in SPECIAL_ROLES.values()
                 if getattr(tok, role, None) is not None}
        return cls(backend, special_tokens=roles)

    # -- matching -------------------------------------------------------------------------------------
    def exact_id(self, surface: str) -> int | None:
        """The id of ``surface``'s standalone entry, or None. Never a continuation (``##X``)
        entry, never the unknown token."""
        if not surface:
            return None
        if surface in self.added:  # added/special tokens are matched as written, before any model
            return self.vocab[surface]
        for form in self.family.exact_forms:
            key = SURFACE_FORMS[form](self, surface)
            if self.continuation and key.startswith(self.continuation):
                continue
            tid = self.vocab.get(key)
            if tid is not None and tid != self.unk_id:
                return tid
        return None

    def pieces(self, surface: str) -> list[PieceRef]:
        """The tokenizer's pieces for ``surface``, unknown-token pieces and bare word-boundary
        markers left out. WordPiece continuations of CJK characters (``##京``) are replaced by
        the characters' standalone rows."""
        enc = self.backend.encode(surface, add_special_tokens=False)
        covered = [False] * len(surface)
        out: list[PieceRef] = []

        def add(label: str, tid: int, start: int, end: int) -> None:
            n = 0
            for i in range(max(start, 0), min(end, len(surface))):
                if not covered[i]:
                    covered[i] = True
                    n += 1
            out.append(PieceRef(label, tid, n))

        for tid, tok, (start, end) in zip(enc.ids, enc.tokens, enc.offsets):
            if tid == self.unk_id:
                continue  # [UNK] is not a piece: its row says nothing about this token
            if self.continuation and tok.startswith(self.continuation):
                rest = tok[len(self.continuation):]
                if is_cjk(rest):
                    # ##X rows of CJK characters were never trained: use each character's own row
                    aligned = end - start == len(rest)
                    for k, ch in enumerate(rest):
                        cid = self.vocab.get(ch)
                        if cid is None or cid == self.unk_id:
                            continue
                        if aligned:
                            add(ch, cid, start + k, start + k + 1)
                        else:  # the normaliser changed the length: the first character takes the span
                            add(ch, cid, start, end)
                    continue
            if not self.piece_text(tok).strip():
                continue  # a bare "▁" or "Ġ": a word boundary, no content of the token
            add(self.label(tok), tid, start, end)
        return out

    def piece_text(self, tok: str) -> str:
        """What a vocabulary entry spells, as text (partial UTF-8 bytes escaped)."""
        if self.family.name == "byte-level" and tok not in self.added:
            return byte_level_decode(tok).decode("utf-8", errors="backslashreplace")
        if self.continuation and tok.startswith(self.continuation):
            return tok[len(self.continuation):]
        if self.marker:
            return tok.replace(self.marker, " ")
        return tok

    def label(self, tok: str) -> str:
        """A readable provenance label: byte-level entries decoded ("北京", "\\xe7\\x94" for a
        piece of a character), others as written ("##ing", "▁北京")."""
        if self.family.name == "byte-level" and tok not in self.added:
            return self.piece_text(tok)
        return tok

    def special_map(self) -> dict[str, str]:
        """Our specials (``<pad>`` ...) -> the checkpoint's tokens for the same role."""
        return {ours: self.roles[role] for ours, role in SPECIAL_ROLES.items() if role in self.roles}


def _types(node: Any) -> set[str]:
    """Every ``type`` named in a tokenizer.json component, through Sequences."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.add(node["type"])
        for v in node.values():
            found |= _types(v)
    elif isinstance(node, list):
        for v in node:
            found |= _types(v)
    return found


def _find(node: Any, type_name: str) -> dict | None:
    if isinstance(node, dict):
        if node.get("type") == type_name:
            return node
        children: Iterable[Any] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for v in children:
        hit = _find(v, type_name)
        if hit is not None:
            return hit
    return None


def _detect_family(spec: dict) -> tuple[TokenizerFamily, str, str]:
    """(family, word-boundary marker, continuation prefix) from a tokenizer.json."""
    model = spec.get("model") or {}
    pipeline = [spec.get("normalizer"), spec.get("pre_tokenizer"), spec.get("decoder")]
    types = _types(pipeline)
    if model.get("type") == "WordPiece":
        family = TOKENIZER_FAMILIES["wordpiece"]
        return family, family.marker, model.get("continuing_subword_prefix") or family.continuation
    if "ByteLevel" in types:
        family = TOKENIZER_FAMILIES["byte-level"]
        return family, family.marker, family.continuation
    meta = _find(pipeline, "Metaspace")
    prepend = _find(spec.get("normalizer"), "Prepend")
    replace = _find(spec.get("normalizer"), "Replace")  # Gemma: " " -> "▁" with no Prepend
    sp_replace = replace is not None and replace.get("content") == TOKENIZER_FAMILIES["sentencepiece"].marker
    if (meta is not None or prepend is not None or sp_replace or model.get("type") == "Unigram"
            or model.get("byte_fallback")):
        family = TOKENIZER_FAMILIES["sentencepiece"]
        marker = (meta or {}).get("replacement") or (prepend or {}).get("prepend") or family.marker
        return family, marker, family.continuation
    family = TOKENIZER_FAMILIES["plain"]
    return family, family.marker, family.continuation


def _special_tokens_from_files(path: Path) -> dict[str, str]:
    """role -> token from tokenizer_config.json, then special_tokens_map.json for the rest."""
    roles: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = path / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MalformedFileError(f, exc.lineno, exc.msg) from None
        for role in SPECIAL_ROLES.values():
            value = data.get(role)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                roles.setdefault(role, value)
    return roles


# -- resolving a directory or a hub id ---------------------------------------------------------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """The hub's offline switch, read now (the library reads the environment once, at import)."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode() or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"))


class HubFiles:
    """Fetches files of one hub repository on demand (from the local cache when offline)."""

    def __init__(self, repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 local_files_only: bool | None = None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.local_files_only = hub_offline() if local_files_only is None else local_files_only

    def snapshot(self, patterns: Sequence[str]) -> Path:
        """The local snapshot folder, holding at least the files matching ``patterns``."""
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.repo_id, revision=self.revision, cache_dir=self.cache_dir,
                                          allow_patterns=list(patterns),
                                          local_files_only=self.local_files_only))
        except Exception as exc:  # hub errors are many and version-dependent; the message is what matters
            where = "in the local hub cache" if self.local_files_only else "on the hub or in the local cache"
            raise CheckpointError(f"cannot find {self.repo_id!r} {where}: {exc}") from None

    def file(self, filename: str) -> Path | None:
        """One file of the repository, or None when the repository (or, offline, the cache)
        does not have it."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError

        try:
            return Path(hf_hub_download(self.repo_id, filename, revision=self.revision, cache_dir=self.cache_dir,
                                        local_files_only=self.local_files_only))
        except EntryNotFoundError:
            return None
        except Exception as exc:
            raise CheckpointError(f"cannot fetch {filename} of {self.repo_id!r}: {exc}") from None


def looks_like_hub_id(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", spec)) and not spec.startswith(".")


# -- the embedding tensor ----------------------------------------------------------------------------------


def choose_embedding_key(keys: Collection[str], *, model_type: str | None,
                         tensor_key: str | None = None) -> tuple[str, str]:
    """(tensor name, how it was chosen) for the input embedding among ``keys``.

    ``tensor_key`` wins; then :data:`EMBEDDING_KEYS` for ``model_type``, also under one extra
    prefix (a wrapper's ``model.``) when exactly one key ends with a listed name; for a model
    type not in the table, a listed name of any architecture when exactly one is present.
    Raises :class:`CheckpointError` listing the candidates otherwise.
    """
    keys = set(keys)
    if tensor_key is not None:
        if tensor_key in keys:
            return tensor_key, "--tensor-key"
        raise CheckpointError(f"no tensor {tensor_key!r} in the checkpoint; candidates: "
                              + _candidates(keys))
    known = EMBEDDING_KEYS.get(model_type or "", ())
    for name in known:
        if name in keys:
            return name, f"model_type {model_type!r}"
    for name in known:
        ends = [k for k in keys if k.endswith("." + name)]
        if len(ends) == 1:
            return ends[0], f"model_type {model_type!r} (under a prefix)"
    if model_type not in EMBEDDING_KEYS:
        every = dict.fromkeys(n for names in EMBEDDING_KEYS.values() for n in names)
        hits = [n for n in every if n in keys]
        if len(hits) == 1:
            return hits[0], f"model_type {model_type!r} is not in the table; the one known embedding name present"
    what = f"model_type {model_type!r}" if model_type else "a checkpoint without model_type"
    raise CheckpointError(
        f"cannot tell which tensor is the input embedding of {what}; candidates: {_candidates(keys)}; "
        "pass --tensor-key NAME (tensor_key=...)"
    )


def _candidates(keys: Collection[str]) -> str:
    hints = ("embed", "wte", "word", "shared", "tok")
    cands = sorted(k for k in keys if any(h in k.lower() for h in hints))
    if not cands:
        cands = sorted(keys)[:30]
    return ", ".join(cands) if cands else "(the checkpoint holds no tensors)"


# safetensors dtype -> the little-endian NumPy type its bytes are read as. bfloat16 has no NumPy
# type, but it is the top half of a float32: read as uint16, it widens exactly by a 16-bit shift
# (no torch import -- 1+ s and 150+ MB -- just to convert rows).
SAFETENSORS_DTYPES: dict[str, str] = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
_MAX_HEADER_BYTES = 100 * 2**20


def safetensors_data_offset(path: Path, key: str) -> int:
    """Byte offset of tensor ``key``'s data in a safetensors file: 8 bytes of little-endian
    header length, the JSON header (whose ``data_offsets`` count from its end), then the data."""
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= _MAX_HEADER_BYTES:
            raise MalformedFileError(path, None, "not a safetensors file (bad header length)")
        try:
            entry = json.loads(f.read(n))[key]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError) as exc:
            raise MalformedFileError(path, None, f"cannot read {key!r} from the header ({exc})") from None
    return 8 + n + int(entry["data_offsets"][0])


class _Table:
    """Rows of one 2-d tensor in one weight file, converted to ``dtype`` on read.

    safetensors: the library opens and validates the file and gives dtype and shape; rows are
    then read with plain positioned reads at the tensor's offset, so no page of the file stays
    mapped into this process (a memory map would add every page read to the resident set).
    ``.bin``: a memory-mapped ``torch.load``.
    """

    def __init__(self, path: Path, key: str, fmt: str, dtype: np.dtype) -> None:
        self.path, self.key, self.fmt, self.dtype = path, key, fmt, dtype
        self.notes: list[str] = []
        self._file = None  # opened on first read
        self._tensor = None  # torch tensor (mmap) for .bin
        if fmt == "safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(path), framework="numpy") as f:
                    if key not in f.keys():
                        raise MalformedFileError(path, None, f"no tensor {key!r} although the index names this file")
                    sl = f.get_slice(key)
                    self.stored_dtype = str(sl.get_dtype())  # e.g. "BF16", "F16", "F32"
                    shape = list(sl.get_shape())
            except SafetensorError as exc:
                raise MalformedFileError(path, None, str(exc)) from None
            if self.stored_dtype not in SAFETENSORS_DTYPES:
                raise CheckpointError(f"{key} is stored as {self.stored_dtype}; embgraft reads "
                                      f"{', '.join(SAFETENSORS_DTYPES)}")
            self.raw_dtype = np.dtype(SAFETENSORS_DTYPES[self.stored_dtype])
            self.offset = safetensors_data_offset(path, key)
        else:
            self._tensor = _torch_load(path, self.notes)[key]
            self.stored_dtype = str(self._tensor.dtype).replace("torch.", "")
            shape = list(self._tensor.shape)
        if len(shape) != 2:
            raise CheckpointError(f"{key} in {path.name} has shape {shape}, not (rows, dim)")
        self.n_rows, self.dim = int(shape[0]), int(shape[1])
        self.row_bytes = self.dim * (self.raw_dtype.itemsize if fmt == "safetensors" else self._tensor.element_size())

    def read(self, start: int, stop: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` as ``(stop - start, dim)`` of ``dtype``, into ``out`` when given
        (then without temporaries for float32 and bfloat16 tables)."""
        if out is None:
            out = np.empty((stop - start, self.dim), self.dtype)
        if self.fmt != "safetensors":
            import torch

            block = self._tensor[start:stop]
            if block.dtype == torch.bfloat16:  # NumPy has no bfloat16
                block = block.to(torch.float32)
            out[...] = block.numpy()
            return out
        if self.raw_dtype == out.dtype:
            raw = out  # stored as wanted: read straight into place
        else:
            raw = np.empty((stop - start, self.dim), self.raw_dtype)
        self._read_into(raw, start)
        if self.stored_dtype == "BF16" and out.dtype == np.float32:
            bits = out.view(np.uint32)
            bits[...] = raw  # bf16 bits into the low half ...
            bits <<= 16  # ... moved to the high half: exactly the float32 of the same value
        elif self.stored_dtype == "BF16":
            out[...] = (raw.astype(np.uint32) << 16).view(np.float32)
        elif raw is not out:
            out[...] = raw
        return out

    def _read_into(self, raw: np.ndarray, start: int) -> None:
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)
        view = memoryview(raw).cast("B")
        self._file.seek(self.offset + start * self.row_bytes)
        done = 0
        while done < len(view):  # a plain read may return less than asked; loop to the end
            n = self._file.readinto(view[done:])
            if not n:
                raise MalformedFileError(self.path, None,
                                         f"{self.key} is cut short (row {start + done // self.row_bytes})")
            done += n

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """``(len(ids), dim)``: the rows ``ids`` in the order given. Nearby ids are read together
        (skipping up to ~1 MiB of unwanted rows costs less than another read), in spans of at
        most one chunk."""
        wanted = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(wanted), self.dim), self.dtype)
        if not len(wanted):
            return out
        order = np.argsort(wanted, kind="stable")
        ordered = wanted[order]
        gap = max(1, _GAP_BYTES // self.row_bytes)
        span = max(1, _CHUNK_BYTES // self.row_bytes)
        lo = 0
        for hi in [*(np.flatnonzero(np.diff(ordered) > gap) + 1).tolist(), len(ordered)]:
            while lo < hi:
                start = int(ordered[lo])
                end = min(hi, max(lo + 1, int(np.searchsorted(ordered, start + span))))
                block = self.read(start, int(ordered[end - 1]) + 1)
                out[order[lo:end]] = block[ordered[lo:end] - start]
                lo = end
        return out

    def all(self, *, progress: bool = False) -> np.ndarray:
        """The whole table, ``(n_rows, dim)``, read in chunks of about 16 MiB so that peak memory
        stays near the converted table's size."""
        from embgraft.sources._io import progress_bar

        out = np.empty((self.n_rows, self.dim), self.dtype)
        step = max(1, _CHUNK_BYTES // max(self.row_bytes, 1))
        bar = progress_bar(total=self.n_rows, desc=self.key, enabled=progress)
        try:
            for start in range(0, self.n_rows, step):
                stop = min(self.n_rows, start + step)
                self.read(start, stop, out=out[start:stop])
                bar.update(stop - start)
        finally:
            bar.close()
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _torch_load(path: Path, notes: list[str]) -> dict:
    import torch

    try:
        # mmap: the state dict's tensors stay on disk until their rows are read
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc).lower() and "zip" not in str(exc).lower():
            raise MalformedFileError(path, None, f"torch.load failed: {exc}") from None
        notes.append(f"{path.name} is in torch's legacy format: loaded whole, without mmap")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error in weights_only mode names the offending object
        raise MalformedFileError(path, None, f"torch.load(weights_only=True) failed: {exc}") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedFileError(path, exc.lineno, exc.msg) from None


def _single_file_keys(path: Path, fmt: str) -> list[str]:
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    return list(_torch_load(path, []).keys())


def locate_embedding(directory: Path, *, model_type: str | None, tensor_key: str | None,
                     fetch: Callable[[str], Path | None] | None = None) -> tuple[Path, str, str, str]:
    """(weight file, tensor name, format, how the name was chosen) for the input embedding.

    ``fetch(name)`` gets a file that is not in ``directory`` yet (hub downloads); without it
    only what is on disk counts. Shard indexes are read first, so a sharded checkpoint opens
    (and, from the hub, downloads) only the shard that holds the embedding.
    """
    for index_name, single_name, fmt in WEIGHT_LAYOUTS:
        index = directory / index_name
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise MalformedFileError(index, None, "no 'weight_map' naming each tensor's shard")
            key, how = choose_embedding_key(weight_map, model_type=model_type, tensor_key=tensor_key)
            shard = directory / weight_map[key]
            if not shard.is_file() and fetch is not None:
                shard = fetch(weight_map[key]) or shard
            if not shard.is_file():
                raise CheckpointError(f"{index_name} puts {key} in {weight_map[key]}, which is missing")
            return shard, key, fmt, how
    for index_name, single_name, fmt in WEIGHT_LAYOUTS:
        single: Path | None = directory / single_name
        if not single.is_file():
            single = fetch(single_name) if fetch is not None else None
        if single is not None and single.is_file():
            key, how = choose_embedding_key(_single_file_keys(single, fmt), model_type=model_type,
                                            tensor_key=tensor_key)
            return single, key, fmt, how
    looked = ", ".join(n for layout in WEIGHT_LAYOUTS for n in layout[:2])
    raise CheckpointError(f"{directory}: no weights found (looked for {looked})")


# -- the source -----------------------------------------------------------------------------------------------


class CheckpointSource:
    """A transformer checkpoint's input-embedding table, through its own tokenizer.

    ``spec`` is a directory or a hub id (``org/name``; ``revision`` picks a branch, tag or
    commit; offline -- ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` -- it comes from the hub
    cache). ``tensor_key`` overrides :data:`EMBEDDING_KEYS`. Rows are returned as ``dtype``
    vectors of shape ``(dim,)``; bf16/fp16 tables are converted on read.
    ``special_tokens`` maps our specials (``<pad>``, ``<cls>`` ...) to the checkpoint's.
    """

    kind = "checkpoint"
    OPTIONS = frozenset({"tensor_key", "revision", "trust_remote_code", "on_bad_line", "progress",
                         "max_piece_chars", "dtype", "cache_dir", "local_files_only"})

    def __init__(
        self,
        spec: str | os.PathLike,
        *,
        tensor_key: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        on_bad_line: str = "error",
        progress: bool = True,
        max_piece_chars: int = 4,
        dtype: str = "float32",
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        if on_bad_line not in ("error", "skip"):
            raise ValueError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
        if dtype not in ("float32", "float64", "float16"):
            raise ConfigError(f"dtype must be float32, float64 or float16 (NumPy types), not {dtype!r}")
        self.name = str(spec)
        self.progress = progress
        self.max_piece_chars = max_piece_chars  # unused: the tokenizer decides the pieces
        self.trust_remote_code = bool(trust_remote_code)
        notes: list[str] = []
        path = Path(spec)
        fetch: Callable[[str], Path | None] | None = None
        if path.is_dir():
            if revision is not None:
                notes.append(f"revision {revision!r} ignored: {spec} is a local directory")
            self.path = path
        elif isinstance(spec, str) and looks_like_hub_id(spec) and not path.exists():
            hub = HubFiles(spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
            self.path = hub.snapshot(HUB_SMALL_FILES)
            fetch = hub.file
        else:
            raise FileNotFoundError(f"no checkpoint directory {spec}, and not a hub id")
        config_path = self.path / CONFIG_FILE
        self.config: dict[str, Any] = _read_json(config_path) if config_path.is_file() else {}
        self.model_type: str | None = self.config.get("model_type")
        if not any(next(self.path.glob(pattern), None) for pattern in TOKENIZER_FILES):
            raise CheckpointError(f"{spec}: no tokenizer files ({', '.join(TOKENIZER_FILES)}): embgraft maps "
                                  "tokens to rows through the checkpoint's own tokenizer")
        weight_file, self.key, fmt, how = locate_embedding(self.path, model_type=self.model_type,
                                                           tensor_key=tensor_key, fetch=fetch)
        self.table = _Table(weight_file, self.key, fmt, np.dtype(dtype))
        self.dim = self.table.dim
        self.n_rows = self.table.n_rows
        notes.append(f"embedding {self.key} {self.n_rows}x{self.dim} {self.table.stored_dtype} "
                     f"from {weight_file.name} ({how})")
        if self.table.stored_dtype not in (dtype, {"float32": "F32", "float64": "F64", "float16": "F16"}[dtype]):
            notes.append(f"{self.table.stored_dtype} rows converted to {dtype}")
        self._notes = notes + self.table.notes
        self._tokenizer: SourceTokenizer | None = None  # loaded on first use: read_table needs none
        self._cache: dict[int, np.ndarray] = {}
        self._n_bytes = 0
        self.scan = ScanStats(n_rows=self.n_rows, notes=list(self._notes))

    @property
    def tokenizer(self) -> SourceTokenizer:
        """The checkpoint's tokenizer, loaded on first use (a 150k-entry BPE takes ~0.5 s)."""
        if self._tokenizer is None:
            self._tokenizer = SourceTokenizer.from_dir(self.path, trust_remote_code=self.trust_remote_code)
            self._notes.append(f"tokenizer: {self._tokenizer.family.name}")
            too_big = [t for t, i in self._tokenizer.vocab.items() if i >= self.n_rows]
            if too_big:
                self._notes.append(f"{len(too_big)} tokenizer ids past the table's {self.n_rows} rows are "
                                   f"ignored, e.g. {too_big[:3]}")
            self.scan.notes = list(self._notes)
        return self._tokenizer

    # -- what the graft asks for --------------------------------------------------------------------
    @property
    def special_tokens(self) -> dict[str, str]:
        """Our specials -> the checkpoint's tokens, e.g. ``{"<pad>": "[PAD]", "<cls>": "[CLS]"}``."""
        return self.tokenizer.special_map()

    def requests(self, token: str) -> Iterable[str]:
        return ()  # any row can be read at any time

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """``{key: (dim,) vector}`` for the keys that are standalone entries of the vocabulary."""
        wanted = dict.fromkeys(k for k in keys if k)
        ids = {}
        for key in wanted:
            tid = self.tokenizer.exact_id(key)
            if tid is not None and tid < self.n_rows:
                ids[key] = tid
        rows = self._rows(list(dict.fromkeys(ids.values())))
        self.scan = ScanStats(n_rows=self.n_rows, n_requested=len(wanted), n_found=len(ids),
                              n_bytes=self._n_bytes, notes=list(self._notes))
        return {key: rows[tid] for key, tid in ids.items()}

    def pieces(self, token: str, found: Mapping[str, np.ndarray]) -> list[Piece]:
        """The tokenizer's pieces of ``token`` with their rows (see :meth:`SourceTokenizer.pieces`)."""
        refs = [r for r in self.tokenizer.pieces(token) if r.id < self.n_rows]
        rows = self._rows([r.id for r in refs])
        self.scan.n_bytes = self._n_bytes
        return [Piece(r.label, rows[r.id], r.n_chars) for r in refs]

    # -- rows -------------------------------------------------------------------------------------------
    def _rows(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        missing = [i for i in ids if i not in self._cache]
        if missing:
            block = self.table.rows(missing)
            self._n_bytes += len(missing) * self.table.row_bytes
            for i, row in zip(missing, block):
                self._cache[i] = row
        return {i: self._cache[i] for i in ids}

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        """``(len(ids), dim)``: rows by tokenizer id, in the order given."""
        bad = [i for i in ids if not 0 <= i < self.n_rows]
        if bad:
            raise IndexError(f"ids {bad[:5]} outside the table's {self.n_rows} rows")
        return self.table.rows(list(ids))

    def read_table(self) -> np.ndarray:
        """The whole input-embedding table, ``(n_rows, dim)`` of ``dtype``, read chunk by chunk."""
        out = self.table.all(progress=self.progress)
        self._n_bytes += self.n_rows * self.table.row_bytes
        self.scan.n_bytes = self._n_bytes
        return out

    def id_to_token(self) -> list[str | None]:
        """Token of each row (None for rows no token maps to)."""
        out: list[str | None] = [None] * self.n_rows
        for tok, i in self.tokenizer.vocab.items():
            if i < self.n_rows:
                out[i] = tok
        return out


__all__ = [
    "CheckpointError", "CheckpointSource", "EMBEDDING_KEYS", "SPECIAL_ROLES", "SURFACE_FORMS",
    "SourceTokenizer", "TOKENIZER_FAMILIES", "TokenizerFamily", "byte_level_decode", "byte_level_encode",
    "choose_embedding_key", "locate_embedding",
]
