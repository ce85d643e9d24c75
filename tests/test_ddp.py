"""DDP on CPU: 2 processes under torchrun (gloo) give the weights of 1 process with the same
global batch (the per-rank batches of a step together are exactly the single-process batch,
and DDP averages their gradients)."""

import os
import subprocess
import sys

import torch

from deepatlas.train import load_checkpoint

ARGS = ["train", "digits", "--no-progress", "--set", "train.epochs=2", "--set",
        "model.dropout=0.0", "--set", "train.batch_size=64", "--set", "train.tensorboard=false"]


def test_two_gloo_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "deepatlas", *ARGS, "--out", tmp_path / "one"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "deepatlas", *ARGS, "--out",
                          tmp_path / "two"], capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("epoch   2/2") == 1, "only rank 0 should print"
    a = load_checkpoint(tmp_path / "one" / "last.pt")
    b = load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 2 * (1293 // 64)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5)
    acc = [load_checkpoint(tmp_path / run / "last.pt")["history"][-1]["test_acc"]
           for run in ("one", "two")]
    assert abs(acc[0] - acc[1]) <= 1 / 360 + 1e-9  # at most one test image flips
