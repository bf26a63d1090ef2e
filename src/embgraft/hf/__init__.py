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


def import_transformers(purpose: str):
    """The ``transformers`` module, or an ``ImportError`` saying what to install for ``purpose``."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f"{purpose} needs transformers: pip install 'embgraft[hf]'") from None
    return transformers
