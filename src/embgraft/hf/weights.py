"""Which tensor of a checkpoint is the input embedding, and reading its rows.

The tensor's name comes from ``config.json``'s ``model_type`` through :data:`EMBEDDING_KEYS` (or
an explicit ``tensor_key``). Only the rows asked for are read -- from ``.safetensors`` (sharded
or not; safetensors validates the file and gives dtype, shape and offset, then rows are read
with positioned reads, so no page stays mapped) or from a memory-mapped
``torch.load(weights_only=True)`` (``.bin``). The model is never instantiated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from embgraft.errors import CheckpointError, MalformedFileError
from embgraft.files import read_json, read_safetensors_header

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
_CHUNK_BYTES = 1 << 24  # 16 MiB: the most stored rows read at once
_GAP_BYTES = 1 << 20  # rows between two wanted ones are read through, up to 1 MiB of them


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


def safetensors_data_offset(path: Path, key: str) -> int:
    """Byte offset of tensor ``key``'s data in a safetensors file."""
    header, data_start = read_safetensors_header(path)
    try:
        return data_start + int(header[key]["data_offsets"][0])
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise MalformedFileError(path, None, f"cannot read {key!r} from the header ({exc})") from None


class EmbeddingTable:
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
                raise CheckpointError(f"{path}: {key} is stored as {self.stored_dtype}; embgraft reads "
                                      f"{', '.join(SAFETENSORS_DTYPES)}")
            self.raw_dtype = np.dtype(SAFETENSORS_DTYPES[self.stored_dtype])
            self.offset = safetensors_data_offset(path, key)
        else:
            self._tensor = _torch_load(path, self.notes)[key]
            self.stored_dtype = str(self._tensor.dtype).replace("torch.", "")
            shape = list(self._tensor.shape)
        if len(shape) != 2:
            raise CheckpointError(f"{path}: {key} has shape {shape}, not (rows, dim)")
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
        from embgraft.console import progress_bar

        out = np.empty((self.n_rows, self.dim), self.dtype)
        step = max(1, _CHUNK_BYTES // max(self.row_bytes, 1))
        bar = progress_bar(total=self.n_rows, desc=self.key, enabled=progress, unit=" rows")
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


def _single_file_keys(path: Path, fmt: str) -> list[str]:
    if fmt == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                return list(f.keys())
        except SafetensorError as exc:  # a truncated or foreign file: the library says what is wrong
            raise MalformedFileError(path, None, str(exc)) from None
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
            weight_map = read_json(index, expect=dict).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise MalformedFileError(index, None, "no 'weight_map' naming each tensor's shard")
            try:
                key, how = choose_embedding_key(weight_map, model_type=model_type, tensor_key=tensor_key)
            except CheckpointError as exc:
                raise CheckpointError(f"{index}: {exc}") from None
            shard = directory / weight_map[key]
            if not shard.is_file() and fetch is not None:
                shard = fetch(weight_map[key]) or shard
            if not shard.is_file():
                raise CheckpointError(f"{index} puts {key} in {weight_map[key]}, which is missing")
            return shard, key, fmt, how
    for index_name, single_name, fmt in WEIGHT_LAYOUTS:
        single: Path | None = directory / single_name
        if not single.is_file():
            single = fetch(single_name) if fetch is not None else None
        if single is not None and single.is_file():
            try:
                key, how = choose_embedding_key(_single_file_keys(single, fmt), model_type=model_type,
                                                tensor_key=tensor_key)
            except CheckpointError as exc:
                raise CheckpointError(f"{single}: {exc}") from None
            return single, key, fmt, how
    looked = ", ".join(n for layout in WEIGHT_LAYOUTS for n in layout[:2])
    raise CheckpointError(f"{directory}: no weights found (looked for {looked})")


__all__ = ["CONFIG_FILE", "EMBEDDING_KEYS", "EmbeddingTable", "SAFETENSORS_DTYPES", "WEIGHT_LAYOUTS",
           "choose_embedding_key", "locate_embedding", "safetensors_data_offset"]
