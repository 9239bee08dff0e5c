"""Small random Llama checkpoints in the Hugging Face layout (bf16 safetensors), written by the tests.

The same seed always gives the same checkpoint, so the golden files made by tests/make_golden.py
(with transformers) match what the tests write. Vocabulary 32000, so the real Llama tokenizer fits.
"""
import json
from pathlib import Path

import numpy as np

from model.weights import save_safetensors

# name -> config fields; sizes deliberately not powers of two
CONFIGS = {
    "mha": dict(hidden_size=48, intermediate_size=100, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, tie_word_embeddings=False),
    "gqa": dict(hidden_size=96, intermediate_size=200, num_hidden_layers=3, num_attention_heads=16,
                num_key_value_heads=2, tie_word_embeddings=False),   # TinyLlama's 8:1 grouping
    "tied": dict(hidden_size=40, intermediate_size=90, num_hidden_layers=2, num_attention_heads=5,
                 num_key_value_heads=5, tie_word_embeddings=True),
    "odd": dict(hidden_size=60, intermediate_size=150, num_hidden_layers=2, num_attention_heads=6,
                num_key_value_heads=2, tie_word_embeddings=False, rope_theta=500000.0, rms_norm_eps=1e-6),
}
# the family members: one per difference the forward pass handles (model/config.py)
FAMILY = {
    "llama3": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=32)),
    "linear": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4, tie_word_embeddings=False, rope_scaling=dict(type="linear", factor=4.0)),
    "dynamic": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, tie_word_embeddings=False, rope_scaling=dict(type="dynamic", factor=2.0)),
    "qwen2": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=64, intermediate_size=160,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=None),
    "mistral": dict(model_type="mistral", architectures=["MistralForCausalLM"], hidden_size=64, intermediate_size=128,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
                    sliding_window=8),
    "headdim": dict(hidden_size=60, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                    num_key_value_heads=1, head_dim=32, tie_word_embeddings=True, rope_theta=100000.0),
}
CONFIGS.update(FAMILY)
VOCAB = 32000


def config_dict(name: str, vocab: int = VOCAB) -> dict:
    """The config.json contents for a named test checkpoint."""
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=vocab,
               max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu",
               bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16", attention_bias=False)
    cfg.update(CONFIGS[name])
    return cfg


def random_weights(cfg: dict, seed: int) -> dict[str, np.ndarray]:
    """Random float32 weights with HF names and shapes; norms near 1 so every layer matters."""
    rng = np.random.default_rng(seed)
    D, F = cfg["hidden_size"], cfg["intermediate_size"]
    H, K = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    E, V = cfg.get("head_dim") or D // H, cfg["vocab_size"]

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, D)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(D)
        w[p + "self_attn.q_proj.weight"] = mat(H * E, D) * 2
        w[p + "self_attn.k_proj.weight"] = mat(K * E, D) * 2
        w[p + "self_attn.v_proj.weight"] = mat(K * E, D)
        w[p + "self_attn.o_proj.weight"] = mat(D, H * E)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        w[p + "mlp.gate_proj.weight"] = mat(F, D)
        w[p + "mlp.up_proj.weight"] = mat(F, D)
        w[p + "mlp.down_proj.weight"] = mat(D, F)
        if cfg.get("model_type") == "qwen2":  # biases on q, k, v
            for name, n in (("q", H * E), ("k", K * E), ("v", K * E)):
                w[p + f"self_attn.{name}_proj.bias"] = (0.5 * rng.standard_normal(n)).astype(np.float32)
    w["model.norm.weight"] = norm(D)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(V, D) * 3
    return w


def write_checkpoint(folder, name: str, seed: int = 0, *, dtype: str = "BF16", shards: int = 1,
                     tokenizer: Path | None = None, vocab: int = VOCAB) -> Path:
    """Write config.json and model.safetensors (or `shards` files and an index) into folder;
    a tokenizer file is linked in under its usual name (tokenizer.model or tokenizer.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(name, vocab)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    weights = random_weights(cfg, seed)
    if shards == 1:
        save_safetensors(folder / "model.safetensors", weights, dtype)
    else:
        names = list(weights)
        weight_map = {}
        for s in range(shards):
            part = names[s::shards]
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_safetensors(folder / file, {n: weights[n] for n in part}, dtype)
            weight_map.update({n: file for n in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if tokenizer is not None:
        name = "tokenizer.json" if Path(tokenizer).suffix == ".json" else "tokenizer.model"
        (folder / name).symlink_to(Path(tokenizer).resolve())
    return folder


def prompts(seed: int = 1) -> dict[str, list[int]]:
    """The token prompts the golden files use: one token, and fifty."""
    rng = np.random.default_rng(seed)
    return {"one": [1], "fifty": [1] + rng.integers(3, VOCAB, 49).tolist()}


def greedy(model, ids, steps: int, stop: int | None = None) -> list[int]:
    """Our model's greedy continuation of ids: `steps` new tokens (fewer if `stop` comes), cached."""
    model.new_cache(len(ids) + steps)
    logits, out = model.forward(ids), []
    for _ in range(steps):
        out.append(int(np.argmax(logits)))
        if out[-1] == stop:
            break
        logits = model.forward([out[-1]])
    return out
