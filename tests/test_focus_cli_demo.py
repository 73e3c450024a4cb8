"""`steerkit fit` / `eval-focus` end to end on a tiny local checkpoint, and the focus toy demo."""
import json

import pytest

from steerkit import focus
from steerkit.focus import FocusTrainConfig
from steerkit.cli import main
from steerkit.demos.toy import focus_corpus as fc
from steerkit.demos.toy.model import build_tokenizer, random_llama

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tok = build_tokenizer(fc.CORPUS)
    random_llama(tok, kv_heads=2).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_fit_then_eval_focus_from_the_command_line(local_model, tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(fc.TASK.to_dict()))
    train = focus.save_jsonl(fc.examples(48, 0.9, seed=1), tmp_path / "train.jsonl")
    flipped = focus.save_jsonl(fc.examples(8, 0.0, seed=2), tmp_path / "flipped.jsonl")
    out = tmp_path / "adapter"
    assert main(["fit", "--model", str(local_model), "--task", str(task), "--data", str(train), "-o", str(out),
                 "--epochs", "1", "--batch-size", "8", "--r", "4", "--alpha", "8", "--quiet", "--lora-head",
                 "--per-example", "1",
                 "--save-records", str(tmp_path / "records.jsonl")]) == 0
    assert (out / "adapter_config.json").is_file() and (out / "focus_task.json").is_file()
    assert "lm_head" in json.loads((out / "adapter_config.json").read_text())["target_modules"]  # --lora-head
    # one focus type per example, all seven on the 5 where the colour points to the other label
    assert len(focus.load_records(tmp_path / "records.jsonl")) == 43 + 5 * 7
    said = capsys.readouterr()
    assert "validation loss of the kept checkpoint" in said.out and "validation focus accuracy" in said.out
    # each problem the training found (saved in the adapter's log) is said in one warning line
    log = json.loads((out / "steerkit_focus.json").read_text())
    assert log["val_focus"]["per_type"] and all(f"steerkit fit: warning: {p}\n" in said.err for p in log["problems"])
    # a try that left a family unfollowed was trained again at the next rate, and each try is said
    assert [t["lr"] for t in log["tries"]][:1] == [FocusTrainConfig().lr] and log["lr"] in [t["lr"] for t in log["tries"]]
    assert len(log["tries"]) == 1 + bool(log["tries"][0]["problems"])
    assert (f"tried lr {FocusTrainConfig().retry_lrs[0]:g}" in said.out) == (len(log["tries"]) > 1)
    assert main(["eval-focus", "--model", str(local_model), "--adapter", str(out), "--task", str(task),
                 "--test", f"flipped={flipped}", "--unseen", str(flipped), "--json", str(tmp_path / "r.json"),
                 "--plot", str(tmp_path / "r.png")]) == 0
    text = capsys.readouterr().out
    assert "focus(S)∧ignore(C)" in text and "flipped" in text and "unseen" in text
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved["accuracy"]) == {"flipped", "unseen"} and saved["count"]["flipped"]["focus_c"] == 8
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_errors_name_the_problem(local_model, tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"instruction": "x", "labels": ["a"], "core": "c", "spurious": "s",
                                "spurious_labels": {"v": "a"}}))
    assert main(["fit", "--model", str(local_model), "--task", str(task), "--data", str(tmp_path / "none.jsonl"),
                 "-o", str(tmp_path / "o")]) == 2
    assert "labels: expected at least two" in capsys.readouterr().err
    task.write_text(json.dumps(fc.TASK.to_dict()))
    assert main(["eval-focus", "--model", str(local_model), "--task", str(task), "--test", "nosplit"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    import os

    from steerkit.demos import focus_toy as demo_focus

    old = os.environ.get("STEERKIT_CACHE")
    os.environ["STEERKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return demo_focus.run(quick=True, log=lambda *a: None, progress=False)
    finally:
        if old is None:
            os.environ.pop("STEERKIT_CACHE")
        else:
            os.environ["STEERKIT_CACHE"] = old


def test_focus_demo_fit_follows_the_instruction_where_the_colour_disagrees(demo_report):
    fit, sft = demo_report.fit.accuracy, demo_report.sft.accuracy
    # before any tuning the base answers both questions it was pretrained on; a base stuck on its plateau
    # (the colour learned, the tone at chance) would make every row below meaningless
    assert demo_report.base["tone"] >= 0.95 and demo_report.base["colour"] >= 0.95, demo_report.base
    # the paper's FIT result: on the flipped split (the colour always points to the other label) FIT reads
    # the sentiment when told to focus on it, and the colour's tied label when told to focus on that.
    # The bounds hold on every base of seeds 0-4 at both transformers ends, not on the default one alone
    # (README: the lowest were focus(C) 0.933, one type 0.833, the mean over seven 0.948; this base: 1.000)
    assert fit["flipped"]["focus_c"] >= 0.9, fit["flipped"]
    for t in focus.FOCUS_TYPES:  # every instruction is followed against the colour
        assert fit["flipped"][t] >= 0.8, (t, fit["flipped"])
    assert demo_report.fit.mean("flipped") >= 0.9, fit["flipped"]
    for t in focus.FOCUS_TYPES:  # where the colour agrees with the sentiment, every instruction is followed
        assert fit["higher"][t] >= 0.9, (t, fit["higher"])
    assert sft["higher"]["none"] >= 0.9
    # SFT, tuned without focus instructions, drops on the flipped split where the instruction asks for the
    # colour's label: it keeps answering the sentiment
    assert sft["flipped"]["focus_s"] <= 0.6, sft["flipped"]  # 0.500 at most over bases 0-4
    # the labels are learned as words, not only ranked above each other: with the output head left
    # without LoRA, the base's own answer words kept the mass and this was 3.4 nats (issue 17)
    assert demo_report.val_loss["FIT"] < 0.05, demo_report.val_loss
    # SFT's core-family accuracy on the flipped split is NOT asserted: whether plain SFT takes the colour
    # shortcut depends on the base model's seed on this toy (README, issue 5; `--base-seed` measures it)
    assert set(fit) == set(sft) == {"same", "higher", "lower", "flipped", "unseen"}
    assert "all types" in demo_report.table()


def test_focus_demo_fit_follows_focus_s_against_the_colour(demo_report):
    fit = demo_report.fit.accuracy
    assert fit["flipped"]["focus_s"] >= 0.9, fit["flipped"]
    # over the seven types FIT stays well above SFT, which keeps answering the sentiment
    # (0.333 at the least over bases 0-4)
    assert demo_report.fit.mean("flipped") - demo_report.sft.mean("flipped") >= 0.25, demo_report.flipped()


def test_bases_table_counts_only_bases_that_read_both_features():
    from steerkit.demos.focus_toy import FocusDemoReport, bases_table

    def report(tone, fit_c, fit_s, sft_none):
        types = dict.fromkeys(focus.FOCUS_TYPES, 1.0)
        fit = focus.FocusReport({"flipped": types | {"focus_c": fit_c, "focus_s": fit_s}}, {})
        sft = focus.FocusReport({"flipped": types | {"none": sft_none, "focus_s": 0.0}}, {})
        return FocusDemoReport(fit, sft, base={"tone": tone, "colour": 1.0})

    reports = {0: report(1.0, 1.0, 0.95, 1.0), 1: report(0.5, 1.0, 1.0, 0.2), 2: report(1.0, 0.6, 1.0, 0.3),
               3: report(0.95, 0.9, 0.9, 0.1)}
    text = bases_table(reports)
    assert "of 3 bases that read both features (of 4)" in text
    assert "FIT >= 0.9 under focus(C) and focus(S) on 2;" in text and "(the colour taken) on 2;" in text
    assert text.endswith("both at once on 1")
    row = next(line for line in text.splitlines() if line.split()[0] == "2")
    assert row.split()[1:5] == ["1.000", "1.000", "0.600", "1.000"]
    assert reports[2].flipped()["sft_all"] == pytest.approx((5 * 1.0 + 0.3 + 0.0) / 7)


def test_base_seed_belongs_to_the_focus_demo(capsys):
    assert main(["demo", "--base-seed", "1"]) == 2
    assert "--base-seed goes with --focus" in capsys.readouterr().err


def test_focus_toy_vocabulary_covers_its_pretraining_and_test_texts():
    from steerkit.demos.toy.model import build_tokenizer

    tok = build_tokenizer(fc.CORPUS)
    texts = [p + " " + a for p, a in fc.pretraining_texts(200, seed=3)]
    texts += [r["input"] for r in fc.examples(50, 0.5, seed=4)]
    texts += [r.prompt + " " + r.target for r in fc.reader_questions(20)]
    for t in texts:
        assert tok.unk_token_id not in tok(t)["input_ids"], t


def test_base_reading_asks_each_review_twice_and_an_untrained_model_reads_at_chance(local_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steerkit.demos import focus_toy as demo_focus

    records = fc.reader_questions(30)
    assert len(records) == 60 and [r.id for r in records[:4]] == [0, 0, 1, 1]
    for tone, colour in zip(records[::2], records[1::2]):
        assert tone.input == colour.input and tone.focus_type in focus.CORE_FAMILY
        assert colour.focus_type in focus.SPURIOUS_FAMILY
        assert tone.target == fc.READER_ANSWERS[tone.label] and tone.choices == ["good", "bad"]
        box = next(c for c in fc.COLOURS if f" {c} box" in colour.input)
        assert colour.target == box and colour.choices == ["blue", "red"]
    model = AutoModelForCausalLM.from_pretrained(str(local_model))
    reads = demo_focus.base_reading(model, AutoTokenizer.from_pretrained(str(local_model)), 60)
    assert set(reads) == {"tone", "colour"} and max(reads.values()) < 0.8, reads
