"""The user's text, before any pretrained parameter is read: corpus readers (``corpus``),
tokenizers and the ``Recipe`` that records how texts become tokens (``tokenize``), matching-only
normalisation (``normalise``) and the target vocabulary (``vocab``)."""
