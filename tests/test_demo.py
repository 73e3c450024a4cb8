"""The embedded demo end to end (its quick form) with the issue's targets, and the MAT-Steer CLI.
The toy model is trained once per session into a temporary cache (about 60 s on 2 cores)."""
import json

import pytest

from steerkit import cli, mat
from steerkit.demos import steer_toy as demo
from steerkit.demos.toy import corpus
from steerkit.demos.toy.model import ToySettings, toy_model


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("steerkit-cache")
    mp.setenv("STEERKIT_CACHE", str(root))
    _, _, path = toy_model(ToySettings(), log=lambda *a: None)
    yield path
    mp.undo()


def test_corpus_rules():
    for text, positive, formal in corpus.texts(40):
        assert corpus.detect(text) == {"sentiment": positive, "formality": formal}
    assert corpus.detect("the food was so") == {"sentiment": None, "formality": False}
    rows = corpus.mat_examples(8)
    assert {r["attribute"] for r in rows} == {"sentiment", "formality"} and len(rows) == 16


@pytest.fixture(scope="module")
def quick_report(toy_cache):
    return demo.run(quick=True, prompts=32, log=lambda *a: None)


def test_quick_demo_runs_end_to_end_and_reports(quick_report):
    report = quick_report
    assert report.rates["unsteered"] == {"sentiment": 0.5, "formality": 0.5}  # balanced prompts
    assert min(report.follows.values()) >= 0.9, report.follows  # ... each continued in its own sentiment and register
    assert set(report.rates) == {"unsteered", "toward sentiment", "toward formality"}
    assert all(0.0 <= v <= 1.0 for r in report.rates.values() for v in r.values())
    assert all(0.0 <= g[k] <= 1.0 for g in report.gates.values() for k in ("neg", "pos", "auc", "auc_words"))
    assert all(v > 0 for v in report.speed.values())
    table = report.table()
    assert "positive rate" in table and "formal rate" in table and "new tokens/s" in table
    assert "AUC on its words" in table and "keep the prompt's value" in table


def test_quick_demo_meets_the_targets(quick_report):
    """Issue 17's targets on the default toy seed; the README's per-seed table (`demo --toy-seed 0 1 2 3 4`)
    shows them on five."""
    report = quick_report
    assert report.meets_targets(), (report.follows, report.shifts())
    for a in report.attributes:
        assert report.gates[a]["neg"] > report.gates[a]["pos"]


def test_toy_model_is_cached(toy_cache):
    logs = []
    _, _, path = toy_model(ToySettings(), log=logs.append)
    assert path == toy_cache and logs and "cached" in logs[0]


def test_train_mat_cli(toy_cache, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in corpus.mat_examples(40)))
    out = tmp_path / "vecs.safetensors"
    rc = cli.main(["train-mat", "--model", str(toy_cache), "--data", str(data), "--site", "block_out", "--layer", "1",
                   "-o", str(out), "--epochs", "2"])
    assert rc == 0, capsys.readouterr().err
    from steerkit import SteeringVectors

    vecs = SteeringVectors.load(out)
    assert vecs.attributes == ["sentiment", "formality"] and vecs.keys() == [("block_out", 1)]
    assert vecs.provenance["model_type"] == "llama" and vecs.provenance["config"]["epochs"] == 2
    assert "AUC" in capsys.readouterr().out


def test_demo_cli_on_a_local_model_and_data(toy_cache, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in corpus.mat_examples(40)))
    rc = cli.main(["demo", "--model", str(toy_cache), "--data", str(data), "--site", "block_out", "--layer", "1",
                   "--epochs", "1", "--prompts", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "gate (mean)" in out and "new tokens/s" in out


@pytest.mark.parametrize("argv,match", [
    (["demo", "--model", "somewhere"], "--model and --data go together"),
    (["train-mat", "--model", "/nonexistent", "--data", "x.jsonl", "--site", "block_out", "--layer", "0", "-o", "o"],
     "--model: no local model at"),
    (["demo", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["demo", "--model", "m", "--data", "d", "--toy-seed", "1"], "--toy-seed goes with the embedded toy"),
    (["demo", "--toy-seed", "0", "1", "--save-vectors", "v.safetensors"], "--save-vectors takes one toy seed"),
])
def test_cli_errors(argv, match, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    assert rc == 2
    assert match in capsys.readouterr().err


def _report(follow, to_sent, to_form):
    """A DemoReport as run() fills it: rates per run, what the unsteered toy keeps, gate AUCs."""
    r = demo.DemoReport("block_out", 1, ["sentiment", "formality"])
    r.rates = {"unsteered": {"sentiment": 0.5, "formality": 0.5},
               "toward sentiment": {"sentiment": 0.5 + to_sent[0], "formality": 0.5 + to_sent[1]},
               "toward formality": {"sentiment": 0.5 + to_form[1], "formality": 0.5 + to_form[0]}}
    r.follows = {"sentiment": follow, "formality": 1.0}
    r.gates = {a: dict(neg=0.9, pos=0.1, auc=0.8, auc_words=0.99) for a in r.attributes}
    return r


def test_targets_and_the_per_seed_table():
    good = _report(1.0, (0.5, 0.0), (0.5, 0.03))
    assert good.meets_targets() and good.shifts() == {"sentiment": (50.0, 0.0), "formality": (50.0, pytest.approx(3.0))}
    assert not _report(1.0, (0.25, 0.0), (0.5, 0.0)).meets_targets()      # own shift under 30 points
    assert not _report(1.0, (0.5, -0.25), (0.5, 0.0)).meets_targets()     # drags the other attribute
    assert not _report(0.5, (0.5, 0.0), (0.5, 0.0)).meets_targets()       # the toy ignores its prompts' sentiment
    table = demo.seeds_table({0: good, 1: _report(1.0, (0.5, -0.25), (0.5, 0.0))})
    rows = table.splitlines()
    assert rows[2].split()[0] == "0" and rows[2].split()[-1] == "yes" and rows[3].split()[-1] == "no"
    assert "1 of 2 toy seeds meet the targets" in rows[-1]
