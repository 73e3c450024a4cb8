"""The demos' tiny Llama: a word-level tokenizer over a toy corpus's vocabulary and a small
``LlamaForCausalLM`` trained on that corpus on the CPU, saved as an ordinary local HF checkpoint
in the user cache directory so later runs (and ``--model``-style loading) start at once."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ...cache import cache_dir
from . import corpus

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


@dataclass(frozen=True)
class ToySettings:
    hidden_size: int = 64
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 128
    texts: int = 4000
    steps: int = 1000
    batch: int = 64
    lr: float = 3e-3
    seed: int = 0
    max_positions: int = 64
    # untied: with the input embedding doubling as the output head, 1 of 6 seeds of the review toy never
    # learned to carry an adjective's sentiment to the next one; untied, all did within 200 steps (issue 17)
    tied_embeddings: bool = False


@dataclass(frozen=True)
class ToyCorpus:
    """What a toy model learns from: its words (the whole vocabulary) and n training texts."""
    name: str
    vocabulary: Callable[[], list]
    texts: Callable[[int, int], list]  # (n, seed) -> texts, or (prompt, answer) pairs: loss on the answer only
    split_punctuation: bool = False  # "word." is two tokens (else only whitespace splits)


REVIEWS = ToyCorpus("review", corpus.vocabulary, lambda n, seed: [t for t, _, _ in corpus.texts(n, seed)])


def build_tokenizer(source: ToyCorpus = REVIEWS):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + list(dict.fromkeys(source.vocabulary())))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace() if source.split_punctuation else pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")


def _key(s: ToySettings, source: ToyCorpus) -> str:
    from importlib import metadata

    # the libraries whose numerics shape the trained toy: a toy cached under another release is retrained,
    # never silently reused (the same seed gave a different toy under transformers 5.23 and 5.24)
    libs = {name: metadata.version(name) for name in ("torch", "transformers")}
    spec = dict(settings=asdict(s), vocab=source.vocabulary(), sample=source.texts(64, s.seed),
                split=source.split_punctuation, libraries=libs, version=1)
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:12]


def toy_model(settings: ToySettings = ToySettings(), retrain: bool = False, log=print, source: ToyCorpus = REVIEWS):
    """(model, tokenizer, path): from the cache, or trained now on ``source`` (and cached)."""
    from ...hf import load_model

    name = "toy-llama" if source is REVIEWS else f"toy-llama-{source.name}"
    path = cache_dir() / f"{name}-{_key(settings, source)}"
    if not retrain and (path / "config.json").is_file() and (path / "steerkit_toy.json").is_file():
        log(f"toy model: cached at {path}")
        return (*load_model(path), path)
    model, tok, seconds, loss = _train(settings, source, log)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    (path / "steerkit_toy.json").write_text(json.dumps(dict(settings=asdict(settings), train_seconds=seconds,
                                                            final_loss=loss)))  # written last: complete
    log(f"toy model: trained in {seconds:.0f} s (final loss {loss:.3f}), cached at {path}")
    return model.eval(), tok, path


def random_llama(tok, hidden_size: int = 32, intermediate_size: int = 64, layers: int = 2, heads: int = 4,
                 kv_heads: int | None = None, max_positions: int = 128, tied: bool = False, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` over ``tok``'s vocabulary and special tokens (seeded):
    the toy before training, and the tiny checkpoints of tests and benchmarks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads or heads,
                      max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg)


def _train(s: ToySettings, source: ToyCorpus, log):
    tok = build_tokenizer(source)
    model = random_llama(tok, s.hidden_size, s.intermediate_size, s.layers, s.heads, s.heads, s.max_positions,
                         tied=s.tied_embeddings, seed=s.seed)
    ids, mask, labels = _rows(tok, source.texts(s.texts, s.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=s.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(s.seed)
    model.train()
    t0 = time.perf_counter()
    log(f"toy model: training a {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k-parameter Llama on "
        f"{len(ids)} {source.name} texts ({s.steps} steps, CPU)")
    loss = torch.tensor(float("nan"))
    for step in range(s.steps):
        pick = torch.randint(0, len(ids), (s.batch,), generator=gen)
        loss = model(input_ids=ids[pick], attention_mask=mask[pick], labels=labels[pick]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, s.steps // 5) == 0:
            log(f"  step {step + 1}/{s.steps}  loss {loss.item():.3f}")
    return model, tok, time.perf_counter() - t0, loss.item()


def _rows(tok, texts: list):
    """input_ids, attention_mask and labels for plain texts (every token, then eos) or (prompt, answer)
    pairs (the answer's tokens only)."""
    rows, starts = [], []
    for t in texts:
        if isinstance(t, str):
            rows.append(tok(t)["input_ids"] + [tok.eos_token_id])
            starts.append(1)
        else:
            prompt, answer = t
            p = tok(prompt)["input_ids"]
            rows.append(p + tok(" " + answer, add_special_tokens=False)["input_ids"])
            starts.append(len(p))
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, (r, start) in enumerate(zip(rows, starts)):
        ids[i, :len(r)] = torch.tensor(r)
        labels[i, start:len(r)] = ids[i, start:len(r)]
    return ids, (ids != tok.pad_token_id).long(), labels
