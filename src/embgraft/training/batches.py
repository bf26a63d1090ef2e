"""Batches of encoded texts, for training and for scoring: ``batch_order`` (one epoch's index
batches, a pure function of seed and epoch), ``batches`` (dynamically padded tensors) and
``predict_logits`` (a model's logits over a whole set; training, serving and distillation share it).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from embgraft.training.encode import EncodedSet


def batch_order(lengths: np.ndarray, *, batch_size: int, shuffle: bool, seed: int, epoch: int,
                bucket: int = 50) -> list[np.ndarray]:
    """Index batches for one epoch. Shuffled: examples are shuffled, sorted by length inside
    windows of ``bucket`` batches (so padding is small but batches still vary), and the batches
    shuffled again; ``bucket=1`` gives plain shuffled batches. The order depends only on
    ``(seed, epoch)``, which makes resuming exact."""
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    window = batch_size * bucket
    for s in range(0, n, window):
        chunk = perm[s:s + window]
        perm[s:s + window] = chunk[np.argsort(lengths[chunk], kind="stable")]
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def padded_batches(data: EncodedSet, order: list[np.ndarray], *, min_len: int = 1,
                   multiple: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield ``(ids (R, T) int64 array, index (B,), segments)`` for each batch of ``order``'s texts:
    ``T`` the longest row of the batch (at least ``min_len``), rounded up to a ``multiple``. A row
    is a text (``R = B``, ``segments`` None) or, with chunking, one of its windows: ``segments``
    (R,) then gives each row's text within the batch. NumPy only: the torch-free ONNX predictor
    (``embgraft.export``) pads exactly as training and ``Classifier`` do."""
    for idx in order:
        rows, segments = data.rows_of(idx)
        width = max(int(data.lengths[rows].max()), min_len)
        width = -(-width // multiple) * multiple
        ids = data.ids[rows, :width]
        if ids.shape[1] < width:  # rounded past the longest text of the whole set
            ids = np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=data.pad_id)
        yield np.ascontiguousarray(ids), idx, segments


def batches(data: EncodedSet, order: list[np.ndarray], *, min_len: int = 1, multiple: int = 1) -> Iterator[tuple]:
    """Yield ``(ids (R, T) int64 tensor, labels (B,) int64 tensor, index (B,), segments)``, padded as
    :func:`padded_batches` pads (``segments`` a tensor, or None)."""
    import torch

    for ids, idx, segments in padded_batches(data, order, min_len=min_len, multiple=multiple):
        yield (torch.from_numpy(ids), torch.from_numpy(data.labels[idx]), idx,
               None if segments is None else torch.from_numpy(segments))


def pool_windows(logits, segments, n_texts: int, how: str):
    """(R, C) window logits -> (n_texts, C): each text's windows pooled by ``how`` (mean | max);
    ``segments`` None (one row a text) returns ``logits`` as they are."""
    import torch

    if segments is None:
        return logits
    segments = segments.to(logits.device)
    index = segments[:, None].expand_as(logits)
    if how == "max":
        return torch.full((n_texts, logits.shape[1]), float("-inf"), dtype=logits.dtype, device=logits.device
                          ).scatter_reduce(0, index, logits, reduce="amax", include_self=True)
    total = torch.zeros((n_texts, logits.shape[1]), dtype=logits.dtype, device=logits.device).scatter_add(0, index,
                                                                                                        logits)
    counts = torch.bincount(segments, minlength=n_texts).clamp_min(1).to(logits.dtype)
    return total / counts[:, None]


def predict_logits(model, data: EncodedSet, *, batch_size: int, device, amp=None) -> np.ndarray:
    """(n, n_classes) float32 logits of ``model`` (a ``TextClassifier``) over ``data``, in the
    data's order; batches sorted by length, each padded to the model's ``min_len`` and
    ``pad_multiple``; under bf16 autocast when ``amp`` is ``torch.bfloat16``."""
    import torch

    was_training = model.training
    model.eval()
    out = np.empty((len(data), 0), dtype=np.float32)
    order = batch_order(data.text_lengths, batch_size=batch_size, shuffle=False, seed=0, epoch=0)
    with torch.no_grad():
        for ids, _, idx, segments in batches(data, order, min_len=model.min_len, multiple=model.pad_multiple):
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = pool_windows(model(ids.to(device)).float(), segments, len(idx), data.pool).cpu().numpy()
            if out.shape[1] == 0:
                out = np.empty((len(data), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    model.train(was_training)
    return out
