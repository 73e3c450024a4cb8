"""`steerkit fit` under `torchrun --nproc_per_node 2` and `accelerate launch --num_processes 2` (gloo on the CPU): the fused LoRA linear and the
label-only loss stay on through DDP, rank 0 alone writes, and with the same global batch and seed the
2-process adapter matches the 1-process one (the first step's loss equal, the adapter within 1e-4)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

pytest.importorskip("peft")

from steerkit import focus  # noqa: E402
from steerkit.demos.toy import focus_corpus as fc  # noqa: E402
from steerkit.demos.toy.model import build_tokenizer, random_llama  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    tok = build_tokenizer(fc.CORPUS)
    random_llama(tok, kv_heads=2).save_pretrained(str(root / "model"))
    tok.save_pretrained(str(root / "model"))
    (root / "task.json").write_text(json.dumps(fc.TASK.to_dict()))
    # 64 training and 16 validation rows: whole global batches of 8, so no rank pads an uneven last batch
    focus.save_jsonl(fc.examples(64, 0.9, seed=1), root / "train.jsonl")
    focus.save_jsonl(fc.examples(16, 0.9, seed=2), root / "val.jsonl")
    return root


def _fit(root, out, batch_size, procs, launcher="torchrun", rates=("--lr", "5e-3", "--retry-lr")):
    """``rates`` by default: one try at 5e-3, never retried (the processes are compared on one run)."""
    args = ["fit", "--model", str(root / "model"), "--task", str(root / "task.json"), "--data",
            str(root / "train.jsonl"), "--val", str(root / "val.jsonl"), "-o", str(out), "--epochs", "2", "--batch-size", str(batch_size),
            "--lora-r", "4", "--patience", "0", "--quiet", "--seed", "0",
            "--per-example", "1", "--per-disagreeing", "1",  # one prompt per example: whole global batches
            *rates]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if procs == 1:
        cmd = [sys.executable, "-m", "steerkit"] + args
    elif launcher == "torchrun":
        torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(procs), "-m", "steerkit"] + args
    else:
        accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
        steerkit = shutil.which("steerkit", path=os.path.dirname(sys.executable)) or shutil.which("steerkit")
        # --multi_gpu is accelerate's multi-process launcher (torchrun underneath); on a machine without a
        # GPU its processes train on the CPU with gloo. Its --cpu flag runs a single process instead.
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(procs), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", steerkit] + args
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)  # a run takes 10-20 s; a hang fails fast
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _assert_same_adapter(one, two):
    """The adapters written to two output folders agree within 1e-4 (DDP's all-reduce orders sums otherwise)."""
    from safetensors.torch import load_file

    a, b = (load_file(str(out / "adapter_model.safetensors")) for out in (one, two))
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def one_process(setup):
    _fit(setup, setup / "one", batch_size=8, procs=1)
    return setup / "one"


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_fit_on_two_processes_matches_one_process(setup, one_process, launcher):
    one, two = one_process, setup / f"two-{launcher}"
    proc = _fit(setup, two, batch_size=4, procs=2, launcher=launcher)  # the same global batch of 8
    assert proc.stdout.count("adapter written to") == 1  # rank 0 alone reports and writes
    assert not (two / ".steerkit-checkpoints").exists()
    _assert_same_adapter(one, two)
    log1 = json.loads((one / "steerkit_focus.json").read_text())
    log2 = json.loads((two / "steerkit_focus.json").read_text())
    first = [[h["loss"] for h in log["history"] if "loss" in h][0] for log in (log1, log2)]
    assert first[0] == pytest.approx(first[1], rel=1e-5)
    assert log1["steps"] == log2["steps"] > 0
    assert log2["config"]["fused_lora"] and log2["config"]["label_only_loss"]


def test_a_retry_on_two_processes_matches_one_process(setup):
    """The retry under torchrun: the ranks score the validation records of the first try together (at a rate too
    small to learn anything, so it leaves the core family at chance), every rank decides to train again,
    restores the same LoRA start and trains at the retry's rate; the kept adapter matches one process's."""
    rates = ("--lr", "1e-7", "--retry-lr", "5e-3", "--retry-epochs", "2")
    outs = {procs: setup / f"retry-{procs}" for procs in (1, 2)}
    for procs, out in outs.items():
        proc = _fit(setup, out, batch_size=8 // procs, procs=procs, rates=rates)
        assert proc.stdout.count("(kept)") == 1, proc.stdout  # rank 0 alone reports the tries
    logs = {procs: json.loads((out / "steerkit_focus.json").read_text()) for procs, out in outs.items()}
    for log in logs.values():
        assert [(t["lr"], t["epochs"]) for t in log["tries"]] == [(1e-7, 2.0), (5e-3, 2.0)]
        assert log["tries"][0]["problems"]  # the first try is what made it train again
    assert logs[2]["lr"] == logs[1]["lr"]
    # each rank scores half the validation records and they swap: the same accuracies as one process's
    accuracies = {procs: [{k: v for k, v in h.items() if "accuracy" in k or "disagreeing" in k}
                          for h in log["val_focus_history"]] for procs, log in logs.items()}
    assert accuracies[2] == accuracies[1] and accuracies[1]
    assert logs[2]["val_focus"] == logs[1]["val_focus"]
    assert [t["steps"] for t in logs[2]["tries"]] == [t["steps"] for t in logs[1]["tries"]]
    _assert_same_adapter(outs[1], outs[2])
