"""The whole model's loss and gradients: the forward of model/llama.py on a batch, keeping what the
backward needs, then the backward from the loss to every weight.

    loss, grads = loss_and_grads(cfg, weights, inputs, targets)

`weights` is a dict of arrays by Hugging Face name (as `load_checkpoint` returns), `inputs` and
`targets` integer arrays [B, T]; `loss` is the mean cross-entropy over all B*T positions and
`grads` has the same names and shapes as `weights`. Everything runs in the weights' dtype:
float32 to train, float64 for exact checks.
"""
import numpy as np

from ..config import LlamaConfig
from ..layers import apply_rope, attention, attention_probs, linear, rms_norm, rope_tables
from ..rope import model_frequencies
from .backward import (apply_rope_backward, attention_backward, cross_entropy, cross_entropy_backward,
                       embedding_backward, linear_backward, rms_norm_backward, swiglu_backward)

ATTN = ("q_proj", "k_proj", "v_proj")


def check_batch(cfg: LlamaConfig, inputs, targets) -> tuple[np.ndarray, np.ndarray]:
    """inputs and targets as int64 [B, T] arrays of ids in the vocabulary, or ValueError."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim != 2 or inputs.shape != targets.shape or inputs.size == 0:
        raise ValueError(f"inputs and targets must be non-empty [B, T] arrays of one shape, got "
                         f"{inputs.shape} and {targets.shape}")
    for name, a in (("inputs", inputs), ("targets", targets)):
        if a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= cfg.vocab_size:
            raise ValueError(f"{name} must be integer ids in 0..{cfg.vocab_size - 1}")
    if inputs.shape[1] > cfg.max_position_embeddings:
        raise ValueError(f"{inputs.shape[1]} positions exceed the context of {cfg.max_position_embeddings}")
    return inputs.astype(np.int64), targets.astype(np.int64)


def rotary(cfg: LlamaConfig, T: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [T, E] for positions 0..T-1, computed in float32 as inference does, then cast."""
    cos, sin = rope_tables(cfg.head_dim, T, cfg.rope_theta, inv_freq=model_frequencies(cfg))
    return cos.astype(dtype), sin.astype(dtype)


def block_forward(cfg: LlamaConfig, w: dict, i: int, x: np.ndarray, cos, sin, B: int, T: int):
    """One block, x [N, D] -> [N, D], and the activations its backward reads (a dict)."""
    p = f"model.layers.{i}."
    H, K, E, eps = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.rms_norm_eps
    s = {"x": x}
    s["h1"] = h1 = rms_norm(x, w[p + "input_layernorm.weight"], eps)                  # [N, D]
    heads = {}
    for name, n in zip(ATTN, (H, K, K)):
        y = linear(h1, w[p + f"self_attn.{name}.weight"], w.get(p + f"self_attn.{name}.bias"))  # [N, n*E]
        heads[name] = y.reshape(B, T, n, E).transpose(0, 2, 1, 3)                   # [B, n, T, E]
    s["q"] = apply_rope(heads["q_proj"], cos, sin)                                  # [B, H, T, E]
    s["k"] = apply_rope(heads["k_proj"], cos, sin)                                  # [B, K, T, E]
    s["v"] = heads["v_proj"]
    s["probs"] = attention_probs(s["q"], s["k"], 0, cfg.window(i))                  # [B, H, T, T]
    out = attention(s["probs"], s["v"])                                             # [B, H, T, E]
    s["o"] = out.transpose(0, 2, 1, 3).reshape(B * T, H * E)                        # [N, H*E]
    s["x2"] = x2 = x + linear(s["o"], w[p + "self_attn.o_proj.weight"], w.get(p + "self_attn.o_proj.bias"))
    s["h2"] = h2 = rms_norm(x2, w[p + "post_attention_layernorm.weight"], eps)      # [N, D]
    s["g"], s["u"] = h2 @ w[p + "mlp.gate_proj.weight"].T, h2 @ w[p + "mlp.up_proj.weight"].T  # [N, F]
    s["sig"] = 1 / (1 + np.exp(-s["g"]))                                          # [N, F] sigmoid(g)
    s["m"] = s["g"] * s["sig"] * s["u"]                                             # silu(g) . u
    return x2 + s["m"] @ w[p + "mlp.down_proj.weight"].T, s                        # [N, D]


def block_backward(cfg: LlamaConfig, w: dict, i: int, dx3: np.ndarray, s: dict, cos, sin, grads: dict):
    """dL/dx of one block from dL/d(its output) [N, D]; its weights' gradients go into `grads`."""
    p = f"model.layers.{i}."
    H, E, eps = cfg.num_attention_heads, cfg.head_dim, cfg.rms_norm_eps
    B, T = s["q"].shape[0], s["q"].shape[2]
    # x3 = x2 + down(m)
    dm, grads[p + "mlp.down_proj.weight"], _ = linear_backward(dx3, s["m"], w[p + "mlp.down_proj.weight"])
    dg, du = swiglu_backward(dm, s["g"], s["u"], s["sig"])                                    # [N, F]
    dh2 = dg @ w[p + "mlp.gate_proj.weight"] + du @ w[p + "mlp.up_proj.weight"]     # [N, D]
    grads[p + "mlp.gate_proj.weight"], grads[p + "mlp.up_proj.weight"] = dg.T @ s["h2"], du.T @ s["h2"]
    dn, grads[p + "post_attention_layernorm.weight"] = rms_norm_backward(
        dh2, s["x2"], w[p + "post_attention_layernorm.weight"], eps)
    dx2 = dx3 + dn                                                                  # the residual adds
    # x2 = x + o_proj(o)
    do, grads[p + "self_attn.o_proj.weight"], db = linear_backward(
        dx2, s["o"], w[p + "self_attn.o_proj.weight"], bias=cfg.o_bias)
    if cfg.o_bias:
        grads[p + "self_attn.o_proj.bias"] = db
    do = do.reshape(B, T, H, E).transpose(0, 2, 1, 3)                              # [N, H*E] -> [B, H, T, E]
    dq, dk, dv = attention_backward(do, s["probs"], s["q"], s["k"], s["v"])
    dq, dk = apply_rope_backward(dq, cos, sin), apply_rope_backward(dk, cos, sin)
    dh1 = 0
    for name, d in zip(ATTN, (dq, dk, dv)):
        d = d.transpose(0, 2, 1, 3).reshape(B * T, -1)                              # [B, n, T, E] -> [N, n*E]
        dh, grads[p + f"self_attn.{name}.weight"], db = linear_backward(
            d, s["h1"], w[p + f"self_attn.{name}.weight"], bias=cfg.qkv_bias)
        if cfg.qkv_bias:
            grads[p + f"self_attn.{name}.bias"] = db
        dh1 = dh1 + dh                                                              # h1 feeds q, k and v
    dn, grads[p + "input_layernorm.weight"] = rms_norm_backward(dh1, s["x"], w[p + "input_layernorm.weight"], eps)
    return dx2 + dn


def forward_loss(cfg: LlamaConfig, w: dict, inputs: np.ndarray, targets: np.ndarray, keep: bool = True):
    """Mean cross-entropy of a batch; with `keep`, also what the backward needs."""
    B, T = inputs.shape
    embed = w["model.embed_tokens.weight"]
    cos, sin = rotary(cfg, T, embed.dtype)
    x = embed[inputs.reshape(-1)]                                                   # [B, T] -> [N, D]
    saved = []
    for i in range(cfg.num_hidden_layers):
        x, s = block_forward(cfg, w, i, x, cos, sin, B, T)
        saved.append(s if keep else None)
    head = embed if cfg.tie_word_embeddings else w["lm_head.weight"]               # [V, D]
    hf = rms_norm(x, w["model.norm.weight"], cfg.rms_norm_eps)                      # [N, D]
    loss, p = cross_entropy(hf @ head.T, targets.reshape(-1))                       # [N, V]
    return loss, (x, hf, p, saved, cos, sin)


def loss_and_grads(cfg: LlamaConfig, weights: dict, inputs, targets) -> tuple[float, dict]:
    """The mean cross-entropy of next-token prediction on [B, T] ids, and dL/dW for every weight."""
    inputs, targets = check_batch(cfg, inputs, targets)
    loss, (x, hf, p, saved, cos, sin) = forward_loss(cfg, weights, inputs, targets)
    w, grads = weights, {}
    embed = w["model.embed_tokens.weight"]
    head = embed if cfg.tie_word_embeddings else w["lm_head.weight"]
    dz = cross_entropy_backward(p, targets.reshape(-1))                            # [N, V], written into p
    dhf, dhead, _ = linear_backward(dz, hf, head)
    del p, dz                                                                       # the step's largest array
    dx, grads["model.norm.weight"] = rms_norm_backward(dhf, x, w["model.norm.weight"], cfg.rms_norm_eps)
    for i in reversed(range(cfg.num_hidden_layers)):
        dx = block_backward(cfg, w, i, dx, saved[i], cos, sin, grads)
        saved[i] = None                                                             # free as we go
    grads["model.embed_tokens.weight"] = embedding_backward(dx, inputs.reshape(-1), cfg.vocab_size)
    if cfg.tie_word_embeddings:
        grads["model.embed_tokens.weight"] += dhead                                 # both uses of W_E add
    else:
        grads["lm_head.weight"] = dhead
    return loss, {name: grads[name] for name in weights}
