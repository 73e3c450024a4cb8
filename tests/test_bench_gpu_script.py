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
    assert {r["op"] for r in res["fused"]} == {"steer_add_rmsnorm", "steer_linear[triton]", "steer_linear[torch]"}
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
