"""FIT data: templates, the label rule, seeded sampling, splits by spurious rate, JSONL, chat templates,
and the errors a user meets first."""
import pytest

from steerkit import focus
from steerkit.focus import templates
from steerkit.focus.encode import encode, pad_batch
from steerkit.demos.toy import focus_corpus as fc
from steerkit.demos.toy.model import build_tokenizer

TASK = fc.TASK


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(fc.CORPUS)


def test_every_instruction_type_has_five_wordings_and_disjoint_held_out_ones():
    assert templates.FOCUS_TYPES == templates.CORE_FAMILY + templates.SPURIOUS_FAMILY
    for t in templates.FOCUS_TYPES[1:]:
        train, held = templates.wordings(t), templates.wordings(t, held_out=True)
        assert len(set(train)) >= 5 and len(set(held)) >= 2, t
        assert not set(train) & set(held), t
        for w in train + held:
            text = templates.render(w, "the sentiment", "the box colour")
            assert "{" not in text and text.strip()
            # a focus type names the features it is about, and no other
            names = {"C": "the sentiment" in text, "S": "the box colour" in text}
            assert names == {"C": "c" in t.split("_"), "S": "s" in t.split("_")}, (t, text)
    assert templates.wordings("none") == [""]
    with pytest.raises(ValueError, match="focus_type"):
        templates.wordings("focus_x")


def test_label_rule_targets_y_for_the_core_family_and_y_s_for_the_spurious_family():
    ex = fc.examples(40, 0.5, seed=3)
    recs = focus.build_focus_dataset(ex, TASK, per_example="all")
    assert len(recs) == 40 * 7
    for r in recs:
        e = ex[r.id]
        y_s = fc.COLOURS[e["features"]["colour"]]
        assert r.label == e["label"] and r.spurious_label == y_s
        assert r.target == (e["label"] if r.focus_type in focus.CORE_FAMILY else y_s), r
        assert r.choices == ["positive", "negative"]
        # prompt = task instruction + input + focus instruction, then the answer cue
        assert r.prompt.startswith(TASK.instruction) and e["input"] in r.prompt and r.prompt.endswith("Answer:")
        wording = templates.render(templates.wordings(r.focus_type)[r.wording], "the sentiment", "the box colour")
        assert wording in r.prompt
    # disagreeing examples are where the two families differ
    assert any(r.target != r.label for r in recs) and any(r.target == r.label for r in recs)


def test_sampling_is_seeded_and_draws_distinct_types_per_example():
    ex = fc.examples(30, 0.9, seed=1)
    a = focus.build_focus_dataset(ex, TASK, per_example=3, seed=7)
    b = focus.build_focus_dataset(ex, TASK, per_example=3, seed=7)
    c = focus.build_focus_dataset(ex, TASK, per_example=3, seed=8)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    assert [r.prompt for r in a] != [r.prompt for r in c]
    for i in range(30):
        types = [r.focus_type for r in a if r.id == i]
        assert len(types) == len(set(types)) == 3
    sft = focus.build_focus_dataset(ex, TASK, focus_types=["none"])
    assert {r.focus_type for r in sft} == {"none"} and all(r.target == r.label for r in sft)
    held = focus.build_focus_dataset(ex, TASK, per_example="all", held_out_wordings=True)
    train_wordings = {templates.render(w, "the sentiment", "the box colour")
                      for t in templates.FOCUS_TYPES[1:] for w in templates.wordings(t)}
    assert all(r.held_out for r in held)
    assert not any(w in r.prompt for r in held if r.focus_type != "none" for w in train_wordings)


def test_with_spurious_rate_sets_the_agreement_exactly():
    pool = fc.examples(400, 0.5, seed=4)
    for rate in (0.0, 0.5, 0.9, 1.0):
        part = focus.with_spurious_rate(pool, TASK, rate, n=100, seed=1)
        assert len(part) == 100 and focus.spurious_rate(part, TASK) == pytest.approx(rate)
    with pytest.raises(ValueError, match="cannot draw"):
        focus.with_spurious_rate(pool, TASK, 1.0, n=300)
    with pytest.raises(ValueError, match="rate"):
        focus.with_spurious_rate(pool, TASK, 1.5)
    assert focus.spurious_rate(fc.examples(200, 0.9, seed=2), TASK) == pytest.approx(0.9)


def test_clear_errors_for_bad_tasks_and_examples(tmp_path):
    good = {"input": "the food was great .", "label": "positive", "features": {"sentiment": "positive", "colour": "blue"}}
    with pytest.raises(ValueError, match="no tied label"):
        focus.build_focus_dataset([good | {"features": {"sentiment": "positive", "colour": "green"}}], TASK)
    with pytest.raises(ValueError, match="no feature 'colour'"):
        focus.build_focus_dataset([good | {"features": {"sentiment": "positive"}}], TASK)
    with pytest.raises(ValueError, match="not one of the task's labels"):
        focus.build_focus_dataset([good | {"label": "neutral"}], TASK)
    with pytest.raises(ValueError, match="missing features"):
        focus.build_focus_dataset([{"input": "x", "label": "positive"}], TASK)
    with pytest.raises(ValueError, match="labels"):
        focus.FocusTask("Classify.", [], "sentiment", "colour", {"blue": "positive"})
    with pytest.raises(ValueError, match="spurious_labels: empty"):
        focus.FocusTask("Classify.", ["a", "b"], "sentiment", "colour", {})
    with pytest.raises(ValueError, match="outside"):
        focus.FocusTask("Classify.", ["a", "b"], "sentiment", "colour", {"blue": "c"})
    with pytest.raises(ValueError, match="different features"):
        focus.FocusTask("Classify.", ["a", "b"], "x", "x", {"blue": "a"})
    with pytest.raises(ValueError, match="no examples"):
        focus.build_focus_dataset([], TASK)
    with pytest.raises(ValueError, match="per_example"):
        focus.build_focus_dataset([good], TASK, per_example=9)
    with pytest.raises(ValueError, match="focus_types"):
        focus.build_focus_dataset([good], TASK, focus_types=["focus_x"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        focus.load_examples(bad)
    with pytest.raises(FileNotFoundError):
        focus.load_examples(tmp_path / "missing.jsonl")


def test_jsonl_in_and_out_round_trips(tmp_path):
    ex = fc.examples(12, 0.9, seed=5)
    src = focus.save_jsonl(ex, tmp_path / "ex.jsonl")
    task_path = tmp_path / "task.json"
    task_path.write_text(__import__("json").dumps(TASK.to_dict()))
    assert focus.FocusTask.load(task_path) == TASK
    recs = focus.build_focus_dataset(src, focus.FocusTask.load(task_path), per_example=2, seed=3)
    assert [r.to_dict() for r in recs] == [r.to_dict() for r in focus.build_focus_dataset(ex, TASK, per_example=2, seed=3)]
    out = focus.save_jsonl(recs, tmp_path / "recs.jsonl")
    assert [r.to_dict() for r in focus.load_records(out)] == [r.to_dict() for r in recs]
    with pytest.raises(ValueError, match="not among its choices"):
        focus.load_records([{"prompt": "p", "target": "c", "choices": ["a", "b"], "focus_type": "none"}])


def test_chat_template_is_used_when_the_tokenizer_has_one(tok):
    chat = build_tokenizer(fc.CORPUS)
    chat.chat_template = ("{% for m in messages %}<bos> {{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                          "{% if add_generation_prompt %}assistant :{% endif %}")
    ex = fc.examples(2, 1.0, seed=0)
    (r,) = focus.build_focus_dataset(ex[:1], TASK, focus_types=["focus_c"], tokenizer=chat)
    assert r.chat and r.answer_prefix == "" and r.prompt.startswith("<bos> user : ") and r.prompt.endswith("assistant :")
    p, c = encode(chat, r.prompt, r.completion(), chat=True)
    assert p.count(chat.bos_token_id) == 1  # the template's own BOS, not a second one
    assert chat.convert_ids_to_tokens(c) == [r.target]
    (plain,) = focus.build_focus_dataset(ex[:1], TASK, focus_types=["focus_c"], tokenizer=tok)
    assert not plain.chat and plain.answer_prefix == " "


def test_encode_splits_the_completion_and_truncates_the_prompt_from_the_left(tok):
    (r,) = focus.build_focus_dataset(fc.examples(1, 1.0), TASK, focus_types=["focus_s"])
    p, c = encode(tok, r.prompt, r.completion())
    assert tok.convert_ids_to_tokens(c) == [r.target] and p[0] == tok.bos_token_id
    p8, c8 = encode(tok, r.prompt, r.completion(), max_length=8)
    assert len(p8) + len(c8) == 8 and p8[0] == tok.bos_token_id and p8[-3:] == p[-3:] and c8 == c
    with pytest.raises(ValueError, match="max_length"):
        encode(tok, r.prompt, r.completion(), max_length=1)
    batch = pad_batch([(p, c), (p[:5], c)], pad_id=0)
    assert batch["labels"][0].ne(-100).sum() == 1 and batch["labels"][1, 5] == c[0]
    assert batch["attention_mask"][1].sum() == 6


def test_flipped_copies_swap_the_named_spurious_value_for_one_tied_to_the_other_label():
    from steerkit.focus import reviews
    from steerkit.focus.data import flipped_copies

    examples = reviews.examples(40, 0.8, seed=3)
    records = focus.build_focus_dataset(examples, reviews.TASK, per_example=2, per_disagreeing="all", seed=0)
    copies = flipped_copies(records, reviews.TASK, seed=0)
    agreeing = [e for e in examples if reviews.TASK.spurious_labels[e["features"]["city"]] == e["label"]]
    types = {r.focus_type for r in records}
    # one copy per agreeing example, under every focus type the records hold
    assert len(copies) == len(agreeing) * len(types) and {r.focus_type for r in copies} == types
    by_input = {}
    for r in copies:
        by_input.setdefault(r.input, []).append(r)
    assert len(by_input) == len(agreeing)
    tied = reviews.TASK.spurious_labels
    for e in agreeing:
        city = e["features"]["city"]
        (text,) = [e["input"].replace(city, c) for c in tied
                   if tied[c] != e["label"] and e["input"].replace(city, c) in by_input]
        for r in by_input[text]:
            assert r.features_disagree and r.label == e["label"] and r.spurious_label != r.label
            assert r.target == (r.spurious_label if r.focus_type in templates.SPURIOUS_FAMILY else r.label)
            assert text in r.prompt
    # seeded, and the examples whose features already disagree are not copied
    assert flipped_copies(records, reviews.TASK, seed=0) == copies
    assert not flipped_copies([r for r in records if r.features_disagree], reviews.TASK)
    # a value the text does not name gives no copy (and no error)
    unnamed = [dict(e, input=e["input"].replace(e["features"]["city"], "the city")) for e in examples]
    assert flipped_copies(focus.build_focus_dataset(unnamed, reviews.TASK, seed=0), reviews.TASK) == []


def test_flipped_copies_match_whole_words_only():
    from steerkit.focus.data import flipped_copies

    task = focus.FocusTask("Say which.", ("yes", "no"), "core", "tag", {"red": "yes", "blue": "no"})
    examples = [{"input": "a reddish fox in a red box", "label": "yes", "features": {"core": "yes", "tag": "red"}},
                {"input": "a reddish fox", "label": "yes", "features": {"core": "yes", "tag": "red"}}]
    copies = flipped_copies(focus.build_focus_dataset(examples, task, focus_types=("focus_s",), seed=0), task)
    assert [r.input for r in copies] == ["a reddish fox in a blue box"]
    assert copies[0].target == "no" and copies[0].label == "yes"
