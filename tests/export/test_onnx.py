"""``embgraft export --format onnx`` and the torch-free ``Predictor``: the export's probabilities
equal the run's ``Classifier``'s on real titles (and on empty and very long texts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embgraft.cli import main
from embgraft.export.layout import EXPORT_FILE, ONNX_FILE, read_export
from embgraft.export.onnx import OnnxExportConfig, export_onnx
from embgraft.export.predictor import Predictor
from embgraft.training.classifier import Classifier
from export.conftest import MODELS, real_titles
from helpers.imports import assert_not_imported

pytestmark = pytest.mark.slow  # trains and exports real (small) models


@pytest.mark.parametrize("name", list(MODELS))
def test_export_matches_the_classifier_fp32_and_int8(thuc_run, thuc_graft, tmp_path, name):
    run = thuc_run(name)
    texts = real_titles()
    clf = Classifier.load(run)
    expected = clf.predict_proba(texts)
    labelled = thuc_graft / "dev.tsv"
    fp32 = export_onnx(run, tmp_path / "fp32", OnnxExportConfig(labelled=str(labelled)))
    int8 = export_onnx(run, tmp_path / "int8", OnnxExportConfig(quantize="int8", labelled=str(labelled)))

    got = Predictor.load(tmp_path / "fp32").predict_proba(texts)
    assert got.shape == (204, 10)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    top, top_run = Predictor.load(tmp_path / "fp32").predict(texts, top_k=3), clf.predict(texts, top_k=3)
    assert [[lab for lab, _ in t] for t in top] == [[lab for lab, _ in t] for t in top_run]
    assert len(top[0]) == 3
    np.testing.assert_allclose(Predictor.load(tmp_path / "int8").predict_proba(texts), expected, atol=1e-2, rtol=0)

    # the bags' and CNNs' files are mostly the table (int8: a quarter); the small LSTM stays fp32
    # (INT8_OPS), and the small transformer's layers are under MIN_INT8_WEIGHTS
    assert int8["size_bytes"] < (0.5 if name in ("bag", "textcnn") else 0.7) * fp32["size_bytes"]
    assert fp32["size_bytes"] == fp32["fp32_size_bytes"] == int8["fp32_size_bytes"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8" / ONNX_FILE)).graph.node}
    assert {"DynamicQuantizeLinear", "DequantizeLinear"} <= ops  # int8 weights, dequantised or integer kernels
    assert fp32["accuracy"]["change"] == 0.0 and fp32["accuracy"]["n"] == 300
    assert abs(int8["accuracy"]["change"]) <= 0.02
    meta = read_export(tmp_path / "int8")
    assert meta["inputs"][0]["name"] == "ids" and meta["outputs"][0]["name"] == "logits"
    assert meta["inputs"][0]["shape"] == ["batch", "length"] and meta["quantize"] == "int8"
    assert meta["encoding"]["ngrams"] == MODELS[name].get("ngrams", 1)
    assert {p.name for p in (tmp_path / "fp32").iterdir()} == {EXPORT_FILE, ONNX_FILE, "recipe.json", "vocab.txt",
                                                               "labels.txt"}


def test_the_graph_axes_are_dynamic(thuc_run, tmp_path):
    import onnx

    export_onnx(thuc_run("bilstm"), tmp_path / "e")
    dims = onnx.load(str(tmp_path / "e" / ONNX_FILE)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "length"]


def test_predictor_imports_no_torch(thuc_run, tmp_path):
    export_onnx(thuc_run("bag"), tmp_path / "e")
    code = (f"from embgraft.export import Predictor\n"
            f"p = Predictor.load({str(tmp_path / 'e')!r})\n"
            f"top = p.predict(['央行宣布下调存款准备金率', ''], top_k=2)\n"
            f"assert len(top) == 2 and len(top[0]) == 2\n")
    assert_not_imported(code, ["torch", "transformers", "embgraft.models", "embgraft.training.classifier"])


def test_cli_export_reports_sizes_and_force_replaces_only_an_export(thuc_run, thuc_graft, tmp_path, capsys):
    run = thuc_run("bag")
    out = tmp_path / "exp"
    assert main(["export", str(run), "--format", "onnx", "--quantize", "int8", "--labelled",
                 str(thuc_graft / "dev.tsv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.onnx" in printed and "int8; fp32" in printed and "accuracy on" in printed and "change" in printed
    assert json.loads((out / EXPORT_FILE).read_text(encoding="utf-8"))["quantize"] == "int8"
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(out), "--force"]) == 0
    assert read_export(out)["quantize"] is None
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(run), "--force"]) == 2  # a run is never replaced
    err = capsys.readouterr().err
    assert "not an export directory of format embgraft-onnx" in err and err.count("\n") == 1
    assert (run / "model.safetensors").is_file()


def test_a_bundle_path_outside_the_export_is_refused(thuc_run, tmp_path):
    from embgraft.errors import MalformedFileError
    from embgraft.export.layout import inside

    with pytest.raises(MalformedFileError, match="outside the export directory"):
        inside(tmp_path, "../x")


def test_an_hf_run_on_its_own_tokenizer_exports_and_predicts_without_transformers(tiny_task, tmp_path):
    import torch
    import transformers

    from embgraft.training.config import TrainConfig
    from embgraft.training.loop import train

    chars = "球赛队员跑跳胜负冠军股市银行利率基金债券"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=160)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    transformers.BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(tmp_path / "bert")
    cfg = TrainConfig(train=str(tiny_task["train"]), dev=str(tiny_task["dev"]), model="hf",
                      hf_model=str(tmp_path / "bert"), epochs=1, batch_size=16, lr=3e-3, patience=None,
                      tensorboard="off")
    run = train(cfg, out=tmp_path / "run", progress=False, log=lambda *a, **k: None).out
    meta = export_onnx(run, tmp_path / "e")
    assert meta["encoding"]["kind"] == "tokenizer" and (tmp_path / "e" / "tokenizer.json").is_file()
    texts = ["球赛冠军", "银行利率基金", "", "  ", "球赛" * 200, "猫狗"]  # unknown characters, cut at 128
    np.testing.assert_allclose(Predictor.load(tmp_path / "e").predict_proba(texts),
                               Classifier.load(run).predict_proba(texts), atol=1e-5, rtol=0)
    code = f"from embgraft.export import Predictor\nPredictor.load({str(tmp_path / 'e')!r}).predict(['球赛'])\n"
    assert_not_imported(code, ["torch", "transformers"])
