"""Tiny random models of every supported family, built from configs (no downloads)."""
import torch
import transformers as T

COMMON = dict(vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)

CONFIGS = {
    "llama": lambda: T.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=2, **COMMON),
    "mistral": lambda: T.MistralConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, **COMMON),
    "qwen2": lambda: T.Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=2, **COMMON),
    "qwen3": lambda: T.Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=8, **COMMON),
    # head_dim × heads != hidden_size, as in the real Gemma-7B: attn_heads is wider than the residual
    "gemma": lambda: T.GemmaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=1, head_dim=16, **COMMON),
    "gemma2": lambda: T.Gemma2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=8, **COMMON),
    "gemma3_text": lambda: T.Gemma3TextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, **COMMON),
    "phi3": lambda: T.Phi3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                 num_key_value_heads=4, **COMMON),
    "gpt2": lambda: T.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=128, **COMMON),
    "gpt_neox": lambda: T.GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, **COMMON),
    "opt": lambda: T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=3, num_attention_heads=4,
                               word_embed_proj_dim=32, max_position_embeddings=128, **COMMON),
}

FAMILIES = sorted(CONFIGS)


def tiny_model(family: str, seed: int = 0):
    torch.manual_seed(seed)
    model = T.AutoModelForCausalLM.from_config(CONFIGS[family]())
    return model.eval()
