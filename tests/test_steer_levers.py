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
    levers = ["mean_diff", "mat_open_bias", "mat_no_gates", "mat_edit_all", "mean_diff_generated"]
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


def _levers_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("steer_levers", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_data_variants_form_the_negatives_as_named():
    from steerkit.steerbench import corpus
    from steerkit.steerbench.data import builtin_pool

    mod = _levers_module()
    own = ["The model's own sentence one.", "Another of its own."]
    v = mod.data_variants(builtin_pool(), 20, own)
    neutral = set(corpus.sentiment_texts()["neutral"])
    pairs = v["pairs"](1000).train
    # pairs: sentiment's negatives are negative sentences only; food's are unchanged
    sent_neg = [r["text"] for r in pairs if r["attribute"] == "sentiment" and r["label"] == "negative"]
    assert len(sent_neg) == 20 and not neutral & set(sent_neg)
    assert sum(r["attribute"] == "food" and r["label"] == "negative" for r in pairs) == 20
    # own: the same draw plus the model's text as every attribute's negatives, nothing else changed
    for name, plain in (("pairs_own", pairs), ("own", None)):
        got = v[name](1000).train
        base = plain if plain is not None else [r for r in got if r["text"] not in own]
        assert got[:len(base)] == base
        added = got[len(base):]
        assert sorted((r["attribute"], r["text"]) for r in added) == sorted((a, t) for a in ("sentiment", "food") for t in own)
        assert all(r["label"] == "negative" for r in added)
    default_sent_neg = {r["text"] for r in v["own"](1000).train if r["attribute"] == "sentiment" and r["label"] == "negative"}
    assert neutral & default_sent_neg  # the built-in data keeps its neutral negatives


def test_own_text_levers_count_cells_against_the_mean_difference_on_the_same_data(tmp_path):
    folder, _ = _checkpoint(tmp_path)
    out = tmp_path / "levers"
    levers = ["mean_diff_pairs_own", "mat_pairs_own"]
    run = _run("--model", str(folder), "--seeds", "1000", "--levers", *levers, "--layer", "1", "--strengths", "1", "4",
               "--per-class", "6", "--num-prompts", "3", "--max-new-tokens", "3", "-o", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "levers.jsonl").read_text().splitlines()]
    assert len(lines[0]["own_texts"]) == 24 * 4  # four sampled continuations of each of the test's prompts
    assert [r["lever"] for r in lines[1:]] == levers
    table = (out / "levers.md").read_text()
    baseline = next(x for x in table.splitlines() if x.startswith("| mean difference, pairs + the model's own"))
    mat = next(x for x in table.splitlines() if x.startswith("| default, pairs + the model's own"))
    assert "| - |" in baseline and "of 6" in mat
