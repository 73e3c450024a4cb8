"""The real-model steering benchmark's parts: judges, measures, the frontier and calibration, and a whole
run on a tiny random model with judges of its own (the run on SmolLM2 is tests/test_real_model.py)."""
import json
import math

import pytest
import torch

from steerkit import SteeringVectors, cli
from steerkit.steerbench import corpus, judges, measures
from steerkit.steerbench.config import BenchSettings
from steerkit.steerbench.data import builtin_pool, draw
from steerkit.steerbench.run import Point, calibrate, frontier, run

from test_cli_generate import _checkpoint


def test_judges_score_what_they_say():
    pos, neg = judges.sentiment(["What a wonderful, happy day.", "This is awful and I hate it."])
    assert pos > 0.5 and neg < -0.5
    assert judges.food(["I baked bread and two pies", "The train left at noon"]) == [pytest.approx(10 * 3 / 6), 0.0]


def test_measures():
    assert measures.distinct(["a b c a b c"]) == pytest.approx(3 / 4)
    assert measures.changed([[1, 2, 3], [1, 2]], [[1, 5, 3], [1, 2, 9]]) == [pytest.approx(1 / 3), pytest.approx(1 / 3)]


def test_nll_is_the_mean_token_nll_of_each_continuation(tmp_path):
    from steerkit.hf import load_model

    folder, _ = _checkpoint(tmp_path)
    model, tok = load_model(folder)
    prompts, conts = ["w1 w2 w3", "w5"], [[7, 8], [9, 10, 11]]
    got = measures.nll(model, tok, prompts, conts)
    for p, c, g in zip(prompts, conts, got):
        ids = tok(p)["input_ids"] + c
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
        want = -sum(float(logp[len(ids) - len(c) - 1 + i, t]) for i, t in enumerate(c)) / len(c)
        assert g == pytest.approx(want, rel=1e-4)


def _pt(strength, dnll, shift):
    return Point(0, "m", "a", strength, "sweep", {"a": shift}, dnll, 1.0)


def test_frontier_and_calibration_along_the_sweep():
    sweep = [_pt(1, 0.2, 0.3), _pt(2, 0.6, 0.5), _pt(4, 1.4, 0.2)]
    curve = [(0.0, 0.0), (0.2, 0.3), (0.6, 0.5), (1.4, 0.2)]
    from steerkit.steerbench.run import _curve

    assert _curve(sweep, "a") == curve
    assert frontier(curve, 0.1) == pytest.approx(0.15)          # on the first segment
    assert frontier(curve, 0.4) == pytest.approx(0.4)           # between sweep points
    assert frontier(curve, 1.0) == pytest.approx(0.5)           # past the peak: the peak
    assert calibrate(sweep, 0.4) == pytest.approx(1.5)          # where ΔNLL crosses 0.4
    assert calibrate(sweep, 5.0) == 4                           # never: the largest strength
    assert calibrate([_pt(1, 1.0, 0.1)], 0.5) == pytest.approx(0.5)


def test_the_builtin_pool_and_draws():
    pool = builtin_pool()
    attrs = {(r["attribute"], r["label"]) for r in pool}
    assert attrs == {("sentiment", "positive"), ("sentiment", "negative"), ("food", "positive"), ("food", "negative")}
    neutral = set(corpus.sentiment_texts()["neutral"])
    negatives = [r["text"] for r in pool if r["attribute"] == "sentiment" and r["label"] == "negative"]
    assert 0.45 < sum(t in neutral for t in negatives) / len(negatives) < 0.55  # negatives: half neutral
    a, b, c = draw(pool, 0, 50, 4), draw(pool, 0, 50, 4), draw(pool, 1, 50, 4)
    assert a.train == b.train and a.train != c.train and len(a.train) == 200
    assert a.carrying["sentiment"] == list(corpus.PROMPTS_POSITIVE[:4])
    trained = {r["text"] for r in a.train}
    assert not any(p in t for p in corpus.PROMPTS_NEUTRAL for t in trained)


def _tiny_pool():
    rows = []
    for i in range(12):
        rows.append(dict(text=f"w1 w{4 + i % 5} w1 w{10 + i}", attribute="ones", label="positive"))
        rows.append(dict(text=f"w2 w{4 + i % 5} w3 w{20 + i}", attribute="ones", label="negative"))
        rows.append(dict(text=f"w6 w7 w{30 + i} w6", attribute="sixes", label="positive"))
        rows.append(dict(text=f"w8 w{30 + i} w9 w5", attribute="sixes", label="negative"))
    return rows


def _share(word):
    return lambda texts: [t.split().count(word) / max(len(t.split()), 1) for t in texts]


def test_a_whole_run_on_a_tiny_model(tmp_path):
    from steerkit.hf import load_model
    from steerkit.steerbench import report

    folder, _ = _checkpoint(tmp_path)
    model, tok = load_model(folder)
    settings = BenchSettings(seeds=(0, 1), methods=("mean_diff", "probe", "mat", "mat_paper"), strengths=(1.0, 4.0),
                             prompts=3, carrying_prompts=2, max_new_tokens=4, per_class=8, mat_epochs=2, layer=1)
    result = run(model, tok, settings, pool=_tiny_pool(), prompts=["w3 w4", "w5 w9 w11", "w12"],
                 judges={"ones": _share("w1"), "sixes": _share("w6")}, model_name="tiny", log=lambda _: None)
    # per seed and method: a sweep of 2 strengths per attribute, one calibrated run and one on prompts
    # that carry the attribute, and one with both attributes at once
    for m in settings.methods:
        for seed in (0, 1):
            mine = [p for p in result.points if p.method == m and p.seed == seed]
            assert sorted(p.kind for p in mine) == sorted(["sweep"] * 4 + ["calibrated", "carrying"] * 2 + ["both"])
    data = json.loads(json.dumps(result.to_json()))
    row = data["summary"]["mat/ones"]
    assert set(row) >= {"frontier@0.5", "strength", "target", "interference", "changed_carrying", "both_target"}
    assert len(row["frontier@0.5"]["per_seed"]) == 2 and all(math.isfinite(x) for x in row["target"]["per_seed"])
    text = report.markdown(result)
    assert "MAT-Steer, steerkit default" in text and "| ones | +0.5 | 1 |" in text
    assert report.plot(result, tmp_path / "plot.png") and (tmp_path / "plot.png").stat().st_size > 1000
    vecs = result.suggested("mat")
    vecs.save(tmp_path / "v.safetensors")
    back = SteeringVectors.load(tmp_path / "v.safetensors")
    assert back.provenance["suggested_strength"] == [row["strength"]["mean"], data["summary"]["mat/sixes"]["strength"]["mean"]]


def test_bad_settings_are_refused_with_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="methods: expected some of"):
        BenchSettings(methods=("nope",)).check()
    with pytest.raises(ValueError, match="strengths"):
        BenchSettings(strengths=(0.0,)).check()
    folder, _ = _checkpoint(tmp_path)
    from steerkit.hf import load_model

    model, tok = load_model(folder)
    with pytest.raises(ValueError, match="no judge for attribute"):
        run(model, tok, BenchSettings(methods=("mean_diff",)), pool=_tiny_pool(), log=lambda _: None)
    (tmp_path / "data.jsonl").write_text(json.dumps(dict(text="x", attribute="tone", label="positive")) + "\n")
    rc = cli.main(["bench-steer", "--model", str(folder), "--data", str(tmp_path / "data.jsonl"), "-o",
                   str(tmp_path / "missing" / "deeper")])
    assert rc == 2 and "--out" in capsys.readouterr().err
