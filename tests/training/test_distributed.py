"""``torchrun --nproc_per_node 2 -m embgraft train``: DDP on two CPU processes (gloo)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains models end to end


def test_two_process_ddp_run_completes_and_writes_once(tiny_task, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found beside the interpreter")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "embgraft", "train",
           "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--test", str(tiny_task["test"]),
           "--graft", str(tiny_task["graft"]), "--model", "textcnn", "--n-filters", "8", "--epochs", "2",
           "--batch-size", "16", "--lr", "0.01", "--tensorboard", "off", "--no-progress", "--device", "cpu",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["world_size"] == 2 and metrics["test"]["n"] == 40
    # only rank 0 reports and writes: one line per epoch, one final line
    assert proc.stdout.count("epoch 1:") == 1 and proc.stdout.count("test accuracy") == 1
    assert (out / "history.csv").read_text(encoding="utf-8").count("\n") == 3


def test_two_process_resume_is_bit_identical(tiny_task, tmp_path):
    """Each process resumes its own random-number stream (dropout differs by rank)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not found beside the interpreter")
    from safetensors.numpy import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def run(out, *extra):
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "embgraft", "train",
               "--train", str(tiny_task["train"]), "--dev", str(tiny_task["dev"]), "--test", str(tiny_task["test"]),
               "--graft", str(tiny_task["graft"]), "--model", "textcnn", "--n-filters", "8", "--dropout", "0.5",
               "--batch-size", "16", "--lr", "0.01", "--tensorboard", "off", "--no-progress", "--device", "cpu",
               "--patience", "5", "--out", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    run(tmp_path / "whole", "--epochs", "3")
    run(tmp_path / "split", "--epochs", "1")
    run(tmp_path / "split", "--epochs", "3", "--resume")
    whole, split = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "split"))
    assert whole.keys() == split.keys()
    for k in whole:
        assert (whole[k] == split[k]).all(), k
