"""``embgraft export RUN --format onnx``: a run directory -> a self-contained ONNX export directory
(layout in :mod:`embgraft.export.layout`) that :class:`embgraft.export.Predictor` serves without torch.

The graph is the run's model in eval mode, ``ids (batch, length) int64 -> logits (batch,
n_classes) float32``, both axes dynamic, exported with torch's dynamo exporter. Two models compute
something the exporter cannot trace as written, so they are exported through a *view* that computes
the same function with traceable operations:

- ``textcnn`` with n-grams cuts its convolution input to the batch's longest token run (a width
  read back as a Python int); the view convolves the whole row and masks the window positions the
  cut would have removed, so each max sees exactly the classifier's windows.
- ``bilstm`` packs padded sequences (``pack_padded_sequence`` needs the lengths on the host); the
  view runs each direction of each layer as its own LSTM, the backward one over each text reversed
  within its length, which is what packing computes.

``--quantize int8`` is onnxruntime's dynamic quantisation: the embedding table (Gather) as int8
per tensor, MatMul/Gemm/Conv weights of at least ``MIN_INT8_WEIGHTS`` per output channel (not
LSTM: see ``INT8_OPS``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embgraft.errors import ConfigError, OutputExistsError
from embgraft.export.layout import (EXPORT_FILE, FORMAT_VERSION, HF_TOKENIZER_FILE, INPUT_NAME, ONNX_FILE,
                                    ONNX_FORMAT, OUTPUT_NAME)
from embgraft.files import atomic_dir, read_json, write_json
from embgraft.text.tokenize import RECIPE_FILE, USER_DICT_FILE
from embgraft.training import rundir
from embgraft.version import __version__

QUANTIZE = ("int8",)
# the ops whose weights --quantize int8 stores as int8. Not LSTM: onnxruntime's quantised LSTM
# came back with the length axis fixed to the export sample's (onnxruntime 1.32)
INT8_OPS = ("Gather", "MatMul", "Gemm", "Conv", "Attention")
MIN_INT8_WEIGHTS = 1 << 16  # layers with fewer weights stay fp32 (see _quantize_int8)


@dataclass(frozen=True)
class OnnxExportConfig:
    """``quantize``: None or ``"int8"``; ``labelled``: a labelled file (the run's data formats)
    scored by the run's classifier and by the export, for the accuracy change; ``opset``: the
    ONNX opset (None: the exporter's default)."""

    quantize: str | None = None
    labelled: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    opset: int | None = None

    def __post_init__(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise ConfigError(f"--quantize must be one of {list(QUANTIZE)}, not {self.quantize!r}")


def import_onnx_stack():
    try:
        import onnx  # noqa: F401  (torch.onnx's dynamo exporter needs onnx and onnxscript)
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(f"ONNX export needs onnx, onnxscript and onnxruntime ({e.name} is missing): "
                          "pip install 'embgraft[export]'") from None


def check_export_target(out: Path, *, force: bool, fmt: str = ONNX_FORMAT) -> None:
    """``--force`` replaces only an export directory of the same kind (its ``export.json`` names
    format ``fmt``), never a run, a graft or any other file."""
    if not os.path.lexists(out):
        return
    if not force:
        raise OutputExistsError(f"{out} exists; pass --force to replace it")
    meta = read_json(out / EXPORT_FILE, default=None) if out.is_dir() and not out.is_symlink() else None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise OutputExistsError(f"{out} exists and is not an export directory of format {fmt} (its {EXPORT_FILE}); "
                                "--force replaces only an earlier export of the same kind")


def export_onnx(run: str | os.PathLike, out: str | os.PathLike, config: OnnxExportConfig = OnnxExportConfig(), *,
                force: bool = False) -> dict:
    """Write the export directory ``out`` for the run ``run``; returns its ``export.json``
    (with ``size_bytes``, ``fp32_size_bytes`` and, given ``config.labelled``, ``accuracy``)."""
    import_onnx_stack()
    from embgraft.training.classifier import Classifier

    run, out = Path(run), Path(out)
    check_export_target(out, force=force)
    clf = Classifier.load(run)
    meta = {"format": ONNX_FORMAT, "version": FORMAT_VERSION, "embgraft_version": __version__,
            "model": clf.config["model"], "n_classes": len(clf.labels),
            "inputs": [{"name": INPUT_NAME, "dtype": "int64", "shape": ["batch", "length"],
                        "what": "token ids (then n-gram and word ids), right-padded with pad_id"}],
            "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", "n_classes"],
                         "what": ("logits; each label's sigmoid gives its probability, a label holds at or "
                                  "above its threshold" if clf.multi_label
                                  else "logits; softmax gives the class probabilities")}],
            "min_len": clf.model.min_len, "pad_multiple": clf.model.pad_multiple,
            "quantize": config.quantize, "encoding": _encoding(clf),
            "task": "multi_label" if clf.multi_label else "single_label"}
    if clf.multi_label:
        meta["thresholds"] = dict(zip(clf.labels.names, clf.thresholds.tolist()))
    with atomic_dir(out, force=force) as tmp:
        _copy_tokenisation(run, tmp, meta["encoding"])
        fp32 = tmp / ONNX_FILE
        _export_in_child(run, fp32, opset=config.opset)
        meta["fp32_size_bytes"] = fp32.stat().st_size
        if config.quantize == "int8":
            _quantize_int8(fp32)
        meta["size_bytes"] = fp32.stat().st_size
        write_json(tmp / EXPORT_FILE, meta)
        if config.labelled:
            meta["accuracy"] = _accuracy_change(clf, tmp, config)
            write_json(tmp / EXPORT_FILE, meta)
    return meta


def _encoding(clf) -> dict:
    """How the predictor turns texts into ids: the run's recipe + vocabulary, or (an ``hf`` run on
    its own tokenizer) its ``tokenizer.json``."""
    from embgraft.training.encode import TextEncoder

    enc = clf.encoder
    if isinstance(enc, TextEncoder):
        chunks = None if enc.chunks is None else {"size": enc.chunks.size, "stride": enc.chunks.stride,
                                                  "pool": enc.chunks.pool, "max_windows": enc.chunks.max_windows}
        return {"kind": "recipe", "ngrams": enc.ngrams, "words": enc.split_words is not None,
                "pad_id": enc.vocab.pad_id, "unk_id": enc.vocab.unk_id, "max_len": enc.recipe.max_len,
                "chunks": chunks}
    return {"kind": "tokenizer", "pad_id": enc.vocab.pad_id, "unk_id": enc.vocab.unk_id, "max_len": enc.max_len}


def _copy_tokenisation(run: Path, tmp: Path, encoding: dict) -> None:
    shutil.copyfile(run / rundir.LABELS_FILE, tmp / rundir.LABELS_FILE)
    if encoding["kind"] == "recipe":
        names = [RECIPE_FILE, rundir.VOCAB_FILE] + ([USER_DICT_FILE] if (run / USER_DICT_FILE).is_file() else [])
        for name in names:
            shutil.copyfile(run / name, tmp / name)
        return
    src = run / rundir.HF_DIR / HF_TOKENIZER_FILE
    if not src.is_file():  # a slow (Python-only) tokenizer: nothing torch-free can run it
        raise ConfigError(f"{src} is missing: the run's tokenizer has no fast (tokenizers) form, which the "
                          "torch-free predictor needs")
    shutil.copyfile(src, tmp / HF_TOKENIZER_FILE)


def _export_in_child(run: Path, path: Path, *, opset: int | None) -> None:
    """:func:`_export_graph` in a fresh interpreter. A second export of a bilstm in one process
    came back with its length axis fixed to the sample's (torch 2.13: state left by the first
    export; ``torch._dynamo.reset()`` did not clear it), so every export starts clean."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "embgraft.export.onnx", str(run), str(path)] + ([str(opset)] if opset else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise ConfigError(lines[-1] if lines else f"ONNX export failed (exit {done.returncode})")


def _export_graph(clf, path: Path, *, opset: int | None) -> None:
    import warnings

    import torch

    model = _view(clf.model, clf.config["model"]).eval()
    vocab_size = clf.model.embedding.n_tokens if clf.model.embedding is not None else 100
    # sample sizes unlike any of the model's own sizes: a sample axis equal to, say, the pooled
    # width was specialised to that constant instead of staying dynamic
    width = -(-max(37, clf.model.min_len) // clf.model.pad_multiple) * clf.model.pad_multiple
    # ids from 2 on (past <pad> and <unk>); a padded tail so the mask paths are traced
    sample = torch.arange(3 * width, dtype=torch.long).reshape(3, width) % max(vocab_size - 2, 1) + 2
    sample[1, width // 2:] = clf.encoder.vocab.pad_id
    dims = ({0: torch.export.Dim("batch", max=1 << 20), 1: torch.export.Dim("length", max=1 << 20)},)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (sample,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamo=True, dynamic_shapes=dims, opset_version=opset, verbose=False)
    except Exception as e:  # the exporter's failures are long reports; the first line says why
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ConfigError(f"ONNX export of the {clf.config['model']!r} model failed in torch.onnx "
                          f"(torch {torch.__version__}): {type(e).__name__}: {first[:300]}") from None
    program.save(path, external_data=False)  # one self-contained file
    _share_equal_initializers(path)


def _share_equal_initializers(path: Path) -> None:
    """Rewrite ``path`` with each table stored and named once. The exporter gives each use of a
    table its own copy (a ``mean+max`` bag's embedding table was in the file twice) or reads it
    through an ``Identity`` (``detach``), behind which onnxruntime's quantiser does not see the
    Gather and keeps the fp32 table beside the int8 one (an int8 export larger than the fp32)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    kept = []
    for init in graph.initializer:
        key = (init.data_type, tuple(init.dims), init.raw_data) if init.raw_data else None
        if key is not None and key in first:
            alias[init.name] = first[key]
            continue
        if key is not None:
            first[key] = init.name
        kept.append(init)
    names = {i.name for i in kept} | set(alias)
    outputs = {o.name for o in graph.output}
    nodes = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in names and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
            continue
        nodes.append(node)
    if not alias:
        return
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    _rename_inputs(graph, alias)
    onnx.save(model, str(path))


def _rename_inputs(graph, alias: dict[str, str]) -> None:
    """Point every node input named in ``alias`` at its target, in subgraphs (Loop, If) too."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_inputs(attr.g, alias)
            for g in attr.graphs:
                _rename_inputs(g, alias)


def _quantize_int8(path: Path) -> None:
    """onnxruntime's dynamic quantisation: the embedding table per tensor, the layers per output
    channel, except layers of fewer than :data:`MIN_INT8_WEIGHTS` weights (a THUCNews bag's
    64 x 10 output layer saved 2 kB as int8 and moved probabilities by up to 0.004)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(path))
    sizes = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
    small = [n.name for n in model.graph.node
             if n.op_type in INT8_OPS and n.op_type != "Gather" and len(n.input) > 1
             and sizes.get(n.input[1], MIN_INT8_WEIGHTS) < MIN_INT8_WEIGHTS]
    fp32 = path.with_name(path.stem + ".fp32.onnx")
    half = path.with_name(path.stem + ".layers.onnx")
    path.rename(fp32)
    try:
        quantize_dynamic(fp32, half, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=small,
                         op_types_to_quantize=[op for op in INT8_OPS if op != "Gather"])
        quantize_dynamic(half, path, weight_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=["Gather"])
    finally:
        fp32.unlink()
        half.unlink(missing_ok=True)


def _accuracy_change(clf, export_dir: Path, config: OnnxExportConfig) -> dict:
    """Accuracy on ``config.labelled`` of the run's classifier (torch) and of the export
    (multi-label: subset accuracy, and agreement on whole label sets)."""
    from embgraft.export.predictor import Predictor
    from embgraft.training.data import read_examples

    examples = read_examples(config.labelled, text_column=config.text_column, label_column=config.label_column)
    y, examples = clf.labels.encode(examples, multi_label=clf.multi_label, separator=clf.config.get("label_separator"))
    p_run = clf.predict_proba(examples.texts)
    p_export = Predictor.load(export_dir).predict_proba(examples.texts)
    if clf.multi_label:  # a prediction is a label set: compare sets
        from embgraft.training.multilabel import exact_sets

        acc_run = float(exact_sets(p_run, clf.thresholds, y).mean())
        acc_export = float(exact_sets(p_export, clf.thresholds, y).mean())
        agreement = float(exact_sets(p_export, clf.thresholds, p_run >= clf.thresholds).mean())
    else:
        acc_run = float((p_run.argmax(1) == y).mean())
        acc_export = float((p_export.argmax(1) == y).mean())
        agreement = float((p_run.argmax(1) == p_export.argmax(1)).mean())
    return {"file": str(config.labelled), "n": int(len(y)), "run": acc_run, "export": acc_export,
            "change": acc_export - acc_run, "max_abs_proba_diff": float(np.abs(p_run - p_export).max()),
            "agreement": agreement}


# --- views: the same function, traceable -------------------------------------------------------


def _view(model, name: str):
    if name == "textcnn" and model.ngrams > 1:
        return _TextCNNNgramView(model)
    if name == "bilstm":
        return _BiLSTMView(model)
    return model


def _modules():
    """torch, built on first use: the views subclass ``nn.Module``, and importing this module
    (``check_export_target``) stays cheap."""
    import torch
    from torch import nn

    return torch, nn


def _TextCNNNgramView(model):  # noqa: N802 (a class factory)
    torch, nn = _modules()

    class TextCNNNgramView(nn.Module):
        """``ids`` (B, T) -> logits, as ``TextCNN.forward`` with n-grams. The classifier convolves
        the token ids cut to the longest token run; its maximum counts only the windows that start
        inside each text, so convolving all T columns (n-gram ids replaced by padding) and masking
        the same windows gives its maxima."""

        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, ids):
            m = self.m
            pad = m.embedding.padding_idx
            is_token = ids < m.ngram_start
            tokens = torch.where(is_token, ids, torch.full_like(ids, pad))
            lengths = (tokens != pad).sum(dim=1)  # (B,)
            x = m.embedding(tokens).transpose(1, 2)  # (B, dim, T)
            features = []
            for k, conv in zip(m.kernel_sizes, m.convs):
                c = conv(x)  # (B, n_filters, T - k + 1)
                starts = torch.arange(c.shape[2], device=ids.device)
                outside = starts[None, :] >= (lengths - k + 1).clamp_min(1)[:, None]
                features.append(torch.relu(c.masked_fill(outside[:, None, :], float("-inf")).amax(dim=2)))
            features.append(m.embedding.bag(ids))
            return m.out(m.dropout(torch.cat(features, dim=1)))

    return TextCNNNgramView(model)


def _BiLSTMView(model):  # noqa: N802
    torch, nn = _modules()

    class BiLSTMView(nn.Module):
        """``ids`` (B, T) -> logits, as ``BiLSTM.forward``, without packing: per layer, the
        forward LSTM over the rows as they are (padding comes after a text, so it never reaches
        its states) and the backward one over each text reversed within its length."""

        def __init__(self, m) -> None:
            super().__init__()
            self.m = m
            lstm = m.lstm
            self.forward_cells = nn.ModuleList()
            self.backward_cells = nn.ModuleList()
            for layer in range(lstm.num_layers):
                for suffix, cells in (("", self.forward_cells), ("_reverse", self.backward_cells)):
                    size = lstm.input_size if layer == 0 else 2 * lstm.hidden_size
                    cell = nn.LSTM(size, lstm.hidden_size, batch_first=True)
                    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, f"{kind}_l0").data = getattr(lstm, f"{kind}_l{layer}{suffix}").data
                    cells.append(cell)

        def forward(self, ids):
            m = self.m
            mask = ids != m.embedding.padding_idx  # (B, T)
            lengths = mask.sum(dim=1).clamp_min(1)  # (B,)
            t = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)  # (1, T)
            # position t of a reversed text reads position len-1-t; padding stays where it is
            rev = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t)  # (B, T)
            keep = (t < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
            x = m.dropout(m.embedding(ids))
            for fwd, bwd in zip(self.forward_cells, self.backward_cells):
                idx = rev.unsqueeze(-1).expand(-1, -1, x.shape[2])
                back = bwd(x.gather(1, idx))[0]
                back = back.gather(1, rev.unsqueeze(-1).expand(-1, -1, back.shape[2]))
                x = torch.cat([fwd(x)[0], back], dim=2) * keep  # pad_packed_sequence's zeros
            h, mask = x, mask.unsqueeze(-1)
            if m.pooling == "max":
                pooled = h.masked_fill(~mask, float("-inf")).amax(dim=1)
            elif m.pooling == "mean":
                pooled = (h * mask).sum(dim=1) / lengths.unsqueeze(-1)
            else:
                scores = m.attention(h).masked_fill(~mask, float("-inf"))
                pooled = (torch.softmax(scores, dim=1) * h).sum(dim=1)
            return m.out(m.dropout(pooled))

    return BiLSTMView(model)


def _main(argv: list[str]) -> int:
    """``python -m embgraft.export.onnx RUN PATH [OPSET]``: the graph alone (see :func:`_export_in_child`)."""
    import sys

    from embgraft.errors import EmbgraftError
    from embgraft.training.classifier import Classifier

    try:
        _export_graph(Classifier.load(argv[0]), Path(argv[1]), opset=int(argv[2]) if len(argv) > 2 else None)
    except EmbgraftError as e:
        print(" ".join(str(e).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
