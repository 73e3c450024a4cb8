"""`steerkit generate` on a tiny local checkpoint with a tokenizer built offline."""
import pytest
import torch
from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from steerkit import SteeringVectors, cli

from tiny_models import tiny_model

WORDS = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(60)]


def _checkpoint(tmp_path):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "model")
    tok = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.save_pretrained(tmp_path / "model")
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32) * 4, site="block_out", layer=1,
                                        attributes=["a", "b"])
    vecs.save(tmp_path / "v.safetensors")
    return tmp_path / "model", tmp_path / "v.safetensors"


def test_generate_prints_steered_next_to_unsteered(tmp_path, capsys):
    model, vecs = _checkpoint(tmp_path)
    rc = cli.main(["generate", "--model", str(model), "--vectors", str(vecs), "--prompt", "w1 w2 w3",
                   "--prompt", "w5 w9", "--strength", "3", "-1", "--max-new-tokens", "6"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("unsteered:") == 2 and out.count("steered:") == 4 and "K=2" in out


def test_generate_missing_model_is_a_clear_error(tmp_path, capsys):
    _, vecs = _checkpoint(tmp_path)
    rc = cli.main(["generate", "--model", str(tmp_path / "nothing"), "--vectors", str(vecs), "--prompt", "x"])
    assert rc == 2
    assert "--model: no local model at" in capsys.readouterr().err
    rc = cli.main(["generate", "--model", str(tmp_path / "nothing"), "--vectors", "v.safetensors", "--prompt", "x"])
    assert rc == 2
    assert "no steering-vector file at v.safetensors" in capsys.readouterr().err


def test_generate_vectors_for_another_model(tmp_path, capsys):
    model, _ = _checkpoint(tmp_path)
    SteeringVectors.from_tensors(torch.randn(2, 48), site="mlp_out", layer=0).save(tmp_path / "other.safetensors")
    rc = cli.main(["generate", "--model", str(model), "--vectors", str(tmp_path / "other.safetensors"),
                   "--prompt", "w1"])
    assert rc == 2 and "another model" in capsys.readouterr().err


def test_info_reports_the_path_each_site_takes(tmp_path, capsys):
    model, _ = _checkpoint(tmp_path)
    entries = {(site, 1): SteeringVectors.from_tensors(torch.randn(1, 32), site=site, layer=1)[(site, 1)]
               for site in ("attn_heads", "attn_out", "block_out")}
    SteeringVectors(entries, gate_mode="none").save(tmp_path / "three.safetensors")
    rc = cli.main(["info", "--model", str(model), "--vectors", str(tmp_path / "three.safetensors")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "attn_heads layer 1   folded" in out and "attn_out   layer 1   fused" in out
    assert "block_out  layer 1   hook    block_out is the layer's output" in out
    assert cli.main(["info", "--model", str(model)]) == 2
