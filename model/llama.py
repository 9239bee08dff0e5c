"""The Llama model: its block (forward and backward), and the model (weights, KV cache, forward pass).

    tokens -> embedding -> L x block -> rms_norm -> lm_head -> logits
    block:  x2 = x + o_proj(attention(rope(q), rope(k), v)),  q|k|v = rms_norm(x) W_qkv^T
            y  = x2 + swiglu(rms_norm(x2))

`block` is the one transformer block. Inference (prefill and decode, with the KV cache), training
(model/train/grads.py, keeping what `block_backward` reads) and the lens (model/lens.py, the
residual stream and attention rows) all run it. Shapes use the letters of model/config.py.

`Llama.forward` runs T new tokens at positions start..start+T-1, writing their keys and values
into the preallocated cache, and returns logits for the last position only (prefill and decode
are the same call with T > 1 and T = 1). How the weights lie in memory for speed (q|k|v and
gate|up as single matrices, o_proj's zero rows) is model/speed.py's business, not this file's.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .attention import attention, attention_backward, attention_probs
from .config import LlamaConfig
from .weights import load_checkpoint
from .layers import (embedding, geglu, geglu_backward, linear, linear_backward, rms_norm, rms_norm_backward, swiglu,
                     swiglu_backward)
from .rope import apply_rope, apply_rope_backward, model_frequencies, rope_tables
from .speed import fuse_layer, fused_layout, joined, lazy_zeros


@dataclass
class Layer:
    """One block's weights as the block reads them (views of the HF-named arrays where they can be).
    Norm weights are the factors the norm multiplies by (Gemma's 1 + w already added: config.norm_offset)."""
    attn_norm: np.ndarray               # [D]        input_layernorm
    qkv: np.ndarray                     # [(H+2K)E, D]  q_proj | k_proj | v_proj, one matrix
    qkv_bias: np.ndarray | None         # [(H+2K)E]  Qwen2
    o_proj: np.ndarray                  # [D, H*E]
    o_bias: np.ndarray | None           # [D]
    mlp_norm: np.ndarray                # [D]        post_attention_layernorm (Gemma 3: pre_feedforward_layernorm)
    gate_up: np.ndarray                 # [2F, D]    gate_proj | up_proj, one matrix
    down: np.ndarray                    # [D, F]     down_proj
    window: int | None                  # the sliding attention window (Mistral, Gemma 3), or None
    q_norm: np.ndarray | None = None    # [E]        Qwen3, Gemma 3: RMSNorm of each head's q and k
    k_norm: np.ndarray | None = None    # [E]
    attn_out_norm: np.ndarray | None = None  # [D]   Gemma 3: post_attention_layernorm, on the attention's output
    mlp_out_norm: np.ndarray | None = None   # [D]   Gemma 3: post_feedforward_layernorm, on the MLP's output
    o_padded: np.ndarray | None = None  # o_proj with zero rows after it, for decoding (model/speed.py)

    @classmethod
    def of(cls, cfg: LlamaConfig, w: dict, i: int, fused: dict | None = None) -> "Layer":
        """Layer i of HF-named weights; q|k|v and gate|up joined (views when they lie back to back)."""
        p = f"model.layers.{i}."
        fused = fused or {"qkv": joined([w[p + f"self_attn.{n}_proj.weight"] for n in "qkv"]),
                          "gate_up": joined([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]])}
        norm = (lambda name: w[p + name] + w[p + name].dtype.type(cfg.norm_offset)) if cfg.norm_offset else \
            (lambda name: w[p + name])
        qkv_bias = np.concatenate([w[p + f"self_attn.{n}_proj.bias"] for n in "qkv"]) if cfg.qkv_bias else None
        sandwich = cfg.sandwich_norms
        return cls(norm("input_layernorm.weight"), fused["qkv"], qkv_bias, w[p + "self_attn.o_proj.weight"],
                   w.get(p + "self_attn.o_proj.bias") if cfg.o_bias else None,
                   norm("pre_feedforward_layernorm.weight" if sandwich else "post_attention_layernorm.weight"),
                   fused["gate_up"], w[p + "mlp.down_proj.weight"], cfg.window(i),
                   q_norm=norm("self_attn.q_norm.weight") if cfg.qk_norm else None,
                   k_norm=norm("self_attn.k_norm.weight") if cfg.qk_norm else None,
                   attn_out_norm=norm("post_attention_layernorm.weight") if sandwich else None,
                   mlp_out_norm=norm("post_feedforward_layernorm.weight") if sandwich else None,
                   o_padded=fused.get("o_padded"))


def block(cfg: LlamaConfig, layer: Layer, x: np.ndarray, cos: np.ndarray, sin: np.ndarray, *,
          kv=None, start: int = 0, keep: dict | None = None, hidden: np.ndarray | None = None) -> np.ndarray:
    """One transformer block      x: [*B, T, D] -> [*B, T, D]

    cos, sin: [T, E], the rotary tables of positions start..start+T-1. With `kv` (inference), a
    function that stores the new keys and values in the cache and returns all S = start+T of them;
    without (training), the T positions are the whole sequence. With `keep` (a dict), also every
    activation block_backward reads (the lens reads `probs` and `x2` from it too). `hidden` [T, S]
    replaces the causal mask (packed sequences: forward_packed).
    Qwen3 and Gemma 3 norm each head's q and k; Gemma 3 also norms the attention's and the MLP's
    outputs before they join the residual, and its MLP is GeGLU.
    """
    H, K, E, eps = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.rms_norm_eps
    *B, T, D = x.shape
    h1 = rms_norm(x, layer.attn_norm, eps)                                    # [*B, T, D]
    qkv = linear(h1, layer.qkv, layer.qkv_bias)                               # [*B, T, (H+2K)E]
    heads = np.swapaxes(qkv.reshape(*B, T, H + 2 * K, E), -3, -2)             # [*B, H+2K, T, E]
    qk = heads[..., :H + K, :, :]                                             # [*B, H+K, T, E]
    if layer.q_norm is not None:                                              # per head, over E
        qk = np.concatenate([rms_norm(qk[..., :H, :, :], layer.q_norm, eps),
                             rms_norm(qk[..., H:, :, :], layer.k_norm, eps)], axis=-3)
    qk = apply_rope(qk, cos, sin)                                             # [*B, H+K, T, E] q and k turned
    q, k, v = qk[..., :H, :, :], qk[..., H:, :, :], heads[..., H + K:, :, :]  # [*B, H | K | K, T, E]
    if kv is not None:
        k, v = kv(k, v)                                                       # [K, S, E]: the past and the new
    probs = attention_probs(q, k, start, layer.window, cfg.attn_scale, hidden)  # [*B, H, T, S]
    out = np.swapaxes(attention(probs, v), -3, -2).reshape(*B, T, H * E)      # [*B, H, T, E] -> [*B, T, H*E]
    a = linear(out, layer.o_proj, layer.o_bias, padded=layer.o_padded)        # [*B, T, D]
    x2 = x + (a if layer.attn_out_norm is None else rms_norm(a, layer.attn_out_norm, eps))
    h2 = rms_norm(x2, layer.mlp_norm, eps)                                    # [*B, T, D]
    mlp = {} if keep is not None else None
    f = (swiglu if cfg.mlp_act == "silu" else geglu)(h2, layer.gate_up, layer.down, mlp)   # [*B, T, D]
    y = x2 + (f if layer.mlp_out_norm is None else rms_norm(f, layer.mlp_out_norm, eps))
    if keep is not None:
        keep.update(x=x, h1=h1, heads=heads, q=q, k=k, v=v, probs=probs, out=out, a=a, x2=x2, h2=h2, f=f, **mlp)
    return y


def block_backward(cfg: LlamaConfig, layer: Layer, dy: np.ndarray, keep: dict, cos, sin,
                   taps=None) -> tuple[np.ndarray, dict]:
    """dL/dx of one block from dL/dy [*B, T, D], and dL/d(its weights) by the names of Layer.

    Each line undoes one line of `block`, last first, from what `keep` holds; q|k|v and gate|up
    get one gradient each (the three and two matrices are their row blocks). With `taps(part, dy, x)`
    the block's weights are frozen (LoRA): no weight gradients; each projection's output gradient
    dy [N, O] and input x [N, I] go to taps instead (part: qkv, o_proj, gate_up, down).
    """
    H, K, E, eps = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.rms_norm_eps
    *B, T, D = dy.shape
    flat = lambda a: a.reshape(-1, a.shape[-1])                                # noqa: E731  [*B, T, X] -> [N, X]
    g, dy = {}, flat(dy)

    def linear_back(part, d, x, w, bias=False):                               # a projection's backward
        if taps is not None:
            taps(part, d, x)
        return linear_backward(d, x, w, bias, frozen=taps is not None)
    # y = x2 + [rms_norm](f),  f = down(act(g) . u),  [g | u] = h2 W_gate_up^T,  h2 = rms_norm(x2)
    df = dy
    if layer.mlp_out_norm is not None:
        df, g["mlp_out_norm"] = rms_norm_backward(dy, flat(keep["f"]), layer.mlp_out_norm, eps)
    dm, g["down"], _ = linear_back("down", df, flat(keep["m"]), layer.down)                  # [N, F]
    if cfg.mlp_act == "silu":
        dgate, dup = swiglu_backward(dm, flat(keep["g"]), flat(keep["u"]), flat(keep["sig"]))
    else:
        dgate, dup = geglu_backward(dm, flat(keep["g"]), flat(keep["u"]), flat(keep["tanh"]))
    dh2, g["gate_up"], _ = linear_back("gate_up", np.concatenate([dgate, dup], axis=-1), flat(keep["h2"]),
                                       layer.gate_up)
    dn, g["mlp_norm"] = rms_norm_backward(dh2, flat(keep["x2"]), layer.mlp_norm, eps)
    dx2 = dy + dn                                                                         # the residual adds
    # x2 = x + [rms_norm](o_proj(out)),  out = attention(probs, v),  probs = attention_probs(q, k)
    da = dx2
    if layer.attn_out_norm is not None:
        da, g["attn_out_norm"] = rms_norm_backward(dx2, flat(keep["a"]), layer.attn_out_norm, eps)
    dout, g["o_proj"], g["o_bias"] = linear_back("o_proj", da, flat(keep["out"]), layer.o_proj,
                                                 layer.o_bias is not None)
    dout = np.swapaxes(dout.reshape(*B, T, H, E), -3, -2)                                 # [*B, H, T, E]
    dq, dk, dv = attention_backward(dout, keep["probs"], keep["q"], keep["k"], keep["v"], cfg.attn_scale)
    dq, dk = apply_rope_backward(dq, cos, sin), apply_rope_backward(dk, cos, sin)         # through the rotation
    if layer.q_norm is not None:                                                          # through the head norms
        heads = keep["heads"]
        dq, g["q_norm"] = rms_norm_backward(dq, heads[..., :H, :, :], layer.q_norm, eps)
        dk, g["k_norm"] = rms_norm_backward(dk, heads[..., H:H + K, :, :], layer.k_norm, eps)
    dheads = np.concatenate([dq, dk, dv], axis=-3)                                        # [*B, H+2K, T, E]
    dqkv = np.swapaxes(dheads, -3, -2).reshape(-1, (H + 2 * K) * E)                       # [N, (H+2K)E]
    # q|k|v = h1 W_qkv^T (+ b),  h1 = rms_norm(x)
    dh1, g["qkv"], g["qkv_bias"] = linear_back("qkv", dqkv, flat(keep["h1"]), layer.qkv,
                                               layer.qkv_bias is not None)
    dn, g["attn_norm"] = rms_norm_backward(dh1, flat(keep["x"]), layer.attn_norm, eps)
    return (dx2 + dn).reshape(*B, T, D), g


def final_norm(cfg: LlamaConfig, w: dict) -> np.ndarray:
    """The final norm's factor [D] (Gemma's 1 + w in HF files: config.norm_offset)."""
    norm = w["model.norm.weight"]
    return norm + norm.dtype.type(cfg.norm_offset) if cfg.norm_offset else norm


class Llama:
    """A Llama-architecture model: float32 weights by Hugging Face name, plus its KV cache."""

    def __init__(self, cfg: LlamaConfig, weights: dict[str, np.ndarray]):
        self.cfg = cfg
        self.w = weights
        self.embed_tokens = weights["model.embed_tokens.weight"]           # [V, D]
        self.lm_head = self.embed_tokens if cfg.tie_word_embeddings else weights["lm_head.weight"]  # [V, D]
        self.final_norm = final_norm(cfg, weights)                            # [D]
        self.ropes = [repr(cfg.rope(i)) for i in range(cfg.num_hidden_layers)]  # each layer's (theta, scaling)
        self.tables = {}                                                      # (theta, scaling) -> cos, sin [P, E]
        self.cache_k = self.cache_v = None  # [L, K, S_max, E] each, allocated by new_cache
        self.length = 0                     # positions already in the cache
        self.layers = [Layer.of(cfg, weights, i, fuse_layer(cfg, weights, i)) for i in range(cfg.num_hidden_layers)]

    @classmethod
    def load(cls, folder) -> "Llama":
        """Load `config.json` and the safetensors weights of an HF-layout folder."""
        cfg = LlamaConfig.load(Path(folder) / "config.json")
        return cls(cfg, load_checkpoint(folder, cfg, into=fused_layout(cfg)))

    def new_cache(self, max_len: int) -> None:
        """Allocate an empty KV cache for up to `max_len` positions."""
        cfg = self.cfg
        if not 0 < max_len <= cfg.max_position_embeddings:
            raise ValueError(f"{max_len} positions do not fit the context of {cfg.max_position_embeddings}")
        shape = (cfg.num_hidden_layers, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.cache_k = lazy_zeros(shape)
        self.cache_v = lazy_zeros(shape)
        self.length = 0

    def rotary(self, start: int, T: int, layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """cos, sin [T, E] of positions start..start+T-1 for a layer (the tables grow by doubling, never
        the whole context; one table per rotary base, two in Gemma 3)."""
        key, S = self.ropes[layer], start + T
        cos, sin = self.tables.get(key, (np.zeros((0, self.cfg.head_dim), np.float32),) * 2)
        if S > len(cos):
            grow = min(max(S, 2 * len(cos), 256), self.cfg.max_position_embeddings)
            cos, sin = rope_tables(self.cfg.head_dim, grow, 0.0, inv_freq=model_frequencies(self.cfg, layer))
            self.tables[key] = cos, sin
        return cos[start:S], sin[start:S]

    def forward_packed(self, tokens, positions, hidden: np.ndarray, outputs) -> np.ndarray:
        """Several sequences that share a prefix, packed into one pass (no cache): logits [len(outputs), V].

        tokens, positions: [T] (each sequence's positions count on from the shared prefix); hidden [T, T]:
        True where a token may not see another (another sequence's, or its own future, or beyond a
        layer's window, which is applied here by position). The evaluation's scoring of several
        endings of one context (model/evaluation/choices.py) runs this once per item.
        """
        cfg = self.cfg
        tokens, positions = np.asarray(tokens, np.int64), np.asarray(positions, np.int64)
        x = embedding(self.embed_tokens, tokens, cfg.embed_scale)                  # [T, D]
        far = positions[:, None] - positions[None, :]                               # [T, T] distance back
        for i, layer in enumerate(self.layers):
            cos, sin = self.rotary(0, int(positions.max()) + 1, i)
            mask = hidden if layer.window is None else hidden | (far >= layer.window)
            x = block(cfg, layer, x, cos[positions], sin[positions], kv=lambda k, v: (k, v), hidden=mask)
        return linear(rms_norm(x[outputs], self.final_norm, cfg.rms_norm_eps), self.lm_head)   # [O, V]

    def forward(self, tokens, *, all_logits: bool = False, trace: dict | None = None, outputs=None) -> np.ndarray:
        """Run new tokens after the cached ones; return logits [V] of the last (or [T, V] of all) positions
        (or [O, V] of the positions `outputs` picks: the evaluation's scored half of a chunk).

        With a `trace` dict, also record for the last position: "attention", per layer the
        weights [H, S] over all positions, and "norms", the hidden-state norm after the
        embedding and after each layer; with trace["probs"] = [] given, every position's attention
        [H, T, S] per layer; with trace["residual"] = [] given, the residual stream
        [T, D] of every position after the embedding and after each attention and each MLP
        (2L + 1 arrays: what model/lens.py reads).
        """
        cfg = self.cfg
        tokens = np.asarray(tokens, dtype=np.int64)
        T, start = len(tokens), self.length
        if self.cache_k is None or start + T > self.cache_k.shape[2]:
            raise ValueError(f"{start + T} positions do not fit the KV cache "
                             f"({0 if self.cache_k is None else self.cache_k.shape[2]}); call new_cache")
        if T == 0 or tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
            raise ValueError(f"token ids must be in 0..{cfg.vocab_size - 1}")
        S = start + T
        x = embedding(self.embed_tokens, tokens, cfg.embed_scale)        # [T] -> [T, D]
        residual = trace.get("residual") if trace is not None else None
        if trace is not None:
            trace["attention"], trace["norms"] = [], [float(np.linalg.norm(x[-1]))]
        if residual is not None:
            residual.append(x)
        for i, layer in enumerate(self.layers):
            def kv(k, v, i=i):                                            # the cache: [K, T, E] in, [K, S, E] out
                self.cache_k[i, :, start:S], self.cache_v[i, :, start:S] = k, v
                return self.cache_k[i, :, :S], self.cache_v[i, :, :S]
            keep = {} if trace is not None else None
            cos, sin = self.rotary(start, T, i)                             # [T, E]
            x = block(cfg, layer, x, cos, sin, kv=kv, start=start, keep=keep)  # [T, D]
            if trace is not None:
                trace["attention"].append(keep["probs"][:, -1, :])          # [H, S]
                if "probs" in trace:                                        # every position's: [H, T, S]
                    trace["probs"].append(keep["probs"])
                trace["norms"].append(float(np.linalg.norm(x[-1])))
            if residual is not None:
                residual += [keep["x2"], x]                                 # after attention, after the MLP
        self.length = S
        x = x[outputs] if outputs is not None else x if all_logits else x[-1:]
        logits = linear(rms_norm(x, self.final_norm, cfg.rms_norm_eps), self.lm_head)  # [T or 1, V]
        return logits if all_logits or outputs is not None else logits[0]
