"""One definition of a hub id, with or without an owner (issue 8.4)."""

from __future__ import annotations

import pytest

from embgraft.hf.repository import looks_like_hub_id
from embgraft.sources import detect_kind


@pytest.mark.parametrize("spec", ["bert-base-chinese", "gpt2", "t5-small", "hfl/chinese-roberta-wwm-ext",
                                  "Qwen/Qwen2.5-7B", "google-bert/bert-base-chinese", "a_b.c/x_y.z"])
def test_hub_ids_with_and_without_owner(spec):
    assert looks_like_hub_id(spec)
    assert detect_kind(spec) == "checkpoint"  # nothing of that name on disk: a hub id


@pytest.mark.parametrize("spec", [".hidden", "a/b/c", "/abs/path", "./rel", "name-", "-name", "a--b", "a..b",
                                  "org/", "/name", "中文模型", "x" * 97, "has space"])
def test_not_hub_ids(spec):
    assert not looks_like_hub_id(spec)
    with pytest.raises(FileNotFoundError, match="not a hub id"):
        detect_kind(spec)


def test_a_path_object_is_never_a_hub_id(tmp_path):
    from pathlib import Path

    assert not looks_like_hub_id(Path("bert-base-chinese")) and not looks_like_hub_id("")


@pytest.mark.parametrize("spec", ["vectors.txt", "sgns.wiki.word.bz2", "cc.zh.300.vec.gz", "w2v.bin", "emb.npy"])
def test_a_missing_vector_file_is_not_looked_up_on_the_hub(spec):
    assert looks_like_hub_id(spec)  # spelt like one, but named as a vector file
    with pytest.raises(FileNotFoundError, match=f"no such file: {spec}"):
        detect_kind(spec)
