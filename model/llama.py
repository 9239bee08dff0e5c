"""The Llama model (TinyLlama-1.1B): weights, the KV cache, and the forward pass.

    tokens -> embedding -> L x [ x += attention(rms_norm(x)); x += swiglu(rms_norm(x)) ]
           -> rms_norm -> lm_head -> logits

`forward` runs T new tokens at positions start..start+T-1, writing their keys and values into
the preallocated cache, and returns logits for the last position only (prefill and decode
are the same call with T > 1 and T = 1).

Decoding reads every weight once per token, so its speed is the memory's: few, large matrix
calls matter more than anything else. At load, each layer's q, k and v projections become one
matrix [(H + 2K) E, D] and gate and up one [2F, D] (the names in `w` stay, as views into them),
rotary embeddings turn q and k in one call, and a small o_proj reads on into zero rows so that
OpenBLAS gives it both cores (formats/weights.py o_pad_rows).
"""
from pathlib import Path

import numpy as np

from .config import DTYPE, LlamaConfig
from .layers import apply_rope, attention, attention_probs, gated_mlp, linear, rms_norm, rope_tables, times_t
from .rope import model_frequencies
from .formats.weights import load_checkpoint
from .speed import LAYER_ORDER, _back_to_back, _span, fused_layout, layer_arena, lazy_zeros, o_pad_rows


class Llama:
    """A Llama-architecture model: float32 weights by Hugging Face name, plus its KV cache."""

    def __init__(self, cfg: LlamaConfig, weights: dict[str, np.ndarray]):
        self.cfg = cfg
        self.w = weights
        self.embed_tokens = weights["model.embed_tokens.weight"]           # [V, D]
        self.lm_head = self.embed_tokens if cfg.tie_word_embeddings else weights["lm_head.weight"]  # [V, D]
        self.inv_freq = model_frequencies(cfg)                                # [E/2]
        self.cos = self.sin = np.zeros((0, cfg.head_dim), np.float32)  # [P, E], grown as positions are used
        self.cache_k = self.cache_v = None  # [L, K, S_max, E] each, allocated by new_cache
        self.length = 0                     # positions already in the cache
        self.layers = [self._fuse(i) for i in range(cfg.num_hidden_layers)]

    def _fuse(self, i: int) -> tuple:
        """Layer i's weights in the order forward reads them, with q|k|v and gate|up as single matrices.

        subtle: the loaders put a layer's matrices back to back in one buffer, in reading order (q|k|v,
        o, gate|up, down; formats/weights.py fused_layout), so the memory streams on from one call into
        the next and q|k|v is a view, not a copy. Weights that arrive otherwise (built in memory) are
        copied into such a buffer once; each HF name in `w` stays, as a view of its rows.
        """
        w, p = self.w, f"model.layers.{i}."
        names = [p + n for n in LAYER_ORDER]
        parts = [w[n] for n in names]
        pad, o_at = o_pad_rows(self.cfg), LAYER_ORDER.index("self_attn.o_proj.weight")  # zero rows after o
        if not _back_to_back(parts, {o_at: pad * parts[o_at].strides[0]}):
            arena = layer_arena(self.cfg, i)                       # on huge pages: the streams run on
            for n, x in zip(names, parts):
                arena[n][...] = x
            w.update(arena)
            parts = [w[n] for n in names]
        q, k, v, o, gate, up, down = parts
        qkv = _span(q, len(q) + len(k) + len(v))                   # [(H+2K)E, D]
        o_wide = _span(o, len(o) + pad)                             # [D + pad, H*E], decode's o_proj call
        gate_up = _span(gate, len(gate) + len(up))                  # [2F, D]
        qkv_b = None
        if self.cfg.qkv_bias:
            qkv_b = np.concatenate([w[p + f"self_attn.{n}_proj.bias"] for n in "qkv"])   # [(H+2K)E]
        return (w[p + "input_layernorm.weight"], qkv, qkv_b, o, o_wide, w.get(p + "self_attn.o_proj.bias"),
                w[p + "post_attention_layernorm.weight"], gate_up, down, self.cfg.window(i))

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

    def forward(self, tokens, *, all_logits: bool = False, trace: dict | None = None) -> np.ndarray:
        """Run new tokens after the cached ones; return logits [V] of the last (or [T, V] of all) positions.

        With a `trace` dict, also record for the last position: "attention", per layer the
        weights [H, S] over all positions, and "norms", the hidden-state norm after the
        embedding and after each layer; with trace["residual"] = [] given, the residual stream
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
        H, K, E = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        S = start + T
        if S > len(self.cos):  # rotary tables for the positions in use (doubling), not the whole context
            grow = min(max(S, 2 * len(self.cos), 256), cfg.max_position_embeddings)
            self.cos, self.sin = rope_tables(cfg.head_dim, grow, cfg.rope_theta, inv_freq=self.inv_freq)
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]  # [T, E]

        x = self.embed_tokens[tokens]                                    # [T] -> [T, D]
        residual = trace.get("residual") if trace is not None else None
        if trace is not None:
            trace["attention"], trace["norms"] = [], [float(np.linalg.norm(x[-1]))]
        if residual is not None:
            residual.append(x)
        eps, QK = cfg.rms_norm_eps, (H + K) * E
        for i, (in_norm, qkv_w, qkv_b, o_w, o_wide, o_b, post_norm, gate_up, down, window) in enumerate(self.layers):
            h = rms_norm(x, in_norm, eps)                                         # [T, D]
            qkv = linear(h, qkv_w, qkv_b)                                         # [T, (H+2K)E]
            qk = apply_rope(qkv[:, :QK].reshape(T, H + K, E).transpose(1, 0, 2), cos, sin)  # [H+K, T, E]
            self.cache_k[i, :, start:S] = qk[H:]
            self.cache_v[i, :, start:S] = qkv[:, QK:].reshape(T, K, E).transpose(1, 0, 2)
            probs = attention_probs(qk[:H], self.cache_k[i, :, :S], start, window)          # [H, T, S]
            out = attention(probs, self.cache_v[i, :, :S])                                  # [H, T, E]
            o = times_t(out.transpose(1, 0, 2).reshape(T, H * E), o_w if T > 1 else o_wide)[:, :len(o_w)]
            x = x + (o if o_b is None else o + o_b)                                         # [T, D]
            if residual is not None:
                residual.append(x)
            x = x + gated_mlp(rms_norm(x, post_norm, eps), gate_up, down)                   # [T, D]
            if residual is not None:
                residual.append(x)
            if trace is not None:
                trace["attention"].append(probs[:, -1, :])  # [H, S]
                trace["norms"].append(float(np.linalg.norm(x[-1])))
        self.length = S
        x = x if all_logits else x[-1:]
        logits = times_t(rms_norm(x, self.w["model.norm.weight"], cfg.rms_norm_eps), self.lm_head)  # [T or 1, V]
        return logits if all_logits else logits[0]
