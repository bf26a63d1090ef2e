"""The example configs in ``configs/``: each begins with the command that runs it, and each is a
valid training config once that command's data is given."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from embgraft.training.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_example_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_an_example_config_begins_with_its_command_and_is_valid(path, tmp_path):
    lines = path.read_text(encoding="utf-8").splitlines()
    head = [x for x in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]]
    own = [x for x in head if re.search(r"embgraft train --config configs/" + re.escape(path.name) + r"\b", x)]
    assert head and head[0].startswith("# ") and "embgraft " in head[0], head[:1]  # the first line is a command
    assert own, f"no line of the leading comment runs {path.name}"
    # the data its command names, as stand-in files (validation checks that they exist)
    data = {"hf_model": "stand-in/checkpoint"} if "--hf-model" in own[0] else {}
    for split in ("train", "dev", "test"):
        f = tmp_path / f"{split}.tsv"
        f.write_text("文本\t体育\n", encoding="utf-8")
        data[split] = str(f)
    config = TrainConfig.from_sources(file=path, overrides=data)
    assert config.model in ("bag", "textcnn", "bilstm", "transformer", "hf")
