"""Hugging Face checkpoints, read without instantiating a model.

- :mod:`embgraft.hf.repository` -- a local directory or a hub id as one object: what a hub id
  looks like, and fetching a repository's files;
- :mod:`embgraft.hf.tokenizer` -- a checkpoint's tokenizer reduced to what grafting needs
  (tokenizer families, the byte-level alphabet, standalone rows and pieces);
- :mod:`embgraft.hf.weights` -- which tensor is the input embedding, and reading its rows from
  safetensors or ``.bin`` files;
- :mod:`embgraft.hf.extend` -- ``embgraft extend``: new tokens in a tokenizer and its model.

Nothing here imports torch or transformers at module level: the graft reads checkpoints with
``safetensors`` and ``tokenizers`` alone.
"""

from contextlib import contextmanager


def import_transformers(purpose: str):
    """The ``transformers`` module, or an ``ImportError`` saying what to install for ``purpose``."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f"{purpose} needs transformers: pip install 'embgraft[hf]'") from None
    return transformers


@contextmanager
def library_bars(enabled: bool):
    """With ``enabled`` False (``--no-progress``), transformers' own bars ("Loading weights") and the
    hub's stay off while the body runs, so stderr holds only what embgraft says (an error: one
    line); the setting is as it was afterwards."""
    if enabled:
        yield
        return
    from transformers.utils import logging as tf_logging

    was_on = tf_logging.is_progress_bar_enabled()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            tf_logging.enable_progress_bar()
