"""benches/steer_levers.py end to end on a tiny checkpoint: every lever it is asked for is built, swept,
calibrated and measured on development draws, and written as JSON lines and a table; the test's data
seeds and an unwritable output are refused before the model loads."""
import json
import subprocess
import sys
from pathlib import Path

from test_cli_generate import _checkpoint

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benches" / "steer_levers.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=600)


def test_levers_on_a_tiny_model(tmp_path):
    folder, _ = _checkpoint(tmp_path)
    out = tmp_path / "levers"
    levers = ["mean_diff", "mat_open_bias", "mat_no_gates"]
    run = _run("--model", str(folder), "--seeds", "1000", "--levers", *levers, "--layer", "1", "--strengths", "1", "4",
               "--per-class", "6", "--num-prompts", "3", "--max-new-tokens", "3", "-o", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "levers.jsonl").read_text().splitlines()]
    header, rows = lines[0], lines[1:]
    assert header["layer"] == 1 and header["prompts"] == 3 and header["seeds"] == [1000]
    assert [r["lever"] for r in rows] == levers
    for r in rows:
        assert set(r["frontier"]) == {"sentiment", "food"} and len(r["frontier"]["food"]) == 3
        assert len(r["strength"]) == 2 and len(r["retention"]) == 2
    gated = {r["lever"]: r["gates_both"] for r in rows}
    assert gated["mean_diff"] is None and gated["mat_no_gates"] is None
    assert len(gated["mat_open_bias"]) == 2 and all(0.0 <= g <= 1.0 for g in gated["mat_open_bias"])
    table = (out / "levers.md").read_text()
    assert "| mean difference (the baseline) |" in table and "of 6" in table  # cells against the baseline


def test_levers_refuse_the_test_seeds_and_an_unwritable_out(tmp_path):
    run = _run("--model", str(tmp_path / "none"), "--seeds", "0", "-o", str(tmp_path / "o"))
    assert run.returncode == 2 and "test's data seeds" in run.stderr and "Traceback" not in run.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = _run("--model", str(tmp_path / "none"), "-o", str(blocker / "sub"))
    assert run.returncode == 2 and "--out: cannot write" in run.stderr and "Traceback" not in run.stderr


def test_one_table_of_several_runs(tmp_path):
    folder, _ = _checkpoint(tmp_path)
    common = ["--model", str(folder), "--seeds", "1000", "--layer", "1", "--strengths", "2", "--per-class", "4",
              "--num-prompts", "2", "--max-new-tokens", "2"]
    for name, levers in (("a", ["mean_diff"]), ("b", ["mean_diff", "mean_diff_3_layers"])):
        run = _run(*common, "--levers", *levers, "-o", str(tmp_path / name))
        assert run.returncode == 0, run.stderr[-3000:]
    run = _run("--table", str(tmp_path / "a" / "levers.jsonl"), str(tmp_path / "b" / "levers.jsonl"))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| mean difference")]
    assert len(rows) == 2 and "3 layers" in rows[1]  # the baseline once, though both runs measured it
    run = _run("--table", str(tmp_path / "nothing.jsonl"))
    assert run.returncode == 2 and "--table: cannot read" in run.stderr
