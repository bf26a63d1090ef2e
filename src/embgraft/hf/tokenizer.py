"""A checkpoint's tokenizer, reduced to what grafting and extending need.

The tokenizer family -- WordPiece ``##``, SentencePiece ``▁`` or byte-level BPE -- decides which
vocabulary entry is a surface string's *standalone* row (:data:`TOKENIZER_FAMILIES`); an absent
token is split into the pieces the tokenizer gives it, with CJK characters taken from their
standalone rows (BERT-Chinese's ``##X`` rows for CJK were never trained).

Pieces come from a copy of the tokenizer with padding and truncation switched off, encoded
without special tokens: a checkpoint that pads every encoding to 128 (most sentence-transformers
do) would otherwise add 126 ``[PAD]`` pieces to every word, and a template would add ``[CLS]`` and
``[SEP]``. The normaliser is kept -- it is how the model itself sees text (an uncased model's
rows are those of the lower-cased text) -- and :attr:`SourceTokenizer.notes` says when it changes
the text.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from embgraft.errors import CheckpointError, MalformedFileError
from embgraft.files import read_json

# any of these in a checkpoint directory means it has a tokenizer
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "*.model", "*.tiktoken")

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

# what a piece stands for: a row of its own, a part of a character's UTF-8 bytes (byte-level BPE,
# SentencePiece byte fallback: rows close to noise for the character), or text the tokenizer does
# not know (its unknown token: the row says nothing about the text, so it is never used)
PIECE_KINDS = ("row", "bytes", "unknown")

# normaliser types (tokenizer.json) -> what they do to the text pieces are taken from
_NORMALISER_EFFECTS: dict[str, str] = {
    "Lowercase": "lower-cases",
    "StripAccents": "strips accents",
    "NFKC": "applies NFKC",
    "NFKD": "applies NFKD",
}
_BYTE_FALLBACK = re.compile(r"<0x[0-9A-Fa-f]{2}>")


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
    """One piece of a surface string: vocabulary ``id``, readable ``label``, how many of the
    string's characters it covers that no earlier piece covered (``n_chars``) and its ``kind``
    (one of :data:`PIECE_KINDS`). An ``unknown`` piece is labelled with the text it stands for,
    covers nothing, and its id (the unknown token's) must not be used."""

    label: str
    id: int
    n_chars: int
    kind: str = "row"


class SourceTokenizer:
    """A checkpoint's tokenizer, reduced to what grafting needs: standalone ids and pieces.

    ``backend`` is a ``tokenizers.Tokenizer``, left as it is (``extend`` saves it); pieces come
    from a copy without padding and truncation. ``special_tokens`` maps roles (``pad_token`` ...)
    to the tokens the checkpoint uses for them.
    """

    def __init__(self, backend, *, special_tokens: Mapping[str, str] | None = None) -> None:
        from tokenizers import Tokenizer

        self.backend = backend
        text = backend.to_str()
        self.encoder = backend
        if backend.padding is not None or backend.truncation is not None:
            # a copy: switching padding off must not change the tokenizer the caller saves
            self.encoder = Tokenizer.from_str(text)
            self.encoder.no_padding()
            self.encoder.no_truncation()
        spec = json.loads(text)
        self.family, self.marker, self.continuation = _detect_family(spec)
        self.byte_fallback = bool((spec.get("model") or {}).get("byte_fallback"))
        self.vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        self.added: frozenset[str] = frozenset(t["content"] for t in spec.get("added_tokens") or ())
        roles = dict(special_tokens or {})
        unk = roles.get("unk_token") or (spec.get("model") or {}).get("unk_token")
        if unk and unk in self.vocab:
            roles.setdefault("unk_token", unk)
        self.roles = {r: t for r, t in roles.items() if t in self.vocab}
        self.unk_id: int | None = self.vocab.get(self.roles["unk_token"]) if "unk_token" in self.roles else None
        self.notes = _pipeline_notes(spec)
        self._tokens_by_id: list[str] | None = None
        self._entries: dict[int, tuple[str, str]] = {}

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

    def encode_ids(self, surface: str) -> list[int]:
        """``surface``'s ids as the model would see them inside a text: no padding, no
        truncation, no special tokens."""
        return self.encoder.encode(surface, add_special_tokens=False).ids

    def pieces(self, surface: str) -> list[PieceRef]:
        """The tokenizer's pieces for ``surface`` (see :meth:`pieces_batch`)."""
        return self.pieces_batch([surface])[0]

    def pieces_batch(self, surfaces: Sequence[str]) -> list[list[PieceRef]]:
        """The tokenizer's pieces for each of ``surfaces``, encoded in one batch. Bare
        word-boundary markers are left out; unknown-token pieces are kept as ``unknown`` (never
        to be used as rows); WordPiece continuations of CJK characters (``##京``) are replaced by
        the characters' standalone rows; partial-character byte pieces are marked ``bytes``."""
        encodings = self.encoder.encode_batch(list(surfaces), add_special_tokens=False)
        tokens = self._id_to_token
        # tokens by id from a list: asking each encoding for its token strings costs more
        return [self._refs(s, ids, [tokens[i] for i in ids], enc.offsets)
                for s, enc in zip(surfaces, encodings) for ids in (enc.ids,)]

    @property
    def _id_to_token(self) -> list[str]:
        if self._tokens_by_id is None:
            by_id = [""] * (max(self.vocab.values(), default=-1) + 1)
            for tok, i in self.vocab.items():
                by_id[i] = tok
            self._tokens_by_id = by_id
        return self._tokens_by_id

    def _refs(self, surface: str, ids: list[int], tokens: list[str], offsets) -> list[PieceRef]:
        covered = [False] * len(surface)
        out: list[PieceRef] = []

        def add(label: str, tid: int, start: int, end: int, kind: str) -> None:
            n = 0
            if kind != "unknown":
                for i in range(max(start, 0), min(end, len(surface))):
                    if not covered[i]:
                        covered[i] = True
                        n += 1
            out.append(PieceRef(label, tid, n, kind))

        for tid, tok, (start, end) in zip(ids, tokens, offsets):
            if tid == self.unk_id:
                # its row says nothing about this text: named (for provenance), never used
                add(surface[start:end] or tok, tid, start, end, "unknown")
                continue
            if self.continuation and tok.startswith(self.continuation):
                rest = tok[len(self.continuation):]
                if is_cjk(rest):
                    # ##X rows of CJK characters were never trained: use each character's own row
                    aligned = end - start == len(rest)
                    for k, ch in enumerate(rest):
                        cid = self.vocab.get(ch)
                        span = (start + k, start + k + 1) if aligned else (start, end)
                        if cid is None or cid == self.unk_id:
                            add(ch, cid if cid is not None else -1, *span, "unknown")
                        else:  # when the normaliser changed the length, the first character takes the span
                            add(ch, cid, *span, "row")
                    continue
            label, kind = self._entry(tid, tok)
            if kind:  # else a bare "▁" or "Ġ": a word boundary, no content of the token
                add(label, tid, start, end, kind)
        return out

    def _entry(self, tid: int, tok: str) -> tuple[str, str]:
        """(label, kind) of a vocabulary entry as a piece, kind "" for a bare word boundary;
        worked out once per entry (decoding byte-level symbols is the costly part)."""
        hit = self._entries.get(tid)
        if hit is None:
            text = self.piece_text(tok)
            kind = "" if not text.strip() else "bytes" if self._is_partial(tok, text) else "row"
            hit = self._entries[tid] = (self.label(tok), kind)
        return hit

    def _is_partial(self, tok: str, text: str) -> bool:
        """A piece holding only part of a character's UTF-8 bytes."""
        if tok in self.added:
            return False
        if self.family.name == "byte-level":
            return "\\x" in text  # undecodable bytes were escaped by piece_text
        return self.byte_fallback and _BYTE_FALLBACK.fullmatch(tok) is not None

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


def _pipeline_notes(spec: dict) -> list[str]:
    """What the tokenizer does to text before it is split, said once for the report: padding,
    truncation and templates are switched off for composition; normalisers are kept."""
    notes = []
    if spec.get("padding") or spec.get("truncation"):
        notes.append("the tokenizer's padding/truncation are switched off to split tokens into pieces")
    effects = [effect for t, effect in _NORMALISER_EFFECTS.items() if _find(spec.get("normalizer"), t)]
    bert = _find(spec.get("normalizer"), "BertNormalizer")
    if bert is not None:
        if bert.get("lowercase"):
            effects.append("lower-cases")
        # BERT strips accents when asked, or (strip_accents null) whenever it lower-cases
        if bert.get("strip_accents") or (bert.get("strip_accents") is None and bert.get("lowercase")):
            effects.append("strips accents")
    if effects:
        notes.append(f"the tokenizer's normaliser {' and '.join(dict.fromkeys(effects))}: pieces are "
                     "those of the normalised text, as the model sees it")
    return notes


def _special_tokens_from_files(path: Path) -> dict[str, str]:
    """role -> token from tokenizer_config.json, then special_tokens_map.json for the rest."""
    roles: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        f = path / name
        if not f.is_file():
            continue
        data = read_json(f, expect=dict)
        for role in SPECIAL_ROLES.values():
            value = data.get(role)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                roles.setdefault(role, value)
    return roles


__all__ = [
    "PIECE_KINDS", "PieceRef", "SPECIAL_ROLES", "SURFACE_FORMS", "SourceTokenizer", "TOKENIZER_FAMILIES",
    "TOKENIZER_FILES", "TokenizerFamily", "byte_level_decode", "byte_level_encode", "is_cjk",
]
