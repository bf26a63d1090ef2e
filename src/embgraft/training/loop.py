"""Train a classifier on a grafted embedding: ``train(config, out=RUN_DIR)``.

:func:`train` sets up (processes, device, seed, the prepared inputs, the teachers' soft labels,
the run directory); :func:`_fit` is the loop, in torchtune's recipe shape: ``_setup`` (model,
optimisers, schedule, resumed state) above it, then per epoch ``_run_epoch`` (the steps) and
``_end_epoch`` (dev scores, the best weights, history, checkpoint, early stop), then
``_finish`` (the best weights scored on dev and test, the bundle written). ``torchrun
--nproc_per_node N -m embgraft train ...`` runs it data-parallel.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embgraft.console import quiet
from embgraft.errors import ConfigError, NonFiniteLossError, OutputExistsError
from embgraft.files import check_writable, exclusive, put_in_place, remove, temp_dir_beside
from embgraft.training import rundir
from embgraft.training.batches import batch_order, batches, pool_windows, predict_logits
from embgraft.training.config import TrainConfig
from embgraft.training.devices import (Dist, amp_dtype, end_distributed, init_distributed, pick_device,
                                       release_freed_memory)
from embgraft.training.distill import teacher_targets
from embgraft.training.losses import DISTILL_LOSSES, class_weights, labelled, task_loss
from embgraft.training.multilabel import multilabel_scores, sigmoid, tune_thresholds
from embgraft.training.optim import Schedule, build_optimizers, set_lr, warmup_steps
from embgraft.training.prepare import Prepared, prepare


@dataclass
class TrainOutcome:
    out: Path | None  # the run directory (None on ranks other than 0)
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def scores(logits: np.ndarray, labels: np.ndarray, n_classes: int,
           thresholds: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, macro- and micro-F1 and mean cross-entropy of ``logits`` (n, C) against
    ``labels`` (n,); multi-hot ``labels`` (n, C) are scored by
    :func:`~embgraft.training.multilabel.multilabel_scores` at ``thresholds``.

    Macro-F1 is scikit-learn's ``f1_score(average="macro", labels=range(C), zero_division=0)``,
    computed here from the confusion counts: importing scikit-learn for it added ~80 MB to a
    training process's peak RSS (a test checks the two agree). With one label a text, micro-F1
    is accuracy.
    """
    if labels.ndim == 2:
        return multilabel_scores(logits, labels, thresholds)
    pred = logits.argmax(axis=1)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item())
    accuracy = float(np.mean(pred == labels)) if len(labels) else 0.0
    return {"accuracy": accuracy, "macro_f1": macro_f1(labels, pred, n_classes), "micro_f1": accuracy,
            "loss": loss, "n": int(len(labels))}


def macro_f1(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over classes ``0..n_classes-1`` of F1 = 2 TP / (2 TP + FP + FN); 0 for a
    class with no true and no predicted example (scikit-learn's ``zero_division=0``)."""
    labels, pred = np.asarray(labels, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    tp = np.bincount(labels[labels == pred], minlength=n_classes)[:n_classes].astype(np.float64)
    true = np.bincount(labels, minlength=n_classes)[:n_classes]
    predicted = np.bincount(pred, minlength=n_classes)[:n_classes]
    denom = (true + predicted).astype(np.float64)
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return float(f1.mean())


# --- the entry point ---------------------------------------------------------------------------


def train(config: TrainConfig, *, out: str | os.PathLike, force: bool = False, resume: bool = False,
          progress: bool = True, stop_after_epoch: int | None = None, log=print) -> TrainOutcome:
    """Train ``config`` and write the run directory ``out`` (rank 0 only).

    ``resume`` continues from ``out``'s last checkpoint and ends with the weights an
    uninterrupted run would have. ``stop_after_epoch`` ends the run early as an interruption
    would (the checkpoint is kept, no final metrics), for testing resume.
    """
    if not str(out).strip():
        raise ConfigError("the output path is empty (an unset shell variable?)")
    out = Path(out)
    d = init_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if resume:
        rundir.check_resumable(out, config)
    elif d.main:  # only rank 0 writes: by the time another rank got here it may have made out already
        if os.path.lexists(out) and not force:
            raise OutputExistsError(f"{out} exists; pass --force to overwrite it or --resume to continue it")
        # a run directory is the only thing --force replaces, and never an input
        check_writable(out, force=force, kind=rundir.RUN_DIR, inputs=rundir.config_inputs(config))
    device = pick_device(config.device, d)
    amp = amp_dtype(config.amp, device)
    rundir.tensorboard_class(config.tensorboard)  # `on` needs the package: said before anything is written
    with exclusive(out) if d.main else contextlib.nullcontext():
        torch.manual_seed(config.seed)
        say = log if d.main else quiet
        prep = prepare(config, log=say, progress=progress)
        soft = None  # (n_train, n_classes): the teachers' averaged probabilities, before anything is written
        if config.teachers:
            soft = torch.from_numpy(teacher_targets(config.teachers, prep.train_texts, prep.train.labels,
                                                    prep.labels.names, temperature=config.distill_temperature,
                                                    trust_remote_code=config.trust_remote_code,
                                                    multi_label=prep.multi_label, log=say))
        with _run_directory(out, fresh=not resume, main=d.main) as where:
            if d.main and not resume:
                rundir.start(where.path, config=config, prep=prep)
            prep.release_initial()  # written above, never read by training
            release_freed_memory()
            run = _Run(config, prep, soft=soft, out=where.path, d=d, device=device, amp=amp, progress=progress,
                       log=log)
            outcome = _fit(run, resume=resume, stop_after_epoch=stop_after_epoch)
            where.finished = bool(outcome.metrics)
    end_distributed(d)
    release_freed_memory()
    return TrainOutcome(out if d.main else None, outcome.metrics, outcome.history)


@dataclass
class _Where:
    path: Path
    finished: bool = False


@contextlib.contextmanager
def _run_directory(out: Path, *, fresh: bool, main: bool):
    """Where rank 0 writes the run. A resumed run: in place. A new one over an old run (``--force``):
    a temporary directory beside it, swapped in when the run has finished, so a failed or killed
    run leaves the old one as it was. A new one where nothing was: in place (an interrupted run
    can then be resumed), removed again if it fails before its first checkpoint."""
    if not main or not fresh:
        yield _Where(out)
        return
    replacing = os.path.lexists(out)
    where = _Where(temp_dir_beside(out) if replacing else out)
    try:
        yield where
    except BaseException:
        if replacing or not (out / rundir.CKPT_DIR / rundir.LAST_STATE).is_file():
            remove(where.path)  # nothing of it could be resumed
        raise
    if replacing:
        if where.finished:
            put_in_place(where.path, out)
        else:  # stopped early on purpose (an interruption simulated): the old run stays
            remove(where.path)


# --- the loop ----------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the loop's stages share: the inputs, then what ``_setup`` builds."""

    config: TrainConfig
    prep: Prepared
    soft: torch.Tensor | None
    out: Path
    d: Dist
    device: torch.device
    amp: torch.dtype | None
    progress: bool
    log: Any
    model: Any = None  # the model itself (saved, scored)
    train_model: Any = None  # what the steps call: the model, wrapped by DDP / torch.compile
    optimizers: list = field(default_factory=list)
    schedule: Schedule | None = None
    steps_per_epoch: int = 0
    state: dict = field(default_factory=dict)  # epoch, step, best..., saved with every checkpoint
    steps: list = field(default_factory=list)  # rows of history_steps.csv
    writer: Any = None  # TensorBoard
    # the best epoch's weights: rank 0 writes them to checkpoints/best.safetensors and reads them
    # back at the end (an in-memory copy is one more table as large as the embedding: 70 MB for
    # an 87k-row n-gram bag); other ranks write nothing, so they keep a copy
    best_weights: dict | None = None
    class_weight: Any = None  # (n_classes,) tensor on the device, or None (multi-label: pos_weight)

    @property
    def keep_best(self) -> bool:
        return not self.d.main

    @property
    def metric(self) -> str:
        """The dev metric that picks the best epoch: the config's, else accuracy (multi-label:
        micro-F1, subset accuracy being too coarse to rank epochs by)."""
        return self.config.metric or ("micro_f1" if self.prep.multi_label else "accuracy")


def _fit(run: _Run, *, resume: bool, stop_after_epoch: int | None) -> TrainOutcome:
    config = run.config
    _setup(run, resume=resume)
    for epoch in range(run.state["epoch"], config.epochs):
        train_loss, n_seen, seconds = _run_epoch(run, epoch)
        stop = _end_epoch(run, epoch, train_loss=train_loss, n_seen=n_seen, seconds=seconds)
        if stop:
            break
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < config.epochs:
            return TrainOutcome(run.out if run.d.main else None, {}, run.state["history"])  # interrupted
    return _finish(run)


def _setup(run: _Run, *, resume: bool) -> None:
    """Model on its device (DDP, compile), optimisers, schedule; fresh state or the checkpoint's."""
    config, prep, d = run.config, run.prep, run.d
    run.model = prep.model.to(run.device)
    run.train_model = run.model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        run.train_model = DDP(run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None,
                              find_unused_parameters=config.embedding_mode == "gradual")
    if config.compile:
        run.train_model = torch.compile(run.train_model)
    weights = class_weights(config.class_weight, prep.train.labels, prep.labels.names)
    run.class_weight = None if weights is None else torch.from_numpy(weights).to(run.device)
    run.optimizers = build_optimizers(run.model, name=config.optimizer, lr=config.lr,
                                      embedding_lr=config.embedding_lr, weight_decay=config.weight_decay,
                                      layer_lr_decay=config.layer_lr_decay)
    run.steps_per_epoch = math.ceil(math.ceil(len(prep.train) / config.batch_size) / d.world)
    total = run.steps_per_epoch * config.epochs
    run.schedule = Schedule(config.schedule, total_steps=total, warmup_steps=warmup_steps(config.warmup, total),
                            steps_per_epoch=run.steps_per_epoch, gamma=config.gamma,
                            plateau_factor=config.plateau_factor, plateau_patience=config.plateau_patience)
    run.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "history": [],
                 "train_seconds": 0.0, "n_seen": 0}
    if resume:
        run.state = rundir.load_checkpoint(run.out, model=run.model, optimizers=run.optimizers,
                                           schedule=run.schedule, device=run.device, rank=d.rank)
        run.steps = rundir.read_steps(run.out, up_to_step=run.state["step"]) if d.main else []
        run.log(f"resuming {run.out} after epoch {run.state['epoch']}")
        if run.keep_best and run.state["best"] is not None:
            run.best_weights = rundir.read_best(run.out)
    run.writer = rundir.tensorboard_writer(run.out, config.tensorboard) if d.main else None


def _run_epoch(run: _Run, epoch: int) -> tuple[float, int, float]:
    """One epoch of steps on this rank's batches; returns (mean train loss, examples, seconds)."""
    from tqdm.auto import tqdm

    config, prep, d, model, optimizers = run.config, run.prep, run.d, run.model, run.optimizers
    state = run.state
    if config.embedding_mode == "gradual":
        model.set_embedding_trainable(epoch >= config.gradual_epochs)
    # -- this rank's batches: the same shuffled order everywhere, every world-th batch
    order = batch_order(prep.train.text_lengths, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                        epoch=epoch, bucket=config.length_bucket)
    if d.world > 1:
        order = (order * d.world)[: run.steps_per_epoch * d.world][d.rank::d.world]
    bar = tqdm(total=len(order), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
               disable=None if run.progress and d.main else True)  # None: off when not a terminal
    run.train_model.train()
    t0, loss_sum, n_seen = time.perf_counter(), 0.0, 0
    for ids, labels, idx, segments in batches(prep.train, order, min_len=model.min_len, multiple=model.pad_multiple):
        # -- one step: forward under autocast, backward, clip, LR from the schedule, update
        ids, labels = ids.to(run.device, non_blocking=True), labels.to(run.device, non_blocking=True)
        set_lr(optimizers, run.schedule.factor(state["step"]))
        with torch.autocast(run.device.type, dtype=run.amp or torch.float32, enabled=run.amp is not None):
            logits = pool_windows(run.train_model(ids), segments, len(idx), prep.train.pool)
        if prep.n_unlabelled:  # unlabelled texts (label -1) take part in the distillation term only
            known = labelled(labels)
            loss = (task_loss(logits[known].float(), labels[known], weight=run.class_weight,
                              gamma=config.focal_gamma, label_smoothing=config.label_smoothing)
                    if bool(known.any()) else logits.sum() * 0.0)
        else:
            loss = task_loss(logits.float(), labels, weight=run.class_weight, gamma=config.focal_gamma,
                             label_smoothing=config.label_smoothing)
        if run.soft is not None:  # distillation: the teachers' averaged predictions for these texts
            kd = DISTILL_LOSSES[config.distill_loss][prep.multi_label](
                logits.float(), run.soft[torch.from_numpy(idx)].to(run.device), temperature=config.distill_temperature)
            loss = (1 - config.distill_weight) * loss + config.distill_weight * kd
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            dense = [p for p in model.parameters() if p.grad is not None and not p.grad.is_sparse]
            torch.nn.utils.clip_grad_norm_(dense, config.grad_clip)
        for opt in optimizers:
            opt.step()
        state["step"] += 1
        n_seen += len(labels)
        step_loss = float(loss.detach())
        if not math.isfinite(step_loss):  # every later step and score would be nan: stop, save nothing
            raise NonFiniteLossError(f"the training loss is {step_loss} at epoch {epoch + 1}, step {state['step']}: "
                                     "lower --lr / --embedding-lr, or check the data and the graft's rows")
        loss_sum += step_loss * len(labels)
        bar.update(1)
        if state["step"] % 10 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", lr=f"{optimizers[0].param_groups[0]['lr']:.2e}",
                            sps=f"{n_seen * d.world / (time.perf_counter() - t0):,.0f}")
        if config.log_every and state["step"] % config.log_every == 0 and d.main:
            run.steps.append({"step": state["step"], "epoch": epoch + 1, "train_loss": loss_sum / n_seen,
                              "lr": _lr(optimizers, "body"), "embedding_lr": _lr(optimizers, "embedding")})
    bar.close()
    return loss_sum / max(n_seen, 1), n_seen, time.perf_counter() - t0


def _end_epoch(run: _Run, epoch: int, *, train_loss: float, n_seen: int, seconds: float) -> bool:
    """Dev scores (every rank computes the same numbers from the same weights), the best weights,
    history and checkpoint (rank 0); True when patience is spent."""
    config, prep, d, state = run.config, run.prep, run.d, run.state
    state["train_seconds"] += seconds
    state["n_seen"] += n_seen * d.world
    logits = predict_logits(run.model, prep.dev, batch_size=config.batch_size * 2, device=run.device, amp=run.amp)
    # multi-label: scored at the thresholds this epoch's dev probabilities would get, as the final
    # run will be; at a fixed 0.5 an early epoch that calls every label "yes" scores best
    thresholds = tune_thresholds(sigmoid(logits), prep.dev.labels) if prep.multi_label else None
    dev = scores(logits, prep.dev.labels, prep.n_classes, thresholds)
    if not math.isfinite(dev["loss"]):
        raise NonFiniteLossError(f"the dev loss is {dev['loss']} after epoch {epoch + 1}: the weights are not finite")
    row = {"epoch": epoch + 1, "step": state["step"], "train_loss": train_loss,
           "dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"], "dev_macro_f1": dev["macro_f1"],
           "lr": _lr(run.optimizers, "body"), "embedding_lr": _lr(run.optimizers, "embedding"),
           "seconds": seconds, "samples_per_s": n_seen * d.world / max(seconds, 1e-9)}
    state["history"].append(row)
    metric = run.metric
    run.schedule.end_epoch(dev[metric])
    improved = state["best"] is None or dev[metric] > state["best"]
    if improved:
        state.update(best=dev[metric], best_epoch=epoch + 1, bad_epochs=0)
        if run.keep_best:
            run.best_weights = None  # let the old copy go before the new one is made (peak RSS)
            run.best_weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch + 1
    rng = _gather_rng(d)  # every rank takes part; rank 0 saves them all
    if d.main:
        run.log(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}  dev {metric} "
                f"{dev[metric]:.4f}  dev loss {dev['loss']:.4f}  {row['samples_per_s']:,.0f} samples/s"
                + ("  *" if improved else ""))
        rundir.write_history(run.out, state["history"])
        if config.log_every:
            rundir.write_steps(run.out, run.steps)
        rundir.save_checkpoint(run.out, model=run.model, optimizers=run.optimizers, schedule=run.schedule,
                               state=state, best_weights=run.model.state_dict() if improved else None, rng=rng)
        if run.writer is not None:
            for k in ("train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1", "lr", "samples_per_s"):
                run.writer.add_scalar(k, row[k], epoch + 1)
    # patience counts epochs, but only once min_steps updates are done: 900 titles are 4 steps an
    # epoch, and 3 epochs of them stopped a bag at 0.26 test accuracy that reached 0.67 when let run
    if config.patience is not None and state["bad_epochs"] >= config.patience and state["step"] >= config.min_steps:
        if d.main:
            run.log(f"early stop: no dev {metric} gain for {state['bad_epochs']} epochs "
                    f"({state['step']} steps)")
        return True
    return False


def _finish(run: _Run) -> TrainOutcome:
    """The best epoch's weights, scored on dev and test; the bundle written once (rank 0)."""
    config, prep, d, state, model = run.config, run.prep, run.d, run.state, run.model
    # Adam's moment tables are not needed any more: free them before reading the best weights
    run.optimizers = []
    gc.collect()  # an optimiser sits in a reference cycle (its patched ``step``): only gc frees it
    if state["best"] is not None:
        if run.keep_best:
            model.load_state_dict(run.best_weights)
        else:
            rundir.load_best(run.out, model)
    run.best_weights = None
    metrics: dict[str, Any] = {}
    logits = {name: predict_logits(model, data, batch_size=config.batch_size * 2, device=run.device, amp=run.amp)
              for name, data in (("dev", prep.dev), ("test", prep.test)) if data is not None}
    thresholds = None
    if prep.multi_label:  # each label's threshold: the one of best F1 on dev (dev scores are then optimistic)
        thresholds = tune_thresholds(sigmoid(logits["dev"]), prep.dev.labels)
        metrics["thresholds"] = dict(zip(prep.labels.names, thresholds.tolist()))
        metrics["dev_at_0.5"] = scores(logits["dev"], prep.dev.labels, prep.n_classes)
    for name, data in (("dev", prep.dev), ("test", prep.test)):
        if data is not None:
            metrics[name] = scores(logits[name], data.labels, prep.n_classes, thresholds)
    metrics.update(best_epoch=state["best_epoch"], epochs_run=state["epoch"], metric=run.metric,
                   task="multi_label" if prep.multi_label else "single_label",
                   train_seconds=state["train_seconds"],
                   samples_per_s=state["n_seen"] / max(state["train_seconds"], 1e-9),
                   n_train=len(prep.train) - prep.n_unlabelled, n_unlabelled=prep.n_unlabelled,
                   n_augmented=prep.n_augmented, world_size=d.world, device=str(run.device),
                   amp=None if run.amp is None else str(run.amp).replace("torch.", ""), skipped=prep.skipped,
                   class_weights=None if run.class_weight is None else dict(
                       zip(prep.labels.names, run.class_weight.cpu().tolist())),
                   focal_gamma=config.focal_gamma)
    if d.main:
        rundir.finish(run.out, model=model, metrics=metrics)
        if run.writer is not None:
            run.writer.close()
        shown = ((("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("accuracy", "subset accuracy"))
                 if prep.multi_label else (("accuracy", "accuracy"), ("macro_f1", "macro-F1")))
        run.log("  ".join(f"{name} " + "  ".join(f"{label} {m[k]:.4f}" for k, label in shown)
                          for name, m in metrics.items() if name in ("dev", "test")) + f"  -> {run.out}")
    return TrainOutcome(run.out if d.main else None, metrics, state["history"])


def _gather_rng(d: Dist) -> list[dict]:
    """Every rank's random-number state, rank by rank (one process: its own)."""
    if d.world <= 1:
        return [rundir.rng_states()]
    import torch.distributed as dist

    states: list = [None] * d.world
    dist.all_gather_object(states, {k: v.cpu() for k, v in rundir.rng_states().items()})
    return states


def _lr(optimizers: list, which: str) -> float:
    """Current LR of the embedding group (``which="embedding"``) or of the other layers."""
    for opt in optimizers:
        for g in opt.param_groups:
            if (g.get("name") == "embedding") == (which == "embedding"):
                return float(g["lr"])
    return float("nan")
