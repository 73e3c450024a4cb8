"""`steerkit.inspect` / `steerkit inspect`: the continuations are `generate`'s, and every token's gate,
strength × gate and NLL equal the reference computed from the site's activation in an independent forward,
on every steering path (hook, fused, folded) and a family that flattens its MLP rows (OPT)."""
from html.parser import HTMLParser

import pytest
import torch

import steerkit
from steerkit import SteeringVectors, cli, models, reference
from steerkit.generate import compare
from steerkit.sites import register_site_hook

from test_cli_generate import _checkpoint, WORDS  # noqa: F401  (a tiny checkpoint with a word tokenizer)
from tiny_models import tiny_model

PROMPTS = ["w1 w2 w3 w4", "w5"]  # two lengths: the generation's batch is left-padded


def _tokenizer():
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def _vectors(site, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors.from_tensors(torch.randn(2, width, generator=g) * 4, site=site, layer=1,
                                        gate_w=torch.randn(2, width, generator=g) / 3, gate_b=torch.tensor([0.3, -0.2]),
                                        attributes=["a", "b"])


def _site_activations(model, site, ids):
    """The site's activation at layer 1 in a plain forward of ``ids``: with one steered layer, what its gate
    reads whether or not the tokens before were steered (steering at layer 1 changes only what comes after it)."""
    seen = []
    hook = register_site_hook(models.resolve(model), site, 1, lambda x: seen.append(x.detach().reshape(-1, x.shape[-1])))
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
    finally:
        hook.remove()
    return seen[0], torch.log_softmax(logits.double(), -1)


def _expected_gates(vecs, site, x):
    e = vecs[(site, 1)]
    return reference.gated_steer(x.double(), e.theta.double(), e.gate_w.double(), e.gate_b.double(),
                                 torch.zeros(2, dtype=torch.float64))[1].float()


@pytest.mark.parametrize("family,site", [("llama", "block_out"), ("llama", "attn_out"), ("llama", "attn_heads"),
                                         ("llama", "mlp_out"), ("opt", "mlp_out")])
def test_inspect_is_generate_with_the_reference_gates_of_every_token(family, site):
    model, tok = tiny_model(family), _tokenizer()
    vecs = _vectors(site, models.resolve(model).site_size(site))
    strength = [3.0, -1.5]
    result = steerkit.inspect(model, tok, vecs, PROMPTS, strength=strength, max_new_tokens=6)
    rows = compare(model, tok, vecs, PROMPTS, strength=torch.tensor(strength), max_new_tokens=6)
    assert [(p, v.unsteered.text, v.steered.text) for p, v in zip(PROMPTS, result.views)] == rows
    assert any(v.unsteered.text != v.steered.text for v in result.views)  # the steering did something
    assert result.gates.shape[:2] == (2, 1) and result.gates.shape[3] == 2
    for view in result.views:
        for kind in ("unsteered", "steered"):
            trace = getattr(view, kind)
            assert trace.tokens == [tok.decode(trace.ids[:i + 1])[len(tok.decode(trace.ids[:i])):]
                                    for i in range(len(trace.ids))]
            x, logp = _site_activations(model, site, trace.ids)
            want = _expected_gates(vecs, site, x)  # [T, K]
            got = trace.gates[0]
            # the steered trace: the last generated token is never read (unless generation stopped early)
            n = len(trace.ids) - (1 if kind == "steered" and len(trace.ids) - trace.prompt_len == 6 else 0)
            torch.testing.assert_close(got[:n], want[:n], atol=2e-5, rtol=1e-4)
            assert got[n:].isnan().all()
            expect_applied = torch.tensor(strength) * got[:n] if kind == "steered" else torch.zeros_like(got[:n])
            torch.testing.assert_close(trace.applied[0, :n], expect_applied, atol=1e-5, rtol=1e-5)
            nll = -logp[:-1].gather(1, torch.tensor(trace.ids[1:])[:, None]).squeeze(1).float()
            torch.testing.assert_close(trace.nll[1:], nll, atol=1e-4, rtol=1e-4)
            assert trace.nll[0].isnan()


def test_the_token_policy_decides_what_is_applied():
    model, tok = tiny_model("llama"), _tokenizer()
    vecs = _vectors("block_out", 32)
    for tokens in ("generated", "prompt", 3):
        result = steerkit.inspect(model, tok, vecs, PROMPTS, strength={"a": 2.0}, tokens=tokens, max_new_tokens=4)
        for view in result.views:
            t = view.steered
            real = ~t.gates[0, :, 0].isnan()
            steered = torch.tensor([(i >= t.prompt_len if tokens == "generated" else i < t.prompt_len
                                     if tokens == "prompt" else i >= tokens) for i in range(len(t.ids))])
            torch.testing.assert_close(t.applied[0, real, 0], 2.0 * t.gates[0, real, 0] * steered[real])
            assert (t.applied[0, real, 1] == 0).all()  # b's strength was left out: 0


class _Lanes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.columns, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "div" and a.get("class") == "col":
            self.columns.append([])
        elif tag == "span" and a.get("class", "").startswith("tok"):
            self.columns[-1].append([])
        elif tag == "i" and "lane" in a.get("class", ""):
            self.columns[-1][-1].append((a["data-attr"], float(a["data-gate"]), float(a["data-applied"])))


def test_the_page_has_one_lane_per_attribute_with_the_gates_and_needs_nothing_else():
    model, tok = tiny_model("llama"), _tokenizer()
    result = steerkit.inspect(model, tok, _vectors("block_out", 32), PROMPTS, strength=[3.0, 1.0], max_new_tokens=5)
    page = result.to_html()
    for banned in ("<script", "http://", "https://", "src=", "@import"):
        assert banned not in page
    parsed = _Lanes()
    parsed.feed(page)
    traces = [getattr(v, kind) for v in result.views for kind in ("unsteered", "steered")]
    assert len(parsed.columns) == len(traces)
    for column, trace in zip(parsed.columns, traces):
        assert len(column) == len(trace.ids)
        for t, lanes in enumerate(column):
            assert [a for a, _, _ in lanes] == ["a", "b"]
            for k, (_, gate, applied) in enumerate(lanes):
                want = float(trace.gates[0, t, k])
                assert (gate != gate and want != want) or gate == pytest.approx(want, abs=1e-4)
                want = float(trace.applied[0, t, k])
                assert (applied != applied and want != want) or applied == pytest.approx(want, abs=1e-4)


def test_cli_writes_the_page_and_the_figure_and_refuses_before_loading(tmp_path, capsys):
    model, _ = _checkpoint(tmp_path)
    vecs = tmp_path / "g.safetensors"
    _vectors("attn_out", 32).save(vecs)
    rc = cli.main(["inspect", "--model", str(model), "--vectors", str(vecs), "--prompt", "w1 w2", "--strength", "a=3",
                   "--max-new-tokens", "4", "-o", str(tmp_path / "p.html"), "--png", str(tmp_path / "p.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "mean gate on it: a " in out and "page written to" in out
    assert (tmp_path / "p.html").read_text().count('class="col"') == 2
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = str(tmp_path / "no-model")  # each refusal comes before the model would load
    for args, message in ((["-o", str(tmp_path / "none" / "p.html")], "--out: cannot write p.html"),
                          (["--png", str(tmp_path)], "--png: "),
                          (["--prompt", " "], "prompts: expected one or more non-empty strings"),
                          (["--strength", "c=1"], "--strength: unknown attribute 'c'")):
        rc = cli.main(["inspect", "--model", missing, "--vectors", str(vecs), "--prompt", "w1", *args])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
