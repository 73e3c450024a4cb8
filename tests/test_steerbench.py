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
    prompts, conts = ["w1 w2 w3", "w5", "w4 w4", "w2 w9 w9 w3"], [[7, 8], [9, 10, 11], [5], [6, 7, 8, 9]]
    got = measures.nll(model, tok, prompts, conts)
    # batches are formed by length, the answers come back in the caller's order
    assert measures.nll(model, tok, prompts, conts, batch_size=2) == pytest.approx(got, rel=1e-5)
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


def _resume_setup(tmp_path):
    from steerkit.hf import load_model

    folder, _ = _checkpoint(tmp_path)
    model, tok = load_model(folder)
    settings = BenchSettings(seeds=(0, 1), methods=("mean_diff", "mat"), strengths=(1.0, 4.0), prompts=3,
                             carrying_prompts=2, max_new_tokens=4, per_class=8, mat_epochs=2, layer=1)
    kwargs = dict(pool=_tiny_pool(), prompts=["w3 w4", "w5 w9 w11", "w12"],
                  judges={"ones": _share("w1"), "sixes": _share("w6")}, model_name="tiny", log=lambda _: None)
    return model, tok, settings, kwargs


def test_a_stopped_run_resumes_from_its_progress_file(tmp_path, monkeypatch):
    from steerkit.steerbench import runner as run_module
    from steerkit.steerbench.run import Progress

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    calls = []
    real = run_module.greedy_ids
    monkeypatch.setattr(run_module, "greedy_ids", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "out"
    full = run(model, tok, settings, progress=Progress(out), **kwargs)
    lines = (out / Progress.NAME).read_text().splitlines()
    assert len(lines) == 1 + len(full.points) and all(json.loads(x)["point"] for x in lines[1:])
    first_calls = len(calls)
    # stopped in the middle of seed 1: what was written, and half a line of the point in progress
    kept = 1 + len(full.points) - 5
    (out / Progress.NAME).write_text("\n".join(lines[:kept]) + "\n" + lines[kept][:20])
    calls.clear()
    again = run(model, tok, settings, progress=Progress(out, resume=True), **kwargs)
    assert [json.dumps(p.__dict__) for p in again.points] == [json.dumps(p.__dict__) for p in full.points]
    # one batched generate unsteered (seed 1 draws the same prompts here, whose continuations the run keeps),
    # then per seed and method one for the sweep and one for what it calibrates
    assert first_calls == 1 + 2 * 2 * 2
    # again: the unsteered batch, then the batch of the 5 lost points (mat's calibrated runs of seed 1)
    assert len(calls) == 1 + 1
    assert len((out / Progress.NAME).read_text().splitlines()) == len(lines)
    other = BenchSettings(**{**settings.__dict__, "strengths": (1.0, 8.0)})
    with pytest.raises(ValueError, match="--resume: .* another model, settings or data"):
        run(model, tok, other, progress=Progress(out, resume=True), **kwargs)


def test_a_judge_of_the_users_own_and_what_is_refused_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "my_judges.py").write_text(
        "def tone(texts):\n    return [float(t.count('w7')) for t in texts]\n"
        "def broken(texts):\n    return ['high' for t in texts]\n")
    name, judge = judges.load_judge(f"tone={tmp_path / 'my_judges.py'}:tone")
    assert name == "tone" and judge(["w7 w7 w1"]) == [2.0]
    for spec, message in [("tone", "expected NAME=module:function"), ("tone=nowhere_at_all:f", "cannot import"),
                          (f"tone={tmp_path / 'my_judges.py'}:nope", "has no function 'nope'"),
                          (f"tone={tmp_path / 'my_judges.py'}:broken", "one finite number per text")]:
        with pytest.raises(ValueError, match=message):
            judges.load_judge(spec)
    (tmp_path / "data.jsonl").write_text(json.dumps(dict(text="w7 w7", attribute="tone", label="positive")) + "\n")
    nothing = str(tmp_path / "no-model-here")  # had the model been loaded first, the error would name it
    base = ["bench-steer", "--model", nothing, "--data", str(tmp_path / "data.jsonl"), "-o", str(tmp_path / "o")]
    assert cli.main(base) == 2
    assert "no judge for attribute(s) tone" in capsys.readouterr().err
    assert cli.main(base + ["--judge", f"tone={tmp_path / 'my_judges.py'}:tone"]) == 2
    assert "methods: 'prompt' has instructions for" in capsys.readouterr().err
    assert cli.main(base + ["--judge", f"tone={tmp_path / 'my_judges.py'}:tone", "--methods", "mean_diff"]) == 2
    assert "--model" in capsys.readouterr().err  # now only the model is missing
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "progress.jsonl").write_text("{}\n")
    assert cli.main(base) == 2 and "pass --resume to continue it" in capsys.readouterr().err


def test_a_run_with_a_users_judge_end_to_end(tmp_path, capsys):
    folder, _ = _checkpoint(tmp_path)
    (tmp_path / "my_judges.py").write_text(
        "def ones(texts):\n    return [t.split().count('w1') / max(len(t.split()), 1) for t in texts]\n")
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _tiny_pool() if r["attribute"] == "ones"))
    rc = cli.main(["bench-steer", "--model", str(folder), "--data", str(tmp_path / "data.jsonl"), "--judge",
                   f"ones={tmp_path / 'my_judges.py'}:ones", "--methods", "mean_diff", "--seeds", "0",
                   "--strengths", "1", "4", "--num-prompts", "2", "--max-new-tokens", "3", "--per-class", "6",
                   "--layer", "1", "-o", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["attributes"] == ["ones"] and "mean_diff/ones" in data["summary"]


def test_one_batch_with_a_strength_row_per_job_equals_each_job_alone(tmp_path):
    from steerkit.steerbench.runner import Job, Runner

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32) * 3, site="block_out", layer=1, attributes=["ones", "sixes"])
    r = Runner(model, tok, ["ones", "sixes"], settings, kwargs["judges"])
    jobs = [Job(["w3 w4", "w5 w9 w11"], [2.0, 0.0]), Job(["w12"], [0.0, -3.0]),
            Job(["w3 w4", "w7"], [1.0, 1.0], carrying=True)]
    together = r.measure(jobs, vecs)
    for job, got in zip(jobs, together):
        # a runner of its own: the first one keeps the NLL of every (prompt, continuation) it scored
        alone = Runner(model, tok, ["ones", "sixes"], settings, kwargs["judges"]).measure([job], vecs)[0]
        assert got[1] == alone[1] and got[0]["nll"] == pytest.approx(alone[0]["nll"], rel=1e-5)
        assert got[0]["judge"] == alone[0]["judge"]
    with pytest.raises(ValueError, match="all steered or all unsteered"):
        r.measure([Job(["w3"]), Job(["w3"], [1.0, 0.0])], vecs)


def test_a_batch_steers_only_the_generated_tokens_when_told(tmp_path):
    """``tokens="generated"`` leaves the prompt unsteered: the first new token comes from the prompt's
    forward, so it is the unsteered one, and the rest follow the steering."""
    from dataclasses import replace as _replace

    from steerkit.steerbench.runner import Job, Runner

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32) * 30, site="block_out", layer=1, attributes=["ones", "sixes"])
    prompts = ["w3 w4", "w5 w9 w11", "w7"]
    one = _replace(settings, max_new_tokens=1)
    r = Runner(model, tok, ["ones", "sixes"], one, kwargs["judges"])
    plain = r.measure([Job(prompts)])[0][1]
    assert r.measure([Job(prompts, [4.0, 0.0])], vecs, tokens="generated")[0][1] == plain
    assert r.measure([Job(prompts, [4.0, 0.0])], vecs)[0][1] != plain  # every token steered: it moves
    r = Runner(model, tok, ["ones", "sixes"], _replace(settings, max_new_tokens=4), kwargs["judges"])
    ids = [r.measure([Job(prompts, x)], vecs, tokens="generated")[0][1] for x in ([0.0, 0.0], [4.0, 0.0])]
    assert [i[0] for i in ids[0]] == [i[0] for i in ids[1]] and ids[0] != ids[1]


def test_the_unsteered_models_answers_are_kept_for_the_run_and_equal_fresh_ones(tmp_path, monkeypatch):
    """The unsteered continuation of a prompt is generated once a run, and the NLL of a (prompt,
    continuation) pair scored once: the numbers equal a fresh runner's."""
    from steerkit.steerbench import runner as runner_mod
    from steerkit.steerbench.runner import Job, Runner

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32) * 3, site="block_out", layer=1, attributes=["ones", "sixes"])
    generated, scored = [], []
    real_gen, real_nll = runner_mod.greedy_ids, runner_mod.measures.nll
    monkeypatch.setattr(runner_mod, "greedy_ids", lambda m, t, p, n: generated.append(list(p)) or real_gen(m, t, p, n))
    monkeypatch.setattr(runner_mod.measures, "nll", lambda m, t, p, c: scored.append(len(p)) or real_nll(m, t, p, c))
    r = Runner(model, tok, ["ones", "sixes"], settings, kwargs["judges"])
    first = r.measure([Job(["w3 w4", "w5 w9 w11"]), Job(["w3 w4"], prefix="w2 ")])
    assert generated == [["w3 w4", "w5 w9 w11", "w2 w3 w4"]]  # each distinct prompt once
    again = r.measure([Job(["w5 w9 w11", "w3 w4"])])  # another seed's unsteered run: nothing generated
    assert len(generated) == 1 and again[0][1] == [first[0][1][1], first[0][1][0]]
    scored.clear()
    steered = r.measure([Job(["w3 w4", "w5 w9 w11"], [0.0, 0.0]), Job(["w3 w4"], [2.0, 0.0])], vecs)
    assert steered[0][1] == first[0][1]   # strength 0 gives the unsteered text, whose NLL is kept
    assert sum(scored) <= 1
    fresh = Runner(model, tok, ["ones", "sixes"], settings, kwargs["judges"])
    for got, want in zip(steered, fresh.measure([Job(["w3 w4", "w5 w9 w11"], [0.0, 0.0]),
                                                 Job(["w3 w4"], [2.0, 0.0])], vecs)):
        assert got[1] == want[1] and got[0]["nll"] == pytest.approx(want[0]["nll"], rel=1e-5)


def test_each_method_steers_where_the_development_split_says(tmp_path):
    from steerkit.steerbench import place
    from steerkit.steerbench.runner import Runner

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    settings = BenchSettings(**{**settings.__dict__, "seeds": (0,), "places": ("block_out@0", "mlp_out@1", "block_out@2"),
                                "prompts": 2, "dev_prompts": 2, "dev_per_class": 6})
    prompts = ["w3 w4", "w5 w9 w11", "w12", "w13 w2"]
    # the development prompts are the ones after the test's
    assert place.dev_prompts(prompts, settings) == ["w12", "w13 w2"]
    with pytest.raises(ValueError, match="needs 2 development prompts after the 2 test prompts"):
        place.dev_prompts(prompts[:3], settings)
    assert place.candidates(("auto",), 30) == ["block_out@7", "block_out@12", "block_out@16", "block_out@21",
                                               "attn_out@12", "mlp_out@12"]
    with pytest.raises(ValueError, match="this model has layers 0..2"):
        place.candidates(("block_out@3",), 3)
    with pytest.raises(ValueError, match="places: expected SITE@LAYER"):
        BenchSettings(places=("block_out:3",)).check()
    result = run(model, tok, settings, **{**kwargs, "prompts": prompts})
    choice = result.place_choice
    assert set(choice["chosen"]) == {"mean_diff", "mat"} and result.places == choice["chosen"]
    for m in ("mean_diff", "mat"):  # the chosen place is the best score on the development split
        assert choice["score"][m][result.places[m]] == max(choice["score"][m].values())
        assert all(0.0 <= x <= 1.0 for x in choice["score"][m].values())
        assert [k for k in result.vectors[m]] == [place.parse_place(result.places[m])]
    # the same choice from the development split alone, computed apart
    r = Runner(model, tok, ["ones", "sixes"], result_settings(result), kwargs["judges"])
    assert place.choose(r, _tiny_pool(), ["w12", "w13 w2"], list(settings.places), log=lambda _: None) == choice
    assert result.suggested("mat").provenance["place_chosen_by"]["place"] == result.places["mat"]
    from steerkit.steerbench import report
    assert "Where each method steers" in report.markdown(result)


def result_settings(result):
    return BenchSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in result.settings.items()})


def test_the_third_builtin_attribute_and_its_judge():
    sp = corpus.space_texts()
    assert {k: len(v) for k, v in sp.items()} == {"space": 360, "other": 360}
    others = corpus.sentiment_texts(), corpus.food_texts()
    assert not set(sp["space"] + sp["other"]) & {t for d in others for v in d.values() for t in v}
    assert judges.space(["The telescope showed Saturn and its moons."]) == [pytest.approx(10 * 3 / 7)]
    space_scores, other_scores = judges.space(sp["space"]), judges.space(sp["other"] + corpus.food_texts()["food"])
    assert sum(x > 0 for x in space_scores) > 0.85 * len(space_scores) and not any(other_scores)
    assert not any(judges.space(list(corpus.PROMPTS_NEUTRAL)))  # neutral prompts carry no space words
    assert not any(p in t for p in corpus.PROMPTS_SPACE for t in sp["space"])
    pool = builtin_pool(("sentiment", "food", "space"))
    assert list(dict.fromkeys(r["attribute"] for r in pool)) == ["sentiment", "food", "space"]
    assert builtin_pool() == builtin_pool(("sentiment", "food"))
    with pytest.raises(ValueError, match="the built-in ones are sentiment, food, space"):
        builtin_pool(("tone",))


def test_three_attributes_report_each_pair_and_all_at_once(tmp_path):
    from steerkit.steerbench import report

    model, tok, settings, kwargs = _resume_setup(tmp_path)
    pool = _tiny_pool() + [dict(text=f"w5 w5 w{40 + i} w11", attribute="fives", label=label)
                           for i in range(12) for label in ("positive",)] + [
        dict(text=f"w9 w{40 + i} w12 w13", attribute="fives", label="negative") for i in range(12)]
    settings = BenchSettings(**{**settings.__dict__, "seeds": (0,)})
    result = run(model, tok, settings, **{**kwargs, "pool": pool,
                                          "judges": {**kwargs["judges"], "fives": _share("w5")}})
    for m in settings.methods:
        pairs = sorted(p.attribute for p in result.points if p.method == m and p.kind == "pair")
        assert pairs == ["ones+fives", "ones+sixes", "sixes+fives"]
        for p in (p for p in result.points if p.method == m and p.kind == "pair"):
            assert sum(x != 0.0 for x in p.strength) <= 2 and len(p.strength) == 3
    row = result.to_json()["summary"]["mat/ones"]
    assert {"retention", "retention with sixes", "retention with fives"} <= set(row)
    text = report.markdown(result)
    assert "Each pair steered at once" in text and "| sixes |" in text
