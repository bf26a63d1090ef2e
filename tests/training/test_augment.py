"""Transfer-set augmentation for distillation (``train --augment N``, issue 17 item 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embgraft.cli import main
from embgraft.errors import ConfigError
from embgraft.training.augment import augment, neighbour_table


def _subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def test_neighbours_are_the_nearest_found_rows_by_cosine():
    tokens = ["<pad>", "球", "赛", "股", "市", "未"]
    rows = np.array([[0, 0], [1, 0.1], [2, 0.3], [0.1, 1], [0.2, 3], [1, 0.15]], dtype=np.float32)
    found = np.array([False, True, True, True, True, False])  # 未 was not found in the source: never offered
    table = neighbour_table(tokens, rows, found, k=2)
    assert set(table) == {"球", "赛", "股", "市"}
    assert table["球"] == ["赛", "股"] and table["股"] == ["市", "赛"]
    assert all("未" not in near and "<pad>" not in near for near in table.values())


def test_copies_delete_replace_and_window_tokens_reproducibly():
    texts = ["中国队夺得世界杯冠军", "央行宣布下调存款准备金率", "好"]
    copies = augment(texts, n_copies=4, tokenize=list, level="char", seed=3)
    assert copies == augment(texts, n_copies=4, tokenize=list, level="char", seed=3)
    assert copies != augment(texts, n_copies=4, tokenize=list, level="char", seed=4)
    assert 0 < len(copies) <= 8 and not set(copies) & set(texts)  # one-token texts give none
    # without neighbours a copy only loses tokens: it reads in its text's order
    assert all(any(_subsequence(c, t) for t in texts[:2]) for c in copies)
    near = {ch: ["X"] for ch in "中国队夺得世界杯冠军央行宣布下调存款准备金率"}
    replaced = augment(texts, n_copies=20, tokenize=list, level="char", neighbours=near, seed=3)
    assert any("X" in c for c in replaced)
    assert all(set(c) <= set("".join(texts[:2])) | {"X"} for c in replaced)


def test_words_are_glued_as_the_level_says():
    copies = augment(["the cup final tonight at nine"], n_copies=5, tokenize=str.split, level="space", seed=0)
    assert copies and all(" " in c or len(c.split()) == 1 for c in copies)
    assert all(set(c.split()) <= set("the cup final tonight at nine".split()) for c in copies)


def test_augmented_copies_join_the_transfer_set(tiny_task, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    base = ["train", "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--graft",
            str(tiny_task["graft"]), "--model", "bag", "--epochs", "2", "--no-progress", "--tensorboard", "off"]
    assert main([*base, "--out", str(teacher)]) == 0
    assert main([*base, "--teachers", str(teacher), "--augment", "3", "--distill-weight", "0.8",
                 "--out", str(tmp_path / "student")]) == 0
    log = capsys.readouterr().out
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_train"] == 120 and metrics["n_augmented"] == metrics["n_unlabelled"]
    assert 120 < metrics["n_augmented"] <= 360 and "altered copies" in log


def test_augment_needs_teachers_and_a_static_student():
    from embgraft.training.config import TrainConfig

    with pytest.raises(ConfigError, match="give --teachers with --augment"):
        TrainConfig(train="x", dev="y", model="bag", augment=2)
    with pytest.raises(ConfigError, match="augment must be a number of copies in 0..50"):
        TrainConfig(train="x", dev="y", model="bag", augment=-1)


def test_an_empty_unlabelled_text_is_one_line_at_its_file_and_line(tiny_task, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    base = ["train", "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--graft",
            str(tiny_task["graft"]), "--model", "bag", "--epochs", "1", "--no-progress", "--tensorboard", "off"]
    assert main([*base, "--out", str(teacher)]) == 0
    capsys.readouterr()
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "球赛"}\n{"text": "  "}\n{"text": "股市"}\n', encoding="utf-8")
    assert main([*base, "--teachers", str(teacher), "--unlabelled", str(texts), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{texts}:2: empty text" in err and not (tmp_path / "s").exists()
