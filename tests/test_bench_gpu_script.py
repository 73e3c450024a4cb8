"""benches/gpu.py end to end on the CPU with a tiny model: every section that runs without a GPU
produces its rows, steerkit's logits match the hook implementation in eager and compiled decoding,
and the JSON, markdown and PNG are written."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_script_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "res"
    cmd = [sys.executable, str(ROOT / "benches" / "gpu.py"), "--device", "cpu", "--preset", "tiny", "--out", str(out),
           "--batches", "1", "2", "--prompt", "12", "--new-tokens", "3", "--prefill-tokens", "32",
           "--compile-backend", "eager", "--fused-n", "1", "8", "--reps", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((out / "gpu.json").read_text())
    assert {r["op"] for r in res["fused"]} == {"steer_add_rmsnorm", "steer_linear[triton]", "steer_linear[reference]"}
    assert all(r["rel_err"] < 1e-5 for r in res["fused"])
    assert [(r["batch"], r["mode"]) for r in res["decode"]] == [(1, "eager"), (1, "compiled"), (2, "eager"),
                                                                (2, "compiled")]
    for r in res["decode"]:
        assert "error" not in r, r
        assert r["rel_err_vs_hooks"] < 1e-4 and r["steer_changes_logits"] > 1e-2 and r["paths"] == ["fused"]
    assert res["prefill"]["rel_err_vs_hooks"] < 1e-4
    md = (out / "gpu.md").read_text()
    assert "## Decoding" in md and "## Prefill" in md and "## Fused ops" in md
    assert (out / "gpu.png").stat().st_size > 1000


def test_gpu_session_refuses_without_a_gpu_and_summarises_a_run(tmp_path):
    """benches/gpu_session.sh all: without a GPU (and without --smoke) it stops at once with one line;
    session_summary.py turns the sections' table and outputs into session.json and session.md."""
    import torch

    if torch.cuda.is_available():
        return  # the refusal is for machines without one
    run = subprocess.run(["bash", str(ROOT / "benches" / "gpu_session.sh"), "all", str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env={**__import__("os").environ, "PYTHON": sys.executable})
    assert run.returncode == 2 and "no CUDA GPU visible; run 'all --smoke'" in run.stderr
    folder = tmp_path / "h100"
    (folder / "gated").mkdir(parents=True)
    (folder / "gated" / "gated_steer.md").write_text("# gated_steer on H100\n| a | b |\n")
    (folder / "sections.tsv").write_text("build\tok\t61\t\ngated\ttimeout\t90\tN=32768 D=8192\n"
                                         "vllm\tskipped\t0\tskipped: vllm is not importable here\n")
    (folder / "info.json").write_text(json.dumps({"steerkit": "0.1.0", "torch": "2.11", "cuda_device": "H100"}))
    out = subprocess.run([sys.executable, str(ROOT / "benches" / "session_summary.py"), str(folder)],
                         capture_output=True, text=True, check=True).stdout
    summary = json.loads((folder / "session.json").read_text())
    assert [s["status"] for s in summary["sections"]] == ["ok", "timeout", "skipped"] and summary["seconds"] == 151
    assert "| gated | timeout | 90 | N=32768 D=8192 |" in out and "# gated_steer on H100" in out
    assert (folder / "session.md").read_text().strip() == out.strip()
