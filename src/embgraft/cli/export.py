"""embgraft export RUN --format onnx [--quantize int8] [--labelled FILE] --out DIR [--force]"""

from __future__ import annotations

import argparse

FORMATS = ("onnx",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from embgraft.export.onnx import QUANTIZE

    p.add_argument("run", metavar="RUN_DIR", help="a finished run directory (embgraft train --out)")
    p.add_argument("--format", dest="export_format", choices=FORMATS, default="onnx",
                   help="onnx: model.onnx + tokenisation files, served by embgraft.export.Predictor")
    p.add_argument("--quantize", choices=QUANTIZE, help="int8: onnxruntime dynamic quantisation of the weights")
    p.add_argument("--labelled", metavar="FILE",
                   help="a labelled file (TSV text<TAB>label, CSV, JSONL): report the accuracy of the run and of "
                        "the export on it")
    p.add_argument("--text-column", help="CSV/JSONL column of --labelled holding the text")
    p.add_argument("--label-column", help="CSV/JSONL column of --labelled holding the label")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--out", required=True, metavar="DIR", help="the export directory to write")
    p.add_argument("--force", action="store_true", help="replace an earlier export directory at --out")


def run(args: argparse.Namespace) -> int:
    from embgraft.export.onnx import OnnxExportConfig, export_onnx

    config = OnnxExportConfig(quantize=args.quantize, labelled=args.labelled, text_column=args.text_column,
                              label_column=args.label_column, opset=args.opset)
    meta = export_onnx(args.run, args.out, config, force=args.force)
    size = f"{meta['size_bytes']:,} bytes"
    if meta["quantize"]:
        size += f" ({meta['quantize']}; fp32 {meta['fp32_size_bytes']:,} bytes)"
    print(f"{meta['model']} -> {args.out}/: model.onnx {size}")
    acc = meta.get("accuracy")
    if acc:
        print(f"accuracy on {acc['file']} ({acc['n']:,} texts): run {acc['run']:.4f}, export {acc['export']:.4f} "
              f"(change {acc['change']:+.4f}); same top label {acc['agreement']:.2%}, "
              f"max |p difference| {acc['max_abs_proba_diff']:.2e}")
    return 0
