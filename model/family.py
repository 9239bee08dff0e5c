"""The small-Llama family as a table: each member, what it changes, and where that is handled.

`scripts/generate.py --list-architectures` prints it; README's model table says the same.
"""

FAMILY = [
    ('TinyLlama-1.1B, Llama-2', 'llama / llama',
     'the baseline: RMSNorm, RoPE, GQA, SwiGLU, untied head',
     'model/llama.py'),
    ('SmolLM2 135M / 360M / 1.7B', 'llama / llama',
     'tied embeddings, rope theta 1e5, head_dim from the config, byte-level BPE',
     'tie_word_embeddings, head_dim; bpe/bytelevel.py'),
    ('Llama-3.2 1B / 3B', 'llama / llama',
     'rope_scaling llama3 (GGUF: rope_freqs divisors), several EOS ids, byte-level BPE with ignore_merges',
     'rope.llama3_scaling; generation_config.json'),
    ('older fine-tunes', 'llama / llama',
     'rope_scaling linear or dynamic',
     'rope.linear_scaling; dynamic equals the default inside the context'),
    ('Qwen2 / Qwen2.5 0.5B / 1.5B', 'qwen2 / qwen2',
     'biases on q, k, v; tied head; q/k not permuted in GGUF',
     'qkv_bias -> layers.linear; gguf_model.PERMUTED'),
    ('Mistral-7B', 'mistral / llama',
     'sliding-window attention (key j seen from i when i - window < j <= i)',
     'windows -> attention_probs(window=)'),
    ('Qwen3 0.6B .. 32B (dense)', 'qwen3 / qwen3',
     'RMSNorm over each head\'s q and k before rotary (q_norm, k_norm); explicit head_dim; no q/k/v biases',
     'qk_norm -> llama.block; gguf_model.NAMES_QK_NORM'),
    ('Gemma 3 270M / 1B / 4B (text)', 'gemma3_text, gemma3 / gemma3',
     'q/k norms; four norms per block (attention and MLP outputs normed before the residual); norms scale by '
     '1 + w (GGUF stores 1 + w); GeGLU (tanh GELU); embeddings x sqrt(D); scores x query_pre_attn_scalar^-1/2; '
     '5 of 6 layers slide (window 512, rotary base 1e4), every sixth global (base 1e6)',
     'sandwich_norms, norm_offset, mlp_act, embed_scale, attn_scale, local_rope_theta -> llama.block'),
]
REFUSED = ("Gemma 2's logit soft-capping, other GELU variants, mixture of experts, yarn / longrope scaling, "
           "MLP biases, GGUF types IQ2/IQ3/IQ1/TQ/MXFP4")


def describe_family() -> str:
    """The supported family members as a text table (for --list-architectures)."""
    rows = [("model", "model_type / GGUF arch", "what differs", "handled by")] + FAMILY
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines = ["  ".join(r[k].ljust(widths[k]) for k in range(3)) + "  " + r[3] for r in rows]
    return "\n".join(lines + ["", f"refused by name: {REFUSED}"])
