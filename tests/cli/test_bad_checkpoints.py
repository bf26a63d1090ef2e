"""Broken checkpoints through the CLI: exit code 2, one line naming the file, never a traceback,
and no output directory left behind (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import torch  # noqa: F401
import transformers  # noqa: F401

from embgraft.cli import main  # noqa: E402


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def truncated_safetensors(d: Path, ck) -> Path:
    ck.build_bert(d)
    _truncate(d / "model.safetensors")
    return d / "model.safetensors"


def truncated_bin(d: Path, ck) -> Path:
    ck.build_bert(d, fmt="bin")
    _truncate(d / "pytorch_model.bin")
    return d / "pytorch_model.bin"


def missing_config(d: Path, ck) -> Path:
    ck.build_bert(d)
    (d / "config.json").unlink()
    return d / "config.json"


def broken_config(d: Path, ck) -> Path:
    ck.build_bert(d)
    (d / "config.json").write_text('{"model_type": "bert",\n  oops}', encoding="utf-8")
    return d / "config.json"


def config_not_an_object(d: Path, ck) -> Path:
    ck.build_bert(d)
    (d / "config.json").write_text('["bert"]', encoding="utf-8")
    return d / "config.json"


def unknown_model_type(d: Path, ck) -> Path:
    """A model type the key table lacks, and no tensor under a name any known type uses."""
    from safetensors.torch import load_file, save_file

    ck.build_bert(d)
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "frobnicator"
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    state = {k.replace("word_embeddings", "token_table"): v for k, v in load_file(d / "model.safetensors").items()}
    save_file(state, str(d / "model.safetensors"))
    return d / "model.safetensors"


def no_weights(d: Path, ck) -> Path:
    ck.build_bert(d)
    (d / "model.safetensors").unlink()
    return d


def broken_tokenizer(d: Path, ck) -> Path:
    ck.build_bert(d)
    _truncate(d / "tokenizer.json")
    return d / "tokenizer.json"


CASES = [truncated_safetensors, truncated_bin, missing_config, broken_config, config_not_an_object, unknown_model_type,
         no_weights, broken_tokenizer]


@pytest.mark.parametrize("make", CASES, ids=[f.__name__ for f in CASES])
def test_a_bad_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, make, ck):
    ckpt = tmp_path / "ckpt"
    named = make(ckpt, ck)
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京大学的学生\n", encoding="utf-8")
    out = tmp_path / "out"
    capsys.readouterr()  # the builders' own progress output
    code = main(["graft", "--source", str(ckpt), "--corpus", str(corpus), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("embgraft graft: error: ") and str(named) in err, err
    assert not out.exists()
