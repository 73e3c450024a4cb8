"""The label-only loss against the HF causal-LM loss, output and LoRA gradients, for every family in
the registry (tied and untied heads), and one focus-training run with the accelerations on and off."""
import pytest
import torch

from steerkit import focus, hf
from steerkit.focus.loss import label_only_loss
from tiny_models import FAMILIES, tiny_model

peft = pytest.importorskip("peft")


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding
    labels = torch.full_like(ids, -100)
    labels[0, 10:] = ids[0, 10:]  # a two-token target
    labels[1, 7:9] = ids[1, 7:9]
    labels[2, 5] = ids[2, 5]
    return ids, mask, labels


@pytest.mark.parametrize("family", FAMILIES)
def test_label_only_loss_matches_the_hf_loss_and_its_lora_gradients(family):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model(family), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                           init_lora_weights=False))  # B != 0: real gradients
    ids, mask, labels = _batch(FAMILIES.index(family))
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    ref_grads = torch.autograd.grad(ref, params)
    mine = label_only_loss(model, ids, mask, labels)
    grads = torch.autograd.grad(mine, params)
    assert mine.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-6)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-6), (family, (g - r).abs().max().item())
    # a count over accumulated batches turns the mean into sum / count
    n = int((labels[:, 1:] != -100).sum())
    assert label_only_loss(model, ids, mask, labels, num_items=2 * n).item() == pytest.approx(ref.item() / 2, rel=1e-6)


def test_label_only_loss_needs_labels_and_a_head():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="labels"):
        label_only_loss(model, torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="output head"):
        label_only_loss(model.model, torch.ones(1, 3, dtype=torch.long), labels=torch.ones(1, 3, dtype=torch.long))


def test_training_with_and_without_the_accelerations_agrees():
    from steerkit.demos.toy import focus_corpus as fc
    from steerkit.demos.toy.model import build_tokenizer
    from test_focus_eval_train import _tiny_llama

    tok = build_tokenizer(fc.CORPUS)
    records = focus.build_focus_dataset(fc.examples(48, 0.9, seed=2), fc.TASK, seed=0)
    runs = []
    for on in (True, False):
        cfg = focus.FocusTrainConfig(epochs=1, lr=1e-3, batch_size=8, progress=False, patience=None,
                                     max_length=None, label_only_loss=on, fused_lora=on,
                                     packed=on and hf.reads_packed_sequences(), retry_lrs=())
        runs.append(focus.train(_tiny_llama(tok), tok, records, lora=focus.LoraSettings(r=2, alpha=4), config=cfg))
    fast, plain = runs
    assert fast.best_val_loss == pytest.approx(plain.best_val_loss, rel=1e-4)
    a = {k: v for k, v in fast.model.state_dict().items() if "lora_" in k}
    b = {k: v for k, v in plain.model.state_dict().items() if "lora_" in k}
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def _rows(seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n, t in [(9, 2), (5, 1), (12, 3), (7, 1)]:
        ids = torch.randint(3, 64, (n + t,), generator=g).tolist()
        rows.append((ids[:n], ids[n:]))
    return rows


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_batches_give_the_padded_loss_and_gradients_where_the_registry_says_so(family):
    from steerkit.focus.encode import pack_batch, packing_problem, pad_batch
    from steerkit.models import REGISTRY

    if not hf.reads_packed_sequences():
        pytest.skip(f"transformers {hf.transformers_version()} does not read packed sequences (4.53+); steerkit "
                    "refuses packed=True there")
    model = tiny_model(family)
    rows = _rows(FAMILIES.index(family))
    params = [p for p in model.parameters() if p.requires_grad]
    padded = label_only_loss(model, **pad_batch(rows, pad_id=0))
    packed = label_only_loss(model, **pack_batch(rows))
    exact = abs(padded.item() - packed.item()) <= 1e-5 * abs(padded.item())
    # the registry's flag is checked both ways, so it cannot drift from what the model does
    assert exact == REGISTRY[family].packs, (family, padded.item(), packed.item())
    assert (packing_problem(model) is None) == REGISTRY[family].packs
    if exact:
        for g, r in zip(torch.autograd.grad(packed, params), torch.autograd.grad(padded, params)):
            assert torch.allclose(g, r, rtol=1e-4, atol=1e-6)


def test_forcing_packing_on_a_model_that_cannot_is_an_error():
    from steerkit.focus.trainer import _use_packing

    if not hf.reads_packed_sequences():
        with pytest.raises(ValueError, match="packed: .*does not read packed sequences"):
            _use_packing(tiny_model("llama"), True)
        return
    with pytest.raises(ValueError, match="packed: .*opt attends across"):
        _use_packing(tiny_model("opt"), True)
    assert _use_packing(tiny_model("llama"), True) and not _use_packing(tiny_model("llama"), None)
