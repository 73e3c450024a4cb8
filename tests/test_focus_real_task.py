"""The travel-review FIT task's plumbing on a tiny checkpoint: splits of unseen cities scored under the
core family only, the warning when the spurious family cannot be learned, and the real-model demo's
runs, table, targets and files (its numbers on SmolLM2 are in test_real_model.py)."""
import json

import pytest

from steerkit import focus
from steerkit.cli import main
from steerkit.focus import reviews
from steerkit.demos.toy import focus_corpus as fc
from steerkit.demos.toy.model import build_tokenizer, random_llama

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tok = build_tokenizer(fc.CORPUS)  # word level: most review words are <unk>, the labels are known
    random_llama(tok, kv_heads=2).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_unseen_values_are_scored_under_the_core_family_only():
    data = reviews.splits(train=40, test=10, seed=3)
    assert focus.core_family_only(data["unseen"], reviews.TASK)
    assert not focus.core_family_only(data["flipped"], reviews.TASK)
    records = focus.build_focus_dataset(data["unseen"], reviews.TASK, focus_types=focus.CORE_FAMILY, per_example="all")
    assert len(records) == 10 * len(focus.CORE_FAMILY) and all(r.target == r.label for r in records)
    with pytest.raises(ValueError, match="no tied label.*core family"):
        focus.build_focus_dataset(data["unseen"], reviews.TASK, per_example="all")


def test_spurious_family_problem_counts_prompts_where_the_features_disagree():
    train = reviews.examples(240, 0.9, seed=0)  # 24 examples where the city points the other way
    one = focus.build_focus_dataset(train, reviews.TASK, per_example=1, seed=0)
    every = focus.build_focus_dataset(train, reviews.TASK, per_example="all", seed=0)
    problem = focus.spurious_family_problem(one)
    against = sum(r.target != r.label for r in one if r.focus_type in focus.SPURIOUS_FAMILY)
    assert problem and f"only {against} of the" in problem and against < focus.data.MIN_CONTRADICTING
    assert focus.spurious_family_problem(every) is None  # 24 x 3 = 72 such prompts
    sft = focus.build_focus_dataset(train, reviews.TASK, focus_types=["none"], per_example=1)
    assert focus.spurious_family_problem(sft) is None  # nothing of the spurious family is trained


def test_fit_warns_before_training_and_eval_focus_scores_unseen_values_on_the_core_family(local_model, tmp_path,
                                                                                        capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(reviews.TASK.to_dict()))
    data = reviews.splits(train=24, test=4, seed=1)
    paths = {k: focus.save_jsonl(v, tmp_path / f"{k}.jsonl") for k, v in data.items()}
    out = tmp_path / "adapter"
    assert main(["fit", "--model", str(local_model), "--task", str(task), "--data", str(paths["train"]), "-o",
                 str(out), "--epochs", "1", "--r", "2", "--alpha", "4", "--quiet", "--per-example", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: only") == 1 and "spurious-family prompts" in err  # once, from the CLI
    assert main(["eval-focus", "--model", str(local_model), "--adapter", str(out), "--task", str(task),
                 "--test", f"flipped={paths['flipped']}", "--test", f"unseen={paths['unseen']}",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert "--test unseen: some city values have no tied label" in capsys.readouterr().out
    count = json.loads((tmp_path / "r.json").read_text())["count"]
    assert set(count["unseen"]) == set(focus.CORE_FAMILY) and set(count["flipped"]) == set(focus.FOCUS_TYPES)
    assert main(["eval-focus", "--model", str(local_model), "--task", str(task), "--types", "focus_s",
                 "--test", f"unseen={paths['unseen']}"]) == 2
    assert "none of --types is in the core family" in capsys.readouterr().err


def test_model_demo_trains_fit_and_sft_per_seed_from_one_base_and_writes_its_files(local_model, tmp_path):
    from steerkit.demos import focus_model as dm

    recipe = dm.FitRecipe(examples=16, test=3, epochs=1, r=2, batch_size=8)
    report = dm.run(str(local_model), seeds=(0, 1), recipe=recipe, log=lambda *a: None)
    assert list(report.runs) == [0, 1]
    for run in report.runs.values():
        assert set(run.reports) == {"FIT", "SFT"} and set(run.seconds) == {"FIT", "SFT"}
        # the kept checkpoint's validation focus accuracy, per method (SFT's: its one type, none)
        types = {m: {k.removeprefix("accuracy_") for k in v if k.startswith("accuracy_")}
                 for m, v in run.val_focus.items()}
        assert set(types) == {"FIT", "SFT"} and types["SFT"] == {"none"} and types["FIT"] <= set(focus.FOCUS_TYPES)
        # the rates tried, from steerkit fit's first, and the one kept among them
        assert all(run.tries[m][0]["lr"] == focus.FocusTrainConfig().lr and run.lr[m] in [t["lr"] for t in run.tries[m]]
                   for m in run.reports)
        for r in run.reports.values():
            assert set(r.accuracy) == set(dm.SPLITS)
            assert set(r.count["unseen"]) == set(focus.CORE_FAMILY) and r.count["flipped"]["focus_s"] == 3
    targets = report.targets()
    assert [(t["method"], t["split"], t["focus_type"]) for t in targets] == [t[:3] for t in dm.TARGETS]
    assert all(t["of"] == 2 and len(t["values"]) == 2 for t in targets)
    text = report.table()
    assert "focus(S)∧ignore(C)" in text and "met on" in text
    paths = report.save(tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["recipe"]["examples"] == 16 and set(saved["runs"]) == {"0", "1"}
    assert saved["runs"]["1"]["val_focus"] == report.runs[1].val_focus and saved["runs"]["1"]["steps"]["FIT"] > 0
    assert saved["runs"]["1"]["tries"] == report.runs[1].tries and "FIT lr/ep" in text
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    # seeds run apart (as a 30-minute seed on a CPU is) make the same report and table when merged
    assert json.loads(json.dumps(dm.ModelFocusReport.from_dict(saved).to_dict())) == saved
    for seed in (0, 1):
        dm.ModelFocusReport(report.model, report.recipe, {seed: report.runs[seed]}).save(tmp_path / f"seed{seed}")
    merged = dm.ModelFocusReport.merge([tmp_path / "seed1", tmp_path / "seed0" / "fit.json"])
    assert list(merged.runs) == [0, 1] and merged.table() == text and merged.targets() == targets
    assert main(["demo", "--focus", "--model", "x", "--merge", str(tmp_path / "seed0"), str(tmp_path / "seed1"),
                 "--out", str(tmp_path / "merged")]) == 0
    assert json.loads((tmp_path / "merged" / "fit.json").read_text()) == saved
    with pytest.raises(ValueError, match="seed\\(s\\) 0 of .* already came from another folder"):
        dm.ModelFocusReport.merge([tmp_path / "seed0", tmp_path / "out"])
    dm.ModelFocusReport(report.model, dm.FitRecipe(examples=17), {2: report.runs[0]}).save(tmp_path / "other")
    with pytest.raises(ValueError, match="another recipe or model"):
        dm.ModelFocusReport.merge([tmp_path / "seed0", tmp_path / "other"])
    with pytest.raises(ValueError, match="holds no fit.json"):
        dm.ModelFocusReport.merge([tmp_path])
    # the quick recipe: FIT alone on two splits, and only the targets it measures
    quick = dm.FitRecipe.quick()
    small = dm.run(str(local_model), seeds=(2,), recipe=dm.FitRecipe(**(vars(quick) | dict(examples=10, test=2,
                                                                                          epochs=1, r=2))),
                   log=lambda *a: None)
    assert set(small.runs[2].reports) == {"FIT"} and set(small.runs[2].reports["FIT"].accuracy) == {"flipped", "unseen"}
    assert {t["method"] for t in small.targets()} == {"FIT"} and "SFT" not in small.table()


def test_model_demo_table_names_the_rate_kept_and_every_rate_tried():
    from steerkit.demos import focus_model as dm

    run = dm.SeedRun({}, lr={"FIT": 3e-4, "SFT": 1e-3}, epochs={"FIT": 6, "SFT": 3},
                     tries={"FIT": [{"lr": 1e-3, "epochs": 3}, {"lr": 3e-4, "epochs": 6}],
                            "SFT": [{"lr": 1e-3, "epochs": 3}]})
    assert dm._rates(run, "FIT") == "0.001/3>0.0003/6*" and dm._rates(run, "SFT") == "0.001/3"
    assert dm._rates(dm.SeedRun({}), "FIT") == "-"
    # in the per-seed table a long rate stays apart from the seconds before it
    accuracy = {"flipped": {t: 1.0 for t in focus.FOCUS_TYPES}}
    run.reports = {m: focus.FocusReport(accuracy, {}) for m in ("FIT", "SFT")}
    run.seconds = {"FIT": 1537.0, "SFT": 163.0}
    text = dm.ModelFocusReport("m", dm.FitRecipe(splits=("flipped",)), {1: run}).table()
    row = next(line for line in text.splitlines() if line.strip().startswith("1 "))
    assert row.split()[-4:] == ["1537", "163", "0.001/3>0.0003/6*", "0.001/3"]


def test_model_demo_takes_the_focus_trainings_epochs_and_lr(monkeypatch, capsys):
    from steerkit.demos import focus_model as dm

    seen = []

    class Report:
        def table(self):
            return "table"

    monkeypatch.setattr(dm, "run", lambda model, seeds, recipe: seen.append((seeds, recipe)) or Report())
    assert main(["demo", "--focus", "--model", "x", "--epochs", "6", "--lr", "2e-3"]) == 0
    assert main(["demo", "--focus", "--model", "x", "--quick"]) == 0
    assert main(["demo", "--focus", "--model", "x", "--quick", "--no-val-flipped"]) == 0
    (seeds, recipe), (quick_seeds, quick), (_, off) = seen
    assert seeds == [0, 1, 2] and recipe == dm.FitRecipe(epochs=6, lr=2e-3)
    assert quick_seeds == [0] and quick == dm.FitRecipe.quick()
    assert off.val_flipped is False and off.config(0, False).val_flipped is False
    assert quick.config(0, False).val_flipped is focus.FocusTrainConfig.val_flipped is True


def test_model_demo_options_belong_together(capsys):
    assert main(["demo", "--focus", "--seeds", "1"]) == 2
    assert "--seeds goes with --focus --model (the toy's FIT demo" in capsys.readouterr().err
    assert main(["demo", "--dtype", "bfloat16"]) == 2
    assert "--dtype goes with --focus --model (FIT on a real model)" in capsys.readouterr().err
    assert main(["demo", "--out", "somewhere"]) == 2  # the MAT-Steer demo writes no folder: refused, not ignored
    assert "--out goes with --focus --model" in capsys.readouterr().err
    assert main(["demo", "--focus", "--model", "x", "--merge", "a", "--seeds", "1"]) == 2
    assert "--seeds does not go with --merge: it trains nothing" in capsys.readouterr().err
    assert main(["demo", "--focus", "--model", "x", "--base-seed", "1"]) == 2
    assert "--base-seed goes with the toy" in capsys.readouterr().err
    # an on/off option is refused off as well as on: --no-val-flipped is a choice, not its absence
    assert main(["demo", "--focus", "--no-val-flipped"]) == 2
    assert "--val-flipped goes with --focus --model" in capsys.readouterr().err
    assert main(["demo", "--focus", "--model", "x", "--merge", "a", "--val-flipped"]) == 2
    assert "--val-flipped does not go with --merge" in capsys.readouterr().err


def test_examples_where_the_features_disagree_can_take_every_focus_type():
    train = reviews.examples(100, 0.9, seed=2)  # 10 disagree
    records = focus.build_focus_dataset(train, reviews.TASK, per_example=2, per_disagreeing="all", seed=0)
    per = {}
    for r in records:
        per.setdefault(r.id, []).append(r)
    disagree = {i for i, rs in per.items() if rs[0].spurious_label != rs[0].label}
    assert len(disagree) == 10 and len(records) == 90 * 2 + 10 * len(focus.FOCUS_TYPES)
    assert all(len({r.focus_type for r in per[i]}) == len(focus.FOCUS_TYPES) for i in disagree)
    assert all(len({r.focus_type for r in rs}) == 2 for i, rs in per.items() if i not in disagree)
    # without it, the draw is what it always was
    plain = focus.build_focus_dataset(train, reviews.TASK, per_example=2, seed=0)
    assert [r.to_dict() for r in plain] == [r.to_dict() for r in
                                            focus.build_focus_dataset(train, reviews.TASK, per_example=2,
                                                                      per_disagreeing=2, seed=0)]
    with pytest.raises(ValueError, match="per_disagreeing: expected 'all' or an int in 1..7"):
        focus.build_focus_dataset(train, reviews.TASK, per_example=2, per_disagreeing=0)


def test_fit_trains_a_bfloat16_base_with_float32_adapters(local_model, tmp_path):
    """--dtype bfloat16: the base's weights in bf16 (half the memory; the focus step 1.7x faster on an
    avx512_bf16 CPU), the adapters trained and saved in float32 as PEFT keeps them."""
    from safetensors.torch import load_file

    task = tmp_path / "task.json"
    task.write_text(json.dumps(reviews.TASK.to_dict()))
    data = focus.save_jsonl(reviews.splits(train=24, test=2, seed=1)["train"], tmp_path / "train.jsonl")
    out = tmp_path / "adapter"
    assert main(["fit", "--model", str(local_model), "--task", str(task), "--data", str(data), "-o", str(out),
                 "--epochs", "1", "--r", "2", "--alpha", "4", "--quiet", "--dtype", "bfloat16"]) == 0
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and {str(w.dtype) for w in weights.values()} == {"torch.float32"}
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)  # B starts at 0: it trained
    assert json.loads((out / "steerkit_focus.json").read_text())["base_dtype"] == "bfloat16"
    with pytest.raises(SystemExit) as exited:  # argparse's choices: one line, exit 2
        main(["fit", "--model", str(local_model), "--task", str(task), "--data", str(data), "-o",
              str(tmp_path / "x"), "--dtype", "half"])
    assert exited.value.code == 2
