from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ck():
    """The tiny-checkpoint builders (BERT, GPT-2, LLaMA), which live with the checkpoint-source
    tests in ``tests/sources/test_checkpoint.py``; one copy, loaded by path."""
    import importlib.util

    path = Path(__file__).parent / "sources" / "test_checkpoint.py"
    spec = importlib.util.spec_from_file_location("_checkpoint_builders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
