"""FIT scoring against a hand-computed case, the report, and LoRA training: loss on the target only,
seeded, and a saved adapter that PEFT reloads to the same predictions."""
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch

from steerkit import focus
from steerkit.focus.data import FocusRecord
from steerkit.demos.toy import focus_corpus as fc
from steerkit.demos.toy.model import build_tokenizer

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(fc.CORPUS)


class Bigram(torch.nn.Module):
    """logits at position t depend only on the token at t: a table we can score by hand."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


def test_constrained_scoring_matches_a_hand_computed_case(tok):
    v = len(tok)
    ids = {w: tok.convert_tokens_to_ids(w) for w in ("box", "Answer", ":", "positive", "negative", "red")}
    table = torch.zeros(v, v)
    table[ids[":"], ids["positive"]] = 1.0   # after ":" the first token prefers "negative" ...
    table[ids[":"], ids["negative"]] = 2.0
    table[ids["negative"], ids["red"]] = -3.0  # ... but "negative red" then pays for its second token
    table[ids["negative"], ids["box"]] = 4.0
    model = Bigram(table)
    rec = FocusRecord(0, "", "none", 0, False, "Answer:", "positive", "positive", "positive",
                      ["positive", "negative red", "negative"])
    (scores,) = focus.score_choices(model, tok, [rec])
    z = math.log(v - 2 + math.e + math.e ** 2)  # normaliser of the row after ":"
    z_neg = math.log(v - 2 + math.e ** -3 + math.e ** 4)  # ... and after "negative"
    hand = [1.0 - z, (2.0 - z) + (-3.0 - z_neg), 2.0 - z]
    assert scores == pytest.approx(hand, abs=1e-5)
    assert focus.predict(model, tok, [rec]) == ["negative"]
    rec.choices = ["positive", "negative red"]
    assert focus.predict(model, tok, [rec]) == ["positive"]  # the summed log-likelihood decides, not the first token
    # batching and padding do not change a score
    many = [rec] * 5 + [FocusRecord(1, "", "none", 0, False, "it came in a red box . Answer:", "positive", "positive",
                                    "positive", ["positive", "negative red"])]
    batched = focus.score_choices(model, tok, many, batch_size=3)
    assert batched[0] == pytest.approx(focus.score_choices(model, tok, [rec])[0], abs=1e-6)


def test_one_token_choices_are_scored_from_one_forward_as_hand_computed(tok):
    v = len(tok)
    ids = {w: tok.convert_tokens_to_ids(w) for w in (":", "positive", "negative", "red")}
    table = torch.zeros(v, v)
    table[ids[":"], ids["positive"]] = 1.0
    table[ids[":"], ids["negative"]] = 2.0
    rows_seen = []

    class Counting(Bigram):
        def forward(self, input_ids, attention_mask=None):
            rows_seen.append(input_ids.shape[0])
            return super().forward(input_ids, attention_mask)

    model = Counting(table)
    z = math.log(v - 2 + math.e + math.e ** 2)
    recs = [FocusRecord(k, "", "none", 0, False, "Answer:", "positive", "positive", "positive", ["positive", "negative"])
            for k in range(3)]
    mixed = FocusRecord(3, "", "none", 0, False, "Answer:", "positive", "positive", "positive",
                        ["positive", "negative red"])  # a two-token choice: one row per choice
    scores = focus.score_choices(model, tok, recs + [mixed], batch_size=16)
    assert scores[:3] == [pytest.approx([1.0 - z, 2.0 - z], abs=1e-5)] * 3
    assert scores[3][0] == pytest.approx(1.0 - z, abs=1e-5)
    assert sum(rows_seen) == 3 + 2  # one row for each one-token record, one per choice for the other


def test_report_counts_per_split_and_type_and_writes_table_json_and_plot(tok, tmp_path):
    recs = focus.build_focus_dataset(fc.examples(6, 0.5, seed=1), fc.TASK, focus_types=["focus_c", "focus_s"],
                                     per_example="all")
    table = torch.zeros(len(tok), len(tok))
    table[tok.convert_tokens_to_ids(":"), tok.convert_tokens_to_ids("positive")] = 5.0  # always "positive"
    report = focus.evaluate(Bigram(table), tok, {"a": recs, "b": recs[:4]})
    for split, rs in (("a", recs), ("b", recs[:4])):
        for t in ("focus_c", "focus_s"):
            mine = [r for r in rs if r.focus_type == t]
            assert report.count[split][t] == len(mine)
            assert report.accuracy[split][t] == pytest.approx(sum(r.target == "positive" for r in mine) / len(mine))
    assert set(report.predictions["a"]) == {"positive"}
    text = report.table()
    assert "focus(C)" in text and "focus(S)" in text and text.splitlines()[0].split()[-2:] == ["a", "b"]
    saved = json.loads(report.save_json(tmp_path / "r.json").read_text())
    assert saved["accuracy"] == report.accuracy and len(saved["predictions"]["a"]) == len(recs)
    pytest.importorskip("matplotlib")
    png = report.plot(tmp_path / "r.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def _tiny_llama(tok, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_lora_training_learns_saves_and_reloads_with_peft(tok, tmp_path):
    from peft import PeftModel

    records = focus.build_focus_dataset(fc.examples(80, 1.0, seed=2), fc.TASK, focus_types=["focus_s"], seed=0)
    test = focus.build_focus_dataset(fc.examples(20, 0.5, seed=3), fc.TASK, focus_types=["focus_s"],
                                     per_example="all")
    base_params = {k: v.clone() for k, v in _tiny_llama(tok).state_dict().items()}
    cfg = focus.FocusTrainConfig(epochs=2, lr=5e-3, batch_size=8, progress=False, patience=None, max_length=None,
                                 select="loss")
    result = focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=4, alpha=8), config=cfg,
                         output_dir=tmp_path / "adapter")
    model = result.model
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert result.steps > 0 and evals and result.best_val_loss == pytest.approx(min(evals))
    # only the adapters train; the base weights are untouched
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    merged_base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                   for k, v in model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(merged_base[k], v) for k, v in base_params.items())
    assert {"adapter_config.json", "adapter_model.safetensors", "steerkit_focus.json"} <= \
        {p.name for p in (tmp_path / "adapter").iterdir()}
    preds = focus.predict(model, tok, test)
    scores = focus.score_choices(model, tok, test)
    reloaded = PeftModel.from_pretrained(_tiny_llama(tok), str(tmp_path / "adapter")).eval()
    assert focus.predict(reloaded, tok, test) == preds
    flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
    assert flat(focus.score_choices(reloaded, tok, test)) == pytest.approx(flat(scores), abs=1e-5)


def test_training_is_seeded_and_the_loss_covers_only_the_target(tok):
    records = focus.build_focus_dataset(fc.examples(40, 0.9, seed=2), fc.TASK, seed=0)
    cfg = focus.FocusTrainConfig(epochs=1, lr=1e-3, batch_size=8, progress=False, patience=None, max_length=None)
    a = focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=2, alpha=4), config=cfg)
    b = focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=2, alpha=4), config=cfg)
    la = {k: v for k, v in a.model.state_dict().items() if "lora_" in k}
    lb = {k: v for k, v in b.model.state_dict().items() if "lora_" in k}
    assert la and all(torch.equal(la[k], lb[k]) for k in la)
    # the validation loss the Trainer reports is the NLL of the target tokens alone
    from steerkit.focus.encode import encode
    from steerkit.focus.trainer import split_validation

    _, val = split_validation(records, cfg.val_fraction, cfg.seed, cfg.val_disagreeing)
    nll = -sum(focus.score_choices(a.model, tok, [FocusRecord(**(r.to_dict() | {"choices": [r.target]}))])[0][0]
               for r in val) / len(val)
    assert a.best_val_loss == pytest.approx(nll, rel=1e-4)


def test_a_stratified_validation_split_holds_out_examples_whose_features_disagree():
    from steerkit.focus import reviews
    from steerkit.focus.trainer import split_validation

    records = focus.build_focus_dataset(reviews.examples(240, 0.9, seed=0), reviews.TASK, per_example=2,
                                        per_disagreeing="all", seed=0)
    against = {r.id for r in records if r.spurious_label != r.label}
    assert len(against) == 24
    plain = split_validation(records, 0.1, seed=5)
    assert split_validation(records, 0.1, seed=5, disagreeing=0) == plain  # 0: the plain split, unchanged
    for want, held in ((4, 4), (1, 2), (50, 12)):  # at least `want`, at least the fraction, at most half
        train, val = split_validation(records, 0.1, seed=5, disagreeing=want)
        val_ids, train_ids = {r.id for r in val}, {r.id for r in train}
        assert not val_ids & train_ids and len(train) + len(val) == len(records)
        assert len(val_ids & against) == held and len(val_ids - against) == round(0.1 * 216)


def test_lora_settings_reject_bad_values():
    with pytest.raises(ValueError, match="rank"):
        focus.LoraSettings(r=0).peft_config()
    with pytest.raises(ValueError, match="dropout"):
        focus.LoraSettings(dropout=1.0).peft_config()
    cfg = focus.LoraSettings(r=16, alpha=32).peft_config()
    assert cfg.r == 16 and cfg.lora_alpha == 32


def test_lora_on_the_head_needs_the_models_names_and_adds_the_head_to_the_targets():
    with pytest.raises(ValueError, match="head: LoRA on the output head needs"):
        focus.LoraSettings(head=True).peft_config()
    with pytest.raises(ValueError, match="linear layer names"):
        focus.LoraSettings(head=True).peft_config(head_name="lm_head")
    with pytest.raises(ValueError, match="cannot add the output head to the pattern"):
        focus.LoraSettings(head=True, target_modules=".*proj").peft_config(head_name="lm_head")
    cfg = focus.LoraSettings(head=True, target_modules=("q_proj", "v_proj")).peft_config(head_name="lm_head")
    assert set(cfg.target_modules) == {"q_proj", "v_proj", "lm_head"}


def test_lora_on_the_head_trains_the_head_fused_as_unfused_and_reloads(tok, tmp_path, monkeypatch):
    from peft import PeftModel

    from steerkit.hf import attention

    shared_heads = []  # fused: the tiny Llama's 2 key/value heads are shared inside SDPA while it trains
    sdpa_gqa = attention._sdpa_gqa
    monkeypatch.setattr(attention, "_sdpa_gqa", lambda *a, **k: shared_heads.append(1) or sdpa_gqa(*a, **k))

    from steerkit.focus.trainer import wrap_lora

    wrapped = wrap_lora(_tiny_llama(tok), focus.LoraSettings(r=2, head=True))
    adapted = {n.rsplit(".", 1)[-1] for n, m in wrapped.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}
    plain = wrap_lora(_tiny_llama(tok), focus.LoraSettings(r=2))
    assert "lm_head" not in {n.rsplit(".", 1)[-1] for n, m in plain.named_modules() if hasattr(m, "lora_A")}

    records = focus.build_focus_dataset(fc.examples(40, 0.9, seed=2), fc.TASK, seed=0)
    test = focus.build_focus_dataset(fc.examples(10, 0.5, seed=3), fc.TASK, per_example="all")
    lora = focus.LoraSettings(r=2, alpha=4, head=True)
    runs = {}
    for fused in (True, False):
        cfg = focus.FocusTrainConfig(epochs=1, lr=5e-3, batch_size=8, progress=False, patience=None,
                                     max_length=None, fused_lora=fused)
        shared_heads.clear()
        runs[fused] = focus.train(_tiny_llama(tok), tok, records, lora=lora, config=cfg,
                                  output_dir=tmp_path / f"adapter-{fused}")
        assert bool(shared_heads) == fused
        assert runs[fused].model.get_base_model().config._attn_implementation == "sdpa"  # as it was loaded
    head_b = [p for n, p in runs[True].model.named_parameters() if "lm_head" in n and "lora_B" in n]
    assert head_b and head_b[0].abs().max() > 0  # B starts at zero: the head's adapter trained
    weights = [{k: v for k, v in r.model.state_dict().items() if "lora_" in k} for r in runs.values()]
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=1e-4, atol=1e-5, msg=k)
    reloaded = PeftModel.from_pretrained(_tiny_llama(tok), str(tmp_path / "adapter-True")).eval()
    assert focus.predict(reloaded, tok, test) == focus.predict(runs[True].model, tok, test)


class _LogitsOnly(torch.nn.Module):
    """Hides the LM head, so scoring falls back to the full logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("family", ["llama", "gemma2", "llama+lora"])
def test_scoring_on_label_rows_only_equals_scoring_from_full_logits(tok, family):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    if family == "gemma2":  # final logit soft-capping applies on the gathered rows too
        torch.manual_seed(0)
        model = Gemma2ForCausalLM(Gemma2Config(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, final_logit_softcapping=2.0, pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()
    else:
        model = _tiny_llama(tok)
    if family == "llama+lora":
        model = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False))
    records = focus.build_focus_dataset(fc.examples(6, 0.5, seed=4), fc.TASK, per_example=2, seed=1)
    for r in records[:3]:
        r.choices = ["positive", "negative red", "negative"]  # a two-token choice among them
    lean = focus.score_choices(model, tok, records, batch_size=5)
    full = focus.score_choices(_LogitsOnly(model), tok, records, batch_size=5)
    flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
    assert flat(lean) == pytest.approx(flat(full), abs=1e-4)


def test_the_checkpoint_kept_follows_the_validation_focus_accuracy_and_a_model_at_chance_is_named(tok):
    records = focus.build_focus_dataset(fc.examples(40, 0.8, seed=2), fc.TASK, per_example=2, per_disagreeing="all",
                                        seed=0)
    mixed_val = focus.build_focus_dataset(fc.examples(12, 0.5, seed=5), fc.TASK, per_example="all", seed=0)
    cfg = focus.FocusTrainConfig(epochs=2, lr=5e-3, batch_size=8, progress=False, patience=None, max_length=None,
                                 eval_every=2)
    result = focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=2, alpha=4), config=cfg)
    hist = result.val_focus_history
    assert len(hist) == len([h for h in result.history if "eval_loss" in h]) >= 3
    best = max(hist, key=lambda h: h["score"])  # the first of equal scores, as the Trainer keeps
    assert result.best_val_loss == pytest.approx(best["loss"])
    assert all(h["score"] == pytest.approx(h["focus_accuracy"], abs=1e-4) for h in hist)
    # the kept checkpoint measured again after training: the score it was kept by
    assert result.val_focus.mean == pytest.approx(best["focus_accuracy"])
    # the same measure, computed by hand from the predictions
    from steerkit.focus.trainer import split_validation

    _, val = split_validation(records, cfg.val_fraction, cfg.seed, cfg.val_disagreeing)
    preds = focus.predict(result.model, tok, val)
    for t, acc in result.val_focus.per_type.items():
        mine = [p == r.target for r, p in zip(val, preds) if r.focus_type == t]
        assert acc == pytest.approx(sum(mine) / len(mine))
    spur = [p == r.target for r, p in zip(val, preds)
            if r.focus_type in focus.SPURIOUS_FAMILY and r.spurious_label != r.label]
    assert result.val_focus.spurious_disagreeing == (pytest.approx(sum(spur) / len(spur)) if spur else None)

    # an untrained adapter (lr ~ 0) is at chance: said as a FocusTrainingWarning naming the cause
    still = focus.FocusTrainConfig(epochs=1, lr=1e-12, batch_size=8, progress=False, patience=None, max_length=None,
                                   retry_lrs=())
    with pytest.warns(focus.FocusTrainingWarning) as caught:
        frozen = focus.train(_tiny_llama(tok), tok, records, val=mixed_val, lora=focus.LoraSettings(r=2, alpha=4),
                             config=still)
    said = [str(w.message) for w in caught if w.category is focus.FocusTrainingWarning]
    assert frozen.problems and said == frozen.problems
    # selecting by the loss alone keeps the Trainer's own choice and measures nothing more
    by_loss = focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=2, alpha=4),
                          config=dataclasses.replace(cfg, select="loss"))
    assert by_loss.val_focus is None and not by_loss.val_focus_history
    assert by_loss.best_val_loss == pytest.approx(min(h["eval_loss"] for h in by_loss.history if "eval_loss" in h))


def test_a_try_with_problems_is_trained_again_from_the_same_start_and_the_best_try_is_kept(tok, caplog):
    records = focus.build_focus_dataset(fc.examples(40, 0.8, seed=2), fc.TASK, per_example=2, per_disagreeing="all",
                                        seed=0)
    val = focus.build_focus_dataset(fc.examples(12, 0.5, seed=5), fc.TASK, per_example="all", seed=0)
    lora = focus.LoraSettings(r=2, alpha=4)
    cfg = focus.FocusTrainConfig(epochs=2, lr=5e-3, batch_size=8, progress=False, patience=None, max_length=None,
                                 retry_lrs=(), retry_epochs=None)
    lora_weights = lambda r: {k: v for k, v in r.model.state_dict().items() if "lora_" in k}  # noqa: E731

    alone = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora, config=cfg)
    assert alone.problems, "the premise: the tiny model at 5e-3 leaves a family unfollowed"
    assert [t["lr"] for t in alone.tries] == [5e-3] and alone.lr == 5e-3
    stuck = dataclasses.replace(cfg, lr=1e-12)
    assert stuck.attempts() == ((1e-12, 2),)
    assert dataclasses.replace(stuck, select="loss", retry_lrs=(1.0,)).attempts() == ((1e-12, 2),)
    # steerkit fit's: 1e-3 for 3 epochs, then 3e-4 for 6; a retry already tried is not tried again
    d = focus.FocusTrainConfig()
    assert d.attempts() == ((1e-3, 3.0), (3e-4, 6.0))
    assert dataclasses.replace(d, lr=3e-4, epochs=6.0).attempts() == ((3e-4, 6.0),)
    assert dataclasses.replace(d, retry_epochs=None).attempts() == ((1e-3, 3.0), (3e-4, 3.0))
    with pytest.warns(focus.FocusTrainingWarning):
        frozen = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora, config=stuck)
    assert frozen.problems and frozen.score < alone.score

    # at chance at 1e-12, then trained again at 5e-3 from the same start: exactly the run at 5e-3 alone
    with caplog.at_level("WARNING", logger="steerkit.focus"):
        retried = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora,
                              config=dataclasses.replace(stuck, retry_lrs=(5e-3, 1e-12)))
    assert [(t["lr"], t["epochs"]) for t in retried.tries] == [(1e-12, 2), (5e-3, 2)] and retried.lr == 5e-3
    assert "training again from the same start at lr 0.005 for 2 epochs" in caplog.text
    assert retried.tries[0]["problems"] == frozen.problems and retried.problems == alone.problems
    assert retried.best_val_loss == alone.best_val_loss and retried.steps == alone.steps
    assert retried.seconds >= sum(t["seconds"] for t in retried.tries) - 1e-9
    a, b = lora_weights(retried), lora_weights(alone)
    assert a and all(torch.equal(a[k], b[k]) for k in a)

    # a later try that does worse is not kept: the best try's adapter is put back
    worse = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora,
                        config=dataclasses.replace(cfg, retry_lrs=(1e-12,)))
    assert [t["lr"] for t in worse.tries] == [5e-3, 1e-12] and worse.lr == 5e-3
    assert worse.val_focus == alone.val_focus and worse.problems == alone.problems
    a = lora_weights(worse)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="retry_lrs: expected learning rates > 0"):
        dataclasses.replace(cfg, retry_lrs=(0.0,)).check()
    with pytest.raises(ValueError, match="retry_epochs must be > 0 or None"):
        dataclasses.replace(cfg, retry_epochs=0.0).check()


def test_with_the_task_the_validation_also_holds_copies_of_its_examples_with_the_spurious_value_swapped(tok):
    from steerkit.focus.data import flipped_copies

    records = focus.build_focus_dataset(fc.examples(40, 0.9, seed=2), fc.TASK, per_example=2, per_disagreeing="all",
                                        seed=0)
    val = focus.build_focus_dataset(fc.examples(12, 0.9, seed=5), fc.TASK, per_example=2, per_disagreeing="all",
                                    seed=0)
    cfg = focus.FocusTrainConfig(epochs=1, lr=5e-3, batch_size=8, progress=False, patience=None, max_length=None,
                                 retry_lrs=())
    lora = focus.LoraSettings(r=2, alpha=4)
    copies = flipped_copies(val, fc.TASK, tok, cfg.seed)
    assert copies and all(r.features_disagree for r in copies)
    with_copies = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora, config=cfg, task=fc.TASK)
    # measured on the validation records and the copies together, by hand from the predictions
    both = val + copies
    preds = focus.predict(with_copies.model, tok, both)
    for t, acc in with_copies.val_focus.per_type.items():
        mine = [p == r.target for r, p in zip(both, preds) if r.focus_type == t]
        assert acc == pytest.approx(sum(mine) / len(mine))
    assert with_copies.val_focus.disagreeing == sum(r.features_disagree for r in both)
    # the same training either way (the copies only validate): off, or without the task, as before
    plain = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora, config=cfg)
    off = focus.train(_tiny_llama(tok), tok, records, val=val, lora=lora, task=fc.TASK,
                      config=dataclasses.replace(cfg, val_flipped=False))
    assert off.val_focus == plain.val_focus
    assert plain.val_focus.disagreeing == sum(r.features_disagree for r in val) < with_copies.val_focus.disagreeing
    assert plain.steps == with_copies.steps
    # the validation loss is the records' own, copies or not (it only breaks ties between equal accuracies)
    assert [h["loss"] for h in with_copies.val_focus_history] == [h["loss"] for h in plain.val_focus_history]


def test_validation_problems_name_the_family_and_the_cause():
    from steerkit.focus.validation import ValidationFocus, problems

    fine = ValidationFocus({"none": 1.0, "focus_s": 0.95}, 1.0, 0.9, 20)
    assert problems(fine, labels=2) == []
    mixed = ValidationFocus({"none": 0.62, "focus_s": 0.38}, 0.62, 0.38, 20)
    (msg,) = problems(mixed, labels=2)
    assert "spurious family" in msg and "0.38" in msg and "answers by the core" in msg and "--epochs" in msg
    unlearned = ValidationFocus({"none": 0.5, "focus_c": 0.55, "focus_s": 0.5}, 0.5, 0.5, 20)
    msgs = problems(unlearned, labels=2)
    assert "at chance" in msgs[0] and "tokenizes" in msgs[0] and len(msgs) == 3
    with pytest.raises(ValueError, match="select: expected one of focus_accuracy, loss"):
        focus.FocusTrainConfig(select="accuracy").check()
