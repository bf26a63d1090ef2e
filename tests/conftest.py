import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # the shared helpers: `from helpers.checkpoints import build_bert`

SHARED_DATA = TESTS.parents[1] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ck():
    """The tiny-checkpoint builders (BERT, GPT-2, LLaMA) of ``tests/helpers/checkpoints.py``."""
    from helpers import checkpoints

    return checkpoints


# --- a tiny labelled task for the training tests ------------------------------------------------
# Two classes told apart by their characters; the vector file knows most of them (4 dims), so a
# graft has exact rows, composed-free init rows (the characters it lacks) and a padding row.
_CLASS_CHARS = {"体育": "球赛队员跑跳胜负冠军", "财经": "股市银行利率基金债券"}
_KNOWN = "球赛队员跑跳股市银行利率"


def _texts(rng, chars, n):
    return ["".join(rng.choice(list(chars), size=int(rng.integers(3, 9)))) for _ in range(n)]


@pytest.fixture
def tiny_task(tmp_path):
    """``{"train", "dev", "test", "vectors", "graft"}`` paths: TSV files of 120/40/40 rows and a
    grafted character vocabulary (graft written with embgraft's own API)."""
    import numpy as np

    from embgraft.grafting.cascade import graft
    from embgraft.text.vocab import Vocab

    rng = np.random.default_rng(7)
    paths = {}
    for split, n in (("train", 60), ("dev", 20), ("test", 20)):
        rows = [(t, label) for label, chars in _CLASS_CHARS.items() for t in _texts(rng, chars, n)]
        order = rng.permutation(len(rows))
        p = tmp_path / f"{split}.tsv"
        p.write_text("".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in order), encoding="utf-8")
        paths[split] = p
    vec = tmp_path / "vectors.txt"
    lines = [f"{len(_KNOWN)} 4"] + [ch + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=4)) for ch in _KNOWN]
    vec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["vectors"] = vec
    vocab = Vocab.from_corpus(paths["train"], level="char")
    paths["graft"] = graft(vocab, str(vec)).save(tmp_path / "graft")  # the vocabulary's recipe goes along
    return paths
