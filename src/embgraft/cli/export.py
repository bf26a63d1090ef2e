"""embgraft export RUN --format onnx [--quantize int8] [--labelled FILE] --out DIR [--force]
embgraft export GRAFT_OR_RUN --format model2vec --out DIR [--force]"""

from __future__ import annotations

import argparse

FORMATS = ("onnx", "model2vec")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from embgraft.export.onnx import QUANTIZE

    p.add_argument("run", metavar="RUN_OR_GRAFT", help="a finished run directory (onnx, model2vec) or a graft "
                                                       "directory (model2vec)")
    p.add_argument("--format", dest="export_format", choices=FORMATS, default="onnx",
                   help="onnx: model.onnx + tokenisation files, served by embgraft.export.Predictor; model2vec: the "
                        "embedding table as a model2vec.StaticModel directory (char or space vocabularies)")
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
    from embgraft.errors import ConfigError
    from embgraft.export.onnx import OnnxExportConfig, export_onnx

    if args.export_format == "model2vec":
        given = [flag for flag, v in (("--quantize", args.quantize), ("--labelled", args.labelled),
                                      ("--opset", args.opset)) if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} apply to --format onnx only")
        from embgraft.export.model2vec import export_model2vec

        meta = export_model2vec(args.run, args.out, force=args.force)
        print(f"{meta['from']} -> {args.out}/: Model2Vec, {meta['n_tokens']:,} tokens x {meta['dim']} "
              f"({meta['level']} tokenizer); load with model2vec.StaticModel.from_pretrained")
        return 0

    config = OnnxExportConfig(quantize=args.quantize, labelled=args.labelled, text_column=args.text_column,
                              label_column=args.label_column, opset=args.opset)
    meta = export_onnx(args.run, args.out, config, force=args.force)
    size = f"{meta['size_bytes']:,} bytes"
    if meta["quantize"]:
        size += f" ({meta['quantize']}; fp32 {meta['fp32_size_bytes']:,} bytes)"
    print(f"{meta['model']} -> {args.out}/: model.onnx {size}")
    acc = meta.get("accuracy")
    if acc:
        same = "label set" if meta.get("task") == "multi_label" else "top label"
        print(f"accuracy on {acc['file']} ({acc['n']:,} texts): run {acc['run']:.4f}, export {acc['export']:.4f} "
              f"(change {acc['change']:+.4f}); same {same} {acc['agreement']:.2%}, "
              f"max |p difference| {acc['max_abs_proba_diff']:.2e}")
    return 0
