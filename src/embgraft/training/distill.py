"""Knowledge distillation: train a model on trained runs' predictions as well as on the labels.

``--teachers RUN,...`` (one or more run directories) scores the training texts once with each run,
averages their class probabilities (softened by ``--distill-temperature``), and the training
loss becomes ``(1 - w) * cross-entropy(gold) + w * D`` with ``w = --distill-weight``. The
distillation term ``D`` is ``--distill-loss``'s (``losses.DISTILL_LOSSES``):

* ``kl``: ``T² * KL(teachers || student)`` of the softened probabilities (Hinton et al. 2015);
* ``mse``: the mean squared difference of the student's logits and the teachers' (Ba & Caruana
  2014; Tang et al. 2019 found it the better objective for small students). A softmax does not
  see a constant added to a row, so both rows are centred first; the teachers' logits are the
  log of their averaged probabilities, which for one teacher are its own logits up to that constant.

Averaging several seeds' runs distils their ensemble into one model of the student's size and speed.

Multi-label: the teachers' per-label probabilities, each softened as ``sigmoid(logit / T)``; ``kl``
is the binary KL divergence per label, ``mse`` compares per-label logits ``log(p / (1 - p))``,
both averaged over texts and labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from embgraft.errors import ConfigError
from embgraft.training.classifier import Classifier
from embgraft.training.multilabel import exact_sets
from embgraft.training.rundir import MODEL_FILE


def teacher_targets(runs: Sequence[str], texts: Sequence[str], labels: np.ndarray, class_names: Sequence[str], *,
                    temperature: float, trust_remote_code: bool = False, multi_label: bool = False,
                    log=print) -> np.ndarray:
    """(len(texts), n_classes) float32: the mean over ``runs`` of their probabilities at
    ``temperature``, columns in ``class_names``' order (``labels``: the texts' class ids, only
    for the log). ``trust_remote_code`` is the caller's, never a teacher's own config.

    A run's probabilities ``p`` at temperature ``T`` are ``softmax(logits / T)``, which is
    ``p ** (1 / T)`` renormalised: the run's served probabilities are enough.
    """
    import torch

    # building a teacher draws initial weights from the global RNG: fork it, so that a student's
    # dropout masks and batches are the same with and without teachers
    with torch.random.fork_rng(devices=[]):
        return _teacher_targets(runs, texts, labels, class_names, temperature=temperature,
                                trust_remote_code=trust_remote_code, multi_label=multi_label, log=log)


def _teacher_targets(runs, texts, labels, class_names, *, temperature: float, trust_remote_code: bool,
                     multi_label: bool, log) -> np.ndarray:
    total = np.zeros((len(texts), len(class_names)), dtype=np.float64)
    for run in runs:
        if not (Path(run) / MODEL_FILE).is_file():
            raise ConfigError(f"teacher {run} is not a finished run directory (no {MODEL_FILE})")
        teacher = Classifier.load(run, trust_remote_code=trust_remote_code)
        if teacher.multi_label != multi_label:
            raise ConfigError(f"teacher {run} is a {'multi' if teacher.multi_label else 'single'}-label run, this "
                              f"task is {'multi' if multi_label else 'single'}-label")
        names = list(teacher.labels.names)
        missing = [c for c in class_names if c not in names]
        extra = [c for c in names if c not in class_names]
        if missing or extra:
            raise ConfigError(f"teacher {run} was trained on other classes: "
                              f"missing {missing}, not in this task {extra}")
        proba = teacher.predict_proba(list(texts))[:, [names.index(c) for c in class_names]]
        if not np.isfinite(proba).all():
            raise ConfigError(f"teacher {run} predicts non-finite probabilities (a run trained to nan?)")
        if multi_label:  # sigmoid(logit / T), from p: p^(1/T) / (p^(1/T) + (1 - p)^(1/T))
            p = np.power(np.clip(proba, 1e-12, None), 1.0 / temperature)
            q = np.power(np.clip(1 - proba, 1e-12, None), 1.0 / temperature)
            total += p / (p + q)
            known = labels[:, 0] >= 0
            exact = exact_sets(proba, teacher.thresholds, labels)
            log(f"teacher {run}: subset accuracy {float(exact[known].mean()):.4f} on the labelled training texts")
            continue
        soft = np.power(np.clip(proba, 1e-12, None), 1.0 / temperature)
        total += soft / soft.sum(axis=1, keepdims=True)
        known = labels >= 0  # unlabelled texts (label -1) have no accuracy
        log(f"teacher {run}: accuracy {float((proba.argmax(axis=1) == labels)[known].mean()):.4f} on the labelled "
            "training texts")
    return (total / len(runs)).astype(np.float32)

