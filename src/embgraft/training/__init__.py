"""Labelled data -> a run directory -> a ``Classifier``: ``TrainConfig`` (``config``), data and
labels (``data``, multi-label scoring in ``multilabel``), token ids and batches (``encode``,
``batches``), everything before the first step (``prepare``, augmented copies in ``augment``),
optimisers (``optim``), losses (``losses``, ``distill``), the run directory's layout (``rundir``),
the loop (``loop``) and the loaded run (``classifier``)."""
