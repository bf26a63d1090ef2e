"""The run directory: a self-sufficient bundle that ``predict``, ``evaluate`` and ``report`` load.
Its layout is defined here, once; every reader imports these names::

    RUN/
      config.json                 the resolved TrainConfig (+ graft_dir, versions)
      recipe.json [user_dict.txt] how texts become tokens (from the graft)
      vocab.txt  labels.txt       token ids, class names in id order
      provenance.tsv              where each embedding row came from (graft, n-gram, random)
      graft_report.json           the graft's coverage report (grafted runs)
      embedding_init.safetensors  the embedding before training (tensor "embedding")
      model.safetensors           the best epoch's weights (the embedding as "embedding.weight")
      metrics.json  history.csv   dev/test scores; one row per epoch
      thresholds.json             multi-label runs: each label's threshold, tuned on dev
      history_steps.csv           every --log-every steps (rewritten at each epoch's end)
      hf/                         hf runs: the encoder's config (and its tokenizer, if it used its own)
      checkpoints/                last.safetensors + last.json (resume), best.safetensors
      tensorboard/                TensorBoard events, when enabled
      evaluation/                 written by ``embgraft evaluate`` (see evaluation.run)

Tensors are safetensors, everything else UTF-8 text or JSON: no pickle anywhere. Every file is
written through :mod:`embgraft.files`: to a temporary name, then renamed, so a crash never
leaves half a file.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from embgraft.errors import ConfigError, MalformedFileError
from embgraft.files import OutputKind, atomic_dir, atomic_file, read_json, read_safetensors_header, save_tensors, write_json
from embgraft.grafting.result import EMBEDDING_KEY, PROVENANCE_FILE, VOCAB_FILE, write_provenance
from embgraft.grafting.result import REPORT_FILE as GRAFT_REPORT_FILE
from embgraft.text.tokenize import RECIPE_FILE, USER_DICT_FILE
from embgraft.version import __version__

CONFIG_FILE = "config.json"
RUN_DIR = OutputKind("run directory", directory=True, marker=CONFIG_FILE)  # what train --force may replace
LABELS_FILE = "labels.txt"
INIT_FILE = "embedding_init.safetensors"
INIT_KEY = EMBEDDING_KEY  # the tensor in INIT_FILE
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.csv"
STEPS_FILE = "history_steps.csv"
HF_DIR = "hf"
CKPT_DIR = "checkpoints"
LAST_TENSORS = "last.safetensors"
LAST_STATE = "last.json"
BEST_TENSORS = "best.safetensors"
TENSORBOARD_DIR = "tensorboard"
EVALUATION_DIR = "evaluation"
# every file a run directory may hold, for the tools that list or check them
RUN_FILES = (CONFIG_FILE, RECIPE_FILE, USER_DICT_FILE, VOCAB_FILE, LABELS_FILE, PROVENANCE_FILE, GRAFT_REPORT_FILE,
             INIT_FILE, MODEL_FILE, METRICS_FILE, THRESHOLDS_FILE, HISTORY_FILE, STEPS_FILE)
# history.csv's columns, one row per epoch
HISTORY_FIELDS = ("epoch", "step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1", "lr",
                  "embedding_lr", "seconds", "samples_per_s")
# config fields that may differ when resuming: they do not change what the steps compute
_RESUME_FREE = {"epochs", "patience", "device", "threads", "log_every", "tensorboard", "compile", "extra"}


def _load_tensors(path: Path) -> dict:
    """Every tensor of a safetensors file; a missing, cut or foreign file names itself."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MalformedFileError(path, None, "missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise MalformedFileError(path, None, f"not a complete safetensors file ({e})") from None


# --- start, checkpoints, finish ----------------------------------------------------------------


def start(out: Path, *, config, prep) -> None:
    """Write what is known before the first step into the new directory ``out``: config, recipe,
    vocabulary, labels, the embedding's initial rows and their provenance."""
    import torch

    (out / CKPT_DIR).mkdir(parents=True, exist_ok=True)
    cfg = config.to_dict()
    cfg.update(graft_dir=None if config.graft is None else str(Path(config.graft).resolve()),
               embgraft_version=__version__, torch_version=torch.__version__,
               n_classes=prep.n_classes, n_tokens=None if prep.vocab is None else len(prep.vocab),
               task="multi_label" if prep.multi_label else "single_label",
               dim=None if prep.init_weights is None else int(prep.init_weights.shape[1]),
               data_files=data_prints(config))
    write_json(out / CONFIG_FILE, cfg)
    prep.labels.save(out / LABELS_FILE)
    if prep.vocab is not None:  # an hf model on its own tokenizer has none of these
        prep.recipe.save(out)
        prep.vocab.save(out / VOCAB_FILE)
        write_provenance(out / PROVENANCE_FILE, prep.vocab.tokens, prep.provenance)
        save_tensors(out / INIT_FILE, {INIT_KEY: torch.from_numpy(prep.init_weights)})
    if prep.graft_report is not None:
        write_json(out / GRAFT_REPORT_FILE, prep.graft_report)
    if prep.encoder_config is not None:  # hf: the encoder's config (and tokenizer), so a run loads alone
        with atomic_dir(out / HF_DIR, force=True) as tmp:
            prep.encoder_config.save_pretrained(tmp)
            if prep.tokenizer is not None:
                prep.tokenizer.save_pretrained(tmp)


def _write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_file(path, force=True) as f:
        f.write(buf.getvalue())


def write_history(out: Path, history: list[dict]) -> None:
    """``history.csv``: one row of :data:`HISTORY_FIELDS` per epoch."""
    _write_csv(out / HISTORY_FILE, HISTORY_FIELDS, history)


# history_steps.csv's columns, one row every ``--log-every`` steps
STEP_FIELDS = ("step", "epoch", "train_loss", "lr", "embedding_lr")


def write_steps(out: Path, rows: list[dict]) -> None:
    """``history_steps.csv``: every logged step so far (the loop rewrites it at each epoch's end)."""
    _write_csv(out / STEPS_FILE, STEP_FIELDS, rows)


def read_steps(out: Path, *, up_to_step: int) -> list[dict]:
    """The logged steps of an interrupted run up to its last checkpoint's step (a resumed run
    logs the later ones again)."""
    path = out / STEPS_FILE
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: (int(v) if k in ("step", "epoch") else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f) if int(row["step"]) <= up_to_step]


def _optimizer_tensors(optimizers: list) -> tuple[dict, list]:
    """Optimiser states split into tensors (for safetensors) and JSON (everything else)."""
    import torch

    tensors, meta = {}, []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        state_meta = {}
        for pid, st in sd["state"].items():
            entry = {}
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"opt.{i}.{pid}.{k}"] = v
                else:
                    entry[k] = v
            state_meta[str(pid)] = {"tensors": [k for k, v in st.items() if torch.is_tensor(v)], "values": entry}
        meta.append({"param_groups": sd["param_groups"], "state": state_meta})
    return tensors, meta


def rng_states() -> dict:
    """This process's random-number state (CPU, and CUDA once initialised), as tensors."""
    import torch

    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def save_checkpoint(out: Path, *, model, optimizers: list, schedule, state: dict, best_weights: dict | None,
                    rng: list[dict] | None = None) -> None:
    """``checkpoints/last.*`` after every epoch (and ``best.safetensors`` when it improved).
    ``rng``: every rank's :func:`rng_states`, rank by rank (default: this process's), so each
    process of a ``torchrun`` job resumes its own dropout stream."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(optimizers)
    tensors.update(opt_tensors)
    for rank, states in enumerate(rng or [rng_states()]):
        for device, value in states.items():
            tensors[f"rng.{device}" if rank == 0 else f"rng.{device}.{rank}"] = value
    ckpt = out / CKPT_DIR
    ckpt.mkdir(exist_ok=True)
    if best_weights is not None:
        save_tensors(ckpt / BEST_TENSORS, best_weights)
    save_tensors(ckpt / LAST_TENSORS, tensors)
    write_json(ckpt / LAST_STATE, {"state": state, "schedule": schedule.state_dict(), "optimizers": opt_meta})


def config_inputs(config) -> list:
    """The files and directories a run reads, which its output must never be or hold."""
    return [config.train, config.dev, config.test, config.data, config.classes, config.graft, config.hf_model,
            config.unlabelled, config.class_weight if config.class_weight != "balanced" else None, *config.teachers]


def check_resumable(out: Path, config) -> None:
    """``out`` has a checkpoint of a run with the same config (but for ``_RESUME_FREE`` fields)."""
    if not out.exists():
        raise ConfigError(f"cannot resume: there is no run directory {out}")
    if not (out / CKPT_DIR / LAST_STATE).is_file():
        raise ConfigError(f"cannot resume: {out} has no {CKPT_DIR}/{LAST_STATE} (was a run started there?)")
    saved = read_json(out / CONFIG_FILE, expect=dict)
    saved.setdefault("length_bucket", 50)  # runs from before the option was bucketed by 50 batches
    now = config.to_dict()

    def same(k: str) -> bool:  # graft-char and graft-char/, ./train.txt and train.txt name one file
        a, b = saved[k], now[k]
        if k in _PATH_FIELDS and isinstance(a, str) and isinstance(b, str):
            return os.path.normpath(a) == os.path.normpath(b)
        if k == "teachers" and isinstance(a, list):
            return [os.path.normpath(x) for x in a] == [os.path.normpath(x) for x in b]
        return a == b

    diff = sorted(k for k in now if k not in _RESUME_FREE and k in saved and not same(k))
    if diff:
        shown = "; ".join(f"{k}: {saved[k]!r} then, {now[k]!r} now" for k in diff)
        raise ConfigError(f"cannot resume {out}: the config differs ({shown})")
    changed = [name for name, print_ in data_prints(config).items()
               if name in (saved.get("data_files") or {}) and saved["data_files"][name] != print_]
    if changed:
        raise ConfigError(f"cannot resume {out}: {', '.join(changed)} changed since the run started "
                          "(train again, without --resume)")


_PATH_FIELDS = ("train", "dev", "test", "data", "classes", "graft", "hf_model", "unlabelled")


def data_prints(config) -> dict[str, dict]:
    """Size and SHA-256 of each labelled data file the run reads, recorded in config.json so that
    ``--resume`` refuses data that changed under it."""
    import hashlib

    out = {}
    for name in ("train", "dev", "test", "data", "classes", "unlabelled"):
        path = getattr(config, name)
        if path is not None and Path(path).is_file():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            out[name] = {"bytes": Path(path).stat().st_size, "sha256": digest}
    return out


def load_checkpoint(out: Path, *, model, optimizers: list, schedule, device, rank: int = 0) -> dict:
    """Model, optimisers, schedule and ``rank``'s random-number state from ``checkpoints/last.*``;
    returns the loop's saved state."""
    import torch

    ckpt = out / CKPT_DIR
    meta = read_json(ckpt / LAST_STATE)
    tensors = _load_tensors(ckpt / LAST_TENSORS)
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if len(meta["optimizers"]) != len(optimizers):
        raise MalformedFileError(ckpt / LAST_STATE, None, "optimizers do not match this config")
    for i, (opt, om) in enumerate(zip(optimizers, meta["optimizers"])):
        state = {}
        for pid, st in om["state"].items():
            entry = dict(st["values"])
            entry.update({k: tensors[f"opt.{i}.{pid}.{k}"].to(device) if k != "step" else tensors[f"opt.{i}.{pid}.{k}"]
                          for k in st["tensors"]})
            state[int(pid)] = entry
        opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    schedule.load_state_dict(meta["schedule"])
    suffix = "" if rank == 0 else f".{rank}"
    if f"rng.cpu{suffix}" not in tensors:
        raise MalformedFileError(ckpt / LAST_TENSORS, None, f"no random-number state of rank {rank}: it was saved by a "
                                                            "run with fewer processes")
    torch.set_rng_state(tensors[f"rng.cpu{suffix}"])
    if f"rng.cuda{suffix}" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"rng.cuda{suffix}"])
    return meta["state"]


def read_best(out: Path) -> dict:
    """The best epoch's weights, as a state dict (ranks other than 0 keep them in memory)."""
    return _load_tensors(out / CKPT_DIR / BEST_TENSORS)


def load_best(out: Path, model, *, chunk_bytes: int = 4 << 20) -> None:
    """Copy ``checkpoints/best.safetensors`` into ``model``'s tensors in place, strictly (the same
    keys, shapes and dtypes as its ``state_dict``).

    The file is read with plain reads, ``chunk_bytes`` at a time, straight into the model's
    storage. ``load_state_dict(read_best(...))`` held a second copy of the embedding table, and
    safetensors' ``safe_open`` maps the whole file, whose pages then count as resident too: either
    raised a whole n-gram TextCNN run's peak RSS by the table's size (18-60 MB). The format is
    safetensors' documented layout: an 8-byte little-endian header size, a JSON header giving each
    tensor's dtype, shape and byte range, then the data.
    """
    import torch

    from embgraft.models.base import check_state

    path = out / CKPT_DIR / BEST_TENSORS
    if not path.is_file():
        raise MalformedFileError(path, None, "missing")
    state = model.state_dict()
    header, data_start = read_safetensors_header(path)
    with open(path, "rb") as f:
        dtypes = _safetensors_dtypes()
        try:
            given = {k: (dtypes.get(v["dtype"]), tuple(v["shape"]), v["dtype"]) for k, v in header.items()
                     if k != "__metadata__"}
        except (TypeError, KeyError, AttributeError):
            raise MalformedFileError(path, None, "not a safetensors file (bad header)") from None
        check_state(state, given, where=path)
        buf = bytearray(chunk_bytes)  # one buffer, refilled for every chunk
        for k, target in state.items():
            info = header[k]
            begin, end = info["data_offsets"]
            flat = target.reshape(-1).view(torch.uint8)  # a view: the model's own storage
            if end - begin != flat.numel() or not target.is_contiguous():
                raise MalformedFileError(path, None, f"{k}: {end - begin} bytes for {flat.numel()}")
            f.seek(data_start + begin)
            at = 0
            with torch.no_grad():
                while at < flat.numel():
                    n = f.readinto(memoryview(buf)[:min(chunk_bytes, flat.numel() - at)])
                    if not n:
                        raise MalformedFileError(path, None, f"{k}: the file ends early")
                    flat[at:at + n].copy_(torch.frombuffer(buf, dtype=torch.uint8, count=n))
                    at += n


def _safetensors_dtypes() -> dict:
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
            "BOOL": torch.bool}


def finish(out: Path, *, model, metrics: dict) -> None:
    save_tensors(out / MODEL_FILE, model.export_state(), metadata={"format": "embgraft-run", "version": __version__})
    if metrics.get("thresholds") is not None:
        write_json(out / THRESHOLDS_FILE, metrics["thresholds"])
    write_json(out / METRICS_FILE, metrics)


def is_multi_label(config: dict) -> bool:
    """Whether a run's ``config.json`` (as :func:`load_config` reads it) is of a multi-label task."""
    return config.get("task") == "multi_label"


def load_thresholds(run: Path, names: list[str]) -> np.ndarray:
    """(n_labels,) float64: a multi-label run's thresholds, in ``names``' order; every label must
    have one in [0, 1]."""
    path = Path(run) / THRESHOLDS_FILE
    if not path.is_file():
        raise MalformedFileError(path, None, "missing: a multi-label run keeps its labels' thresholds here")
    found = read_json(path, expect=dict)
    missing = [n for n in names if n not in found]
    bad = [n for n in names if n in found and not (isinstance(found[n], (int, float)) and 0 <= found[n] <= 1)]
    if missing or bad:
        raise MalformedFileError(path, None, (f"no threshold for {missing}" if missing else "")
                                 + ("; " if missing and bad else "") + (f"not a number in [0, 1]: {bad}" if bad else ""))
    return np.array([float(found[n]) for n in names])


def tensorboard_class(mode: str):
    """``SummaryWriter`` when asked (``on``) or installed (``auto``), else None; ``on`` without the
    package is an error (checked before anything is written)."""
    if mode == "off":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode == "on":
            raise ImportError("--tensorboard on needs the tensorboard package: pip install tensorboard") from None
        return None
    return SummaryWriter


def tensorboard_writer(out: Path, mode: str):
    """A ``SummaryWriter`` on ``RUN/tensorboard`` when asked (``on``) or installed (``auto``)."""
    cls = tensorboard_class(mode)
    return None if cls is None else cls(str(out / TENSORBOARD_DIR))


# --- reading a finished run --------------------------------------------------------------------


def load_config(run: Path) -> dict:
    return read_json(Path(run) / CONFIG_FILE, expect=dict)


def load_init_embedding(run: Path) -> np.ndarray:
    """(n_tokens, dim): the embedding before training, from ``embedding_init.safetensors``."""
    path = Path(run) / INIT_FILE
    tensors = _load_tensors(path)
    if INIT_KEY not in tensors:
        raise MalformedFileError(path, None, f"no tensor {INIT_KEY!r}; it holds {sorted(tensors)}")
    return tensors[INIT_KEY].numpy()


def load_model_state(run: Path) -> dict:
    return _load_tensors(Path(run) / MODEL_FILE)
