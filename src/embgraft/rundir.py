"""The run directory: a self-sufficient bundle that ``predict``, ``evaluate`` and ``report`` load.

    RUN/
      config.json                 the resolved TrainConfig (+ graft_dir, versions)
      recipe.json [user_dict.txt] how texts become tokens (from the graft)
      vocab.txt  labels.txt       token ids, class names in id order
      provenance.tsv              where each embedding row came from (graft, n-gram, random)
      graft_report.json           the graft's coverage report (grafted runs)
      embedding_init.safetensors  the embedding before training (tensor "embedding")
      model.safetensors           the best epoch's weights (the embedding as "embedding.weight")
      metrics.json  history.csv   dev/test scores; one row per epoch
      checkpoints/                last.safetensors + last.json (resume), best.safetensors

Tensors are safetensors, everything else UTF-8 text or JSON: no pickle anywhere. Every file is
written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from embgraft._fs import _umask, atomic_file
from embgraft.errors import ConfigError, MalformedFileError

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
VOCAB_FILE = "vocab.txt"
PROVENANCE_FILE = "provenance.tsv"
GRAFT_REPORT_FILE = "graft_report.json"
INIT_FILE = "embedding_init.safetensors"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
STEPS_FILE = "history_steps.csv"
CKPT_DIR = "checkpoints"
# config fields that may differ when resuming: they do not change what the steps compute
_RESUME_FREE = {"epochs", "patience", "device", "threads", "log_every", "tensorboard", "compile", "extra"}


def _save_tensors(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    import tempfile

    from safetensors.torch import save_file

    # save_file streams the tensors to disk; save() built the whole file as one bytes object
    # first: a second copy of a checkpoint's weights and Adam moments in memory. Written beside
    # ``path`` and renamed onto it, as atomic_file does.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise MalformedFileError(path, None, "missing")
    return load_file(str(path))


def _write_json(path: Path, data: Any) -> None:
    with atomic_file(path, force=True) as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise MalformedFileError(path, None, "missing")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise MalformedFileError(path, e.lineno, f"bad JSON: {e.msg}") from None


# --- start, checkpoints, finish ----------------------------------------------------------------


def start(out: Path, *, config, prep, force: bool) -> None:
    """Write what is known before the first step: config, recipe, vocabulary, labels, the
    embedding's initial rows and their provenance. An old ``out`` goes only with ``force``."""
    import torch

    from embgraft import __version__
    from embgraft.result import write_provenance

    if out.exists():
        if not force:
            raise ConfigError(f"{out} exists; pass --force to overwrite it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    (out / CKPT_DIR).mkdir(parents=True)
    cfg = config.to_dict()
    cfg.update(graft_dir=None if config.graft is None else str(Path(config.graft).resolve()),
               embgraft_version=__version__, torch_version=torch.__version__,
               n_classes=prep.n_classes, n_tokens=None if prep.vocab is None else len(prep.vocab),
               dim=None if prep.init_weights is None else int(prep.init_weights.shape[1]))
    _write_json(out / CONFIG_FILE, cfg)
    prep.labels.save(out / LABELS_FILE)
    if prep.vocab is not None:  # an hf model on its own tokenizer has none of these
        prep.recipe.save(out)
        prep.vocab.save(out / VOCAB_FILE)
        write_provenance(out / PROVENANCE_FILE, prep.vocab.tokens, prep.provenance)
        _save_tensors(out / INIT_FILE, {"embedding": torch.from_numpy(prep.init_weights)})
    if prep.graft_report is not None:
        _write_json(out / GRAFT_REPORT_FILE, prep.graft_report)
    if hasattr(prep.model, "save_hf"):
        prep.model.save_hf(out, getattr(prep.model, "_tokenizer", None))


def write_history(out: Path, history: list[dict]) -> None:
    from embgraft.train import HISTORY_FIELDS

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_file(out / HISTORY_FILE, force=True) as f:
        f.write(buf.getvalue())


def log_step(out: Path, row: dict) -> None:
    path = out / STEPS_FILE
    new = not path.exists()
    with open(path, "a", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row), lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(row)


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


def save_checkpoint(out: Path, *, model, optimizers: list, schedule, state: dict, best_weights: dict | None) -> None:
    """``checkpoints/last.*`` after every epoch (and ``best.safetensors`` when it improved)."""
    import torch

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(optimizers)
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    ckpt = out / CKPT_DIR
    ckpt.mkdir(exist_ok=True)
    if best_weights is not None:
        _save_tensors(ckpt / "best.safetensors", best_weights)
    _save_tensors(ckpt / "last.safetensors", tensors)
    _write_json(ckpt / "last.json", {"state": state, "schedule": schedule.state_dict(), "optimizers": opt_meta})


def check_resumable(out: Path, config) -> None:
    """``out`` has a checkpoint of a run with the same config (but for ``_RESUME_FREE`` fields)."""
    if not (out / CKPT_DIR / "last.json").is_file():
        raise ConfigError(f"cannot resume: {out} has no {CKPT_DIR}/last.json (was a run started there?)")
    saved = read_json(out / CONFIG_FILE)
    saved.setdefault("length_bucket", 50)  # runs from before the option was bucketed by 50 batches
    now = config.to_dict()
    diff = sorted(k for k in now if k not in _RESUME_FREE and k in saved and saved[k] != now[k])
    if diff:
        shown = "; ".join(f"{k}: {saved[k]!r} then, {now[k]!r} now" for k in diff)
        raise ConfigError(f"cannot resume {out}: the config differs ({shown})")


def load_checkpoint(out: Path, *, model, optimizers: list, schedule, device) -> dict:
    import torch

    ckpt = out / CKPT_DIR
    meta = read_json(ckpt / "last.json")
    tensors = _load_tensors(ckpt / "last.safetensors")
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if len(meta["optimizers"]) != len(optimizers):
        raise MalformedFileError(ckpt / "last.json", None, "optimizers do not match this config")
    for i, (opt, om) in enumerate(zip(optimizers, meta["optimizers"])):
        state = {}
        for pid, st in om["state"].items():
            entry = dict(st["values"])
            entry.update({k: tensors[f"opt.{i}.{pid}.{k}"].to(device) if k != "step" else tensors[f"opt.{i}.{pid}.{k}"]
                          for k in st["tensors"]})
            state[int(pid)] = entry
        opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta["state"]


def read_best(out: Path, model) -> dict:
    return {k: v for k, v in _load_tensors(out / CKPT_DIR / "best.safetensors").items()}


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

    path = out / CKPT_DIR / "best.safetensors"
    if not path.is_file():
        raise MalformedFileError(path, None, "missing")
    state = model.state_dict()
    with open(path, "rb") as f:
        try:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        except (ValueError, MemoryError, OverflowError):
            raise MalformedFileError(path, None, "not a safetensors file") from None
        data_start = f.tell()
        dtypes = _safetensors_dtypes()
        keys = set(header) - {"__metadata__"}
        missing, unexpected = sorted(set(state) - keys), sorted(keys - set(state))
        if missing or unexpected:
            raise MalformedFileError(path, None, f"does not fit the model: missing {missing}, unexpected {unexpected}")
        buf = bytearray(chunk_bytes)  # one buffer, refilled for every chunk
        for k, target in state.items():
            info = header[k]
            dtype = dtypes.get(info["dtype"])
            if dtype != target.dtype or tuple(info["shape"]) != tuple(target.shape):
                raise MalformedFileError(path, None, f"{k}: {info['dtype']} {tuple(info['shape'])}, the model's is "
                                                     f"{target.dtype} {tuple(target.shape)}")
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
    from embgraft import __version__
    from embgraft.models import export_state

    _save_tensors(out / MODEL_FILE, export_state(model), metadata={"format": "embgraft-run",
                                                                    "version": __version__})
    _write_json(out / METRICS_FILE, metrics)


def tensorboard_writer(out: Path, mode: str):
    """A ``SummaryWriter`` on ``RUN/tensorboard`` when asked (``on``) or installed (``auto``)."""
    if mode == "off":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode == "on":
            raise ImportError("--tensorboard on needs the tensorboard package: pip install tensorboard") from None
        return None
    return SummaryWriter(str(out / "tensorboard"))


# --- reading a finished run --------------------------------------------------------------------


def load_config(run: Path) -> dict:
    return read_json(Path(run) / CONFIG_FILE)


def load_metrics(run: Path) -> dict:
    return read_json(Path(run) / METRICS_FILE)


def load_init_embedding(run: Path) -> np.ndarray:
    return _load_tensors(Path(run) / INIT_FILE)["embedding"].numpy()


def load_model_state(run: Path) -> dict:
    return _load_tensors(Path(run) / MODEL_FILE)
