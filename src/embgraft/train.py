"""Train a classifier on a grafted embedding: ``train(config, out=RUN_DIR)``.

The loop itself (``_fit``) is one function with commented stages. Around it: building the
inputs (``prepare``), the run directory (``rundir``), and the distributed set-up, which
``torchrun --nproc_per_node N -m embgraft train ...`` triggers through its environment.
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embgraft import rundir
from embgraft.config import TrainConfig
from embgraft.data import EncodedSet, batch_order, batches
from embgraft.distill import distill_loss, teacher_targets
from embgraft.errors import ConfigError, OutputExistsError
from embgraft.optim import Schedule, build_optimizers, set_lr, warmup_steps
from embgraft.prepare import Prepared, prepare

HISTORY_FIELDS = ("epoch", "step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1", "lr",
                  "embedding_lr", "seconds", "samples_per_s")


@dataclass
class TrainOutcome:
    out: Path | None  # the run directory (None on ranks other than 0)
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


# --- devices and processes --------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_pref: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: join the group (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def _device(pref: str, d: Dist) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA device is available")
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", d.local_rank if d.world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


def _amp_dtype(pref: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the device does it well: CUDA with bf16 support (auto), or when asked."""
    if pref == "off":
        return None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if pref == "bf16":
            raise ConfigError("amp bf16 was asked for but this GPU does not support bfloat16")
        return None
    return torch.bfloat16 if pref == "bf16" else None


# --- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def predict_logits(model, data: EncodedSet, *, batch_size: int, device: torch.device, min_len: int = 1,
                   amp: torch.dtype | None = None) -> np.ndarray:
    """(n, n_classes) float32 logits, in the data's order."""
    was_training = model.training
    model.eval()
    out = np.empty((len(data), 0), dtype=np.float32)
    order = batch_order(data.lengths, batch_size=batch_size, shuffle=False, seed=0, epoch=0)
    for ids, _, idx in batches(data, order, min_len=min_len, multiple=getattr(model, "pad_multiple", 1)):
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(ids.to(device)).float().cpu().numpy()
        if out.shape[1] == 0:
            out = np.empty((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    model.train(was_training)
    return out


def scores(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1 and mean cross-entropy of ``logits`` (n, C) against ``labels`` (n,).

    Macro-F1 is scikit-learn's ``f1_score(average="macro", labels=range(C), zero_division=0)``,
    computed here from the confusion counts: importing scikit-learn for it added ~80 MB to a
    training process's peak RSS (tests/test_train.py checks the two agree).
    """
    pred = logits.argmax(axis=1)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item())
    return {"accuracy": float(np.mean(pred == labels)) if len(labels) else 0.0,
            "macro_f1": macro_f1(labels, pred, n_classes),
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
    out = Path(out)
    d = _init_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if resume:
        rundir.check_resumable(out, config)
    elif out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it or --resume to continue it")
    device = _device(config.device, d)
    amp = _amp_dtype(config.amp, device)
    torch.manual_seed(config.seed)
    prep = prepare(config, log=log if d.main else (lambda *a, **k: None))
    soft = None  # (n_train, n_classes): the teachers' averaged probabilities, before anything is written
    if config.teachers:
        soft = torch.from_numpy(teacher_targets(config.teachers, prep.texts["train"], prep.train.labels,
                                                prep.labels.names, temperature=config.distill_temperature,
                                                log=log if d.main else (lambda *a, **k: None)))
    if d.main and not resume:
        rundir.start(out, config=config, prep=prep, force=force)
    # written above and never read by training: with 80k n-gram rows, a 60 MB table and 25 MB of
    # provenance records
    prep.init_weights, prep.provenance = None, []
    _release_freed_memory()
    outcome = _fit(config, prep, soft=soft, out=out, d=d, device=device, amp=amp, resume=resume,
                   progress=progress, stop_after_epoch=stop_after_epoch, log=log)
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    _release_freed_memory()
    return outcome


def _release_freed_memory() -> None:
    """Hand the C heap's free pages back to the OS: glibc's ``malloc_trim``, nothing elsewhere.

    glibc keeps the pages of freed chunks resident. Reading the graft and composing n-gram rows
    frees tens of MB just before training allocates its own: trimming there lowered a
    textcnn+bigrams run's peak RSS by ~12 MB (THUCNews, 3 epochs), and after a run it leaves the
    process ~110 MB smaller. (A second run in the same process still peaks ~40 MB above the first.)
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _fit(config: TrainConfig, prep: Prepared, *, soft: torch.Tensor | None, out: Path, d: Dist,
         device: torch.device, amp: torch.dtype | None, resume: bool, progress: bool, stop_after_epoch: int | None,
         log) -> TrainOutcome:
    from tqdm.auto import tqdm

    # -- model and optimisers
    model = prep.model.to(device)
    train_model = model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                          find_unused_parameters=config.embedding_mode == "gradual")
    if config.compile:
        train_model = torch.compile(train_model)
    optimizers = build_optimizers(model, name=config.optimizer, lr=config.lr, embedding_lr=config.embedding_lr,
                                  weight_decay=config.weight_decay, layer_lr_decay=config.layer_lr_decay)
    steps_per_epoch = math.ceil(math.ceil(len(prep.train) / config.batch_size) / d.world)
    total = steps_per_epoch * config.epochs
    schedule = Schedule(config.schedule, total_steps=total, warmup_steps=warmup_steps(config.warmup, total),
                        steps_per_epoch=steps_per_epoch, gamma=config.gamma,
                        plateau_factor=config.plateau_factor, plateau_patience=config.plateau_patience)

    # -- state: fresh, or the last checkpoint of an interrupted run
    state = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "history": [],
             "train_seconds": 0.0, "n_seen": 0}
    if resume:
        state = rundir.load_checkpoint(out, model=model, optimizers=optimizers, schedule=schedule, device=device)
        log(f"resuming {out} after epoch {state['epoch']}")
    writer = rundir.tensorboard_writer(out, config.tensorboard) if d.main else None
    # the best epoch's weights: rank 0 writes them to checkpoints/best.safetensors and reads them
    # back at the end (an in-memory copy is one more table as large as the embedding: 70 MB for
    # an 87k-row n-gram bag); other ranks write nothing, so they keep a copy
    keep_best = not d.main
    best_weights = rundir.read_best(out, model) if keep_best and resume and state["best"] is not None else None

    min_len = prep.min_len
    multiple = getattr(model, "pad_multiple", 1)  # batch widths rounded up to this (see TextCNN)
    dev_labels = prep.dev.labels
    for epoch in range(state["epoch"], config.epochs):
        if config.embedding_mode == "gradual":
            _set_embedding_trainable(model, epoch >= config.gradual_epochs)
        # -- this rank's batches: the same shuffled order everywhere, every world-th batch
        order = batch_order(prep.train.lengths, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                            epoch=epoch, bucket=config.length_bucket)
        if d.world > 1:
            order = (order * d.world)[: steps_per_epoch * d.world][d.rank::d.world]
        bar = tqdm(total=len(order), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=None if progress and d.main else True)  # None: off when not a terminal
        train_model.train()
        t0, loss_sum, n_seen = time.perf_counter(), 0.0, 0
        for ids, labels, idx in batches(prep.train, order, min_len=min_len, multiple=multiple):
            # -- one step: forward under autocast, backward, clip, LR from the schedule, update
            ids, labels = ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            set_lr(optimizers, schedule.factor(state["step"]))
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = train_model(ids)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            if soft is not None:  # distillation: the teachers' averaged predictions for these texts
                kd = distill_loss(logits.float(), soft[torch.from_numpy(idx)].to(device),
                                  temperature=config.distill_temperature)
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
            loss_sum += float(loss.detach()) * len(labels)
            bar.update(1)
            if state["step"] % 10 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", lr=f"{optimizers[0].param_groups[0]['lr']:.2e}",
                                sps=f"{n_seen * d.world / (time.perf_counter() - t0):,.0f}")
            if config.log_every and state["step"] % config.log_every == 0 and d.main:
                rundir.log_step(out, {"step": state["step"], "epoch": epoch + 1, "train_loss": loss_sum / n_seen,
                                      "lr": _lr(optimizers, "body"), "embedding_lr": _lr(optimizers, "embedding")})
        bar.close()
        seconds = time.perf_counter() - t0
        state["train_seconds"] += seconds
        state["n_seen"] += n_seen * d.world

        # -- evaluate on dev (every rank computes the same numbers from the same weights)
        dev = scores(predict_logits(model, prep.dev, batch_size=config.batch_size * 2, device=device,
                                    min_len=min_len, amp=amp), dev_labels, prep.n_classes)
        row = {"epoch": epoch + 1, "step": state["step"], "train_loss": loss_sum / max(n_seen, 1),
               "dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"], "dev_macro_f1": dev["macro_f1"],
               "lr": _lr(optimizers, "body"), "embedding_lr": _lr(optimizers, "embedding"),
               "seconds": seconds, "samples_per_s": n_seen * d.world / max(seconds, 1e-9)}
        state["history"].append(row)
        schedule.end_epoch(dev[config.metric])
        improved = state["best"] is None or dev[config.metric] > state["best"]
        if improved:
            state.update(best=dev[config.metric], best_epoch=epoch + 1, bad_epochs=0)
            if keep_best:
                best_weights = None  # let the old copy go before the new one is made (peak RSS)
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if d.main:
            log(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}  dev {config.metric} "
                f"{dev[config.metric]:.4f}  dev loss {dev['loss']:.4f}  {row['samples_per_s']:,.0f} samples/s"
                + ("  *" if improved else ""))
            rundir.write_history(out, state["history"])
            rundir.save_checkpoint(out, model=model, optimizers=optimizers, schedule=schedule, state=state,
                                   best_weights=model.state_dict() if improved else None)
            if writer is not None:
                for k in ("train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1", "lr", "samples_per_s"):
                    writer.add_scalar(k, row[k], epoch + 1)
        # -- stop: patience spent, or an interruption simulated
        if config.patience is not None and state["bad_epochs"] >= config.patience:
            if d.main:
                log(f"early stop: no dev {config.metric} gain for {config.patience} epochs")
            break
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < config.epochs:
            return TrainOutcome(out if d.main else None, {}, state["history"])

    # -- the best epoch's weights, scored on dev and test; the bundle written once
    # Adam's moment tables are not needed any more: free them before reading (the step loop's
    # ``opt`` still names the last optimiser, the sparse one with the two largest tables)
    optimizers = opt = None
    gc.collect()  # an optimiser sits in a reference cycle (its patched ``step``): only gc frees it
    if state["best"] is not None:
        if keep_best:
            model.load_state_dict(best_weights)
        else:
            rundir.load_best(out, model)
    best_weights = None
    metrics: dict[str, Any] = {}
    for name, data in (("dev", prep.dev), ("test", prep.test)):
        if data is not None:
            metrics[name] = scores(predict_logits(model, data, batch_size=config.batch_size * 2, device=device,
                                                  min_len=min_len, amp=amp), data.labels, prep.n_classes)
    metrics.update(best_epoch=state["best_epoch"], epochs_run=state["epoch"], metric=config.metric,
                   train_seconds=state["train_seconds"],
                   samples_per_s=state["n_seen"] / max(state["train_seconds"], 1e-9),
                   n_train=len(prep.train), world_size=d.world, device=str(device),
                   amp=None if amp is None else str(amp).replace("torch.", ""), skipped=prep.skipped)
    if d.main:
        rundir.finish(out, model=model, metrics=metrics)
        if writer is not None:
            writer.close()
        log("  ".join(f"{name} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"
                      for name, m in metrics.items() if name in ("dev", "test")) + f"  -> {out}")
    return TrainOutcome(out if d.main else None, metrics, state["history"])


def _set_embedding_trainable(model, flag: bool) -> None:
    if hasattr(model, "set_embedding_trainable"):
        model.set_embedding_trainable(flag)
    else:
        model.embedding.set_trainable(flag)


def _lr(optimizers: list, which: str) -> float:
    """Current LR of the embedding group (``which="embedding"``) or of the other layers."""
    for opt in optimizers:
        for g in opt.param_groups:
            if (g.get("name") == "embedding") == (which == "embedding"):
                return float(g["lr"])
    return float("nan")
