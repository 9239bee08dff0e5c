"""The math of a Llama block as pure NumPy functions (shapes use the letters in model/config.py).

Inference runs them in float32; training (model/train/) runs the same functions on batches
(leading dimensions [B, ...]) and in float64 for exact checks: constants take the input's dtype.
Each function's docstring starts with its formula; its backward is in model/train/backward.py.
"""
import functools

import numpy as np

from .rope import cos_sin, scaled_frequencies


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = x / sqrt(mean(x^2) + eps) * weight      x: [T, D], weight: [D] -> [T, D]

    >>> rms_norm(np.array([[3.0, 4.0]], np.float32), np.ones(2, np.float32), 0.0)
    array([[0.8485281, 1.1313709]], dtype=float32)
    """
    variance = np.add.reduce(x * x, axis=-1, keepdims=True)  # [T, 1]; as np.mean, without its Python wrapper
    variance /= x.shape[-1]
    variance += x.dtype.type(eps)
    y = x / np.sqrt(variance, out=variance)
    y *= weight
    return y


def rope_tables(head_dim: int, max_positions: int, theta: float, scaling: dict | None = None,
                inv_freq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of angle[p, i] = p * theta^(-2i/E), i < E/2, repeated for both halves -> [P, E] each.

    With `scaling` (config.rope_scaling) or explicit `inv_freq`, the frequencies are first
    stretched as the model family does it (model/rope.py). Float32, as Hugging Face computes it.
    """
    if inv_freq is None:
        inv_freq = scaled_frequencies(head_dim, theta, scaling)  # [E/2]
    return cos_sin(inv_freq, max_positions)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """x * cos + rotate_half(x) * sin, rotate_half([a, b]) = [-b, a]    x: [N, T, E], cos/sin: [T, E]

    The half-rotation layout of Hugging Face checkpoints: dimension i pairs with i + E/2.
    rotate_half is one gather ([b, a]) and one negation in place: no concatenation.
    """
    half = x.shape[-1] // 2
    rotated = x[..., _halves_swapped(x.shape[-1])]          # [N, T, E]: [b, a]
    np.negative(rotated[..., :half], out=rotated[..., :half])  # [-b, a]
    rotated *= sin
    out = x * cos
    out += rotated
    return out


@functools.cache
def _halves_swapped(E: int) -> np.ndarray:
    """The index [E/2, ..., E-1, 0, ..., E/2-1], made once per head size."""
    return np.r_[E // 2:E, 0:E // 2]


SMALL_T = 16  # up to this many rows, x W^T is computed as (W x^T)^T (see times_t)


def times_t(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x W^T      x: [T, I], W: [O, I] -> [T, O]

    subtle: for a few rows (a speculative check of T = 2..9 tokens) OpenBLAS's x @ W^T packs all
    of W first and costs ~4x one row's pass; (W x^T)^T costs ~2.5x. One row is a mat-vec either way.
    """
    if 1 < x.shape[0] <= SMALL_T and x.ndim == 2:
        return (weight @ x.T).T
    return x @ weight.T


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T (+ b)      x: [T, I], W: [O, I], b: [O] -> [T, O]   (Qwen2 has b on q, k, v)"""
    y = times_t(x, weight)
    return y if bias is None else y + bias


def softmax(x: np.ndarray) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), over the last axis."""
    e = x - np.maximum.reduce(x, axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def attention_probs(q: np.ndarray, k: np.ndarray, start: int, window: int | None = None) -> np.ndarray:
    """softmax(q k^T / sqrt(E) + causal mask), grouped-query    q: [H, T, E], k: [K, S, E] -> [H, T, S]

    (A batch works too: q [B, H, T, E], k [B, K, S, E] -> [B, H, T, S].)
    q holds positions start..start+T-1 and k positions 0..S-1 (S = start+T). Query head h
    reads key head h // (H // K): each KV head serves a block of consecutive query heads.
    Row t may see keys 0..start+t only (the causal mask), and with a sliding `window` (Mistral)
    only the last `window` of those: key j is seen from position i when i - window < j <= i.
    """
    *B, H, T, E = q.shape
    K, S = k.shape[-3:-1]
    G = H // K
    qg = q.reshape(*B, K, G * T, E)                                 # [K, G*T, E]: a group's rows share keys
    scores = (qg @ np.swapaxes(k, -1, -2)).reshape(*B, K, G, T, S)  # [K, G*T, S] -> [K, G, T, S]
    scores *= q.dtype.type(1.0 / np.sqrt(E))
    if T > 1 or (window is not None and S > window):
        rows, keys = start + np.arange(T)[:, None], np.arange(S)[None, :]
        hidden = keys > rows                                        # [T, S] the future
        if window is not None:
            hidden |= keys <= rows - window                         # [T, S] beyond the window
        scores[..., hidden] = -np.inf
    return softmax(scores).reshape(*B, H, T, S)                     # [K, G, T, S] -> [H, T, S]


def attention(probs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """out = probs v, each query head reading its KV head    probs: [H, T, S], v: [K, S, E] -> [H, T, E]"""
    *B, H, T, S = probs.shape
    K = v.shape[-3]
    out = probs.reshape(*B, K, (H // K) * T, S) @ v                 # [K, G*T, E]: one product per KV head
    return out.reshape(*B, H, T, -1)


def silu(x: np.ndarray) -> np.ndarray:
    """silu(x) = x * sigmoid(x) = x / (1 + exp(-x))"""
    return x / (1 + np.exp(-x))


def swiglu(x: np.ndarray, gate_proj: np.ndarray, up_proj: np.ndarray, down_proj: np.ndarray) -> np.ndarray:
    """down(silu(gate(x)) * up(x))      x: [T, D]; gate_proj, up_proj: [F, D]; down_proj: [D, F] -> [T, D]"""
    hidden = silu(x @ gate_proj.T) * (x @ up_proj.T)  # [T, F]
    return times_t(hidden, down_proj)                 # [T, F] -> [T, D]


def gated_mlp(x: np.ndarray, gate_up: np.ndarray, down_proj: np.ndarray) -> np.ndarray:
    """swiglu with gate and up as one matrix: [g | u] = x [W_gate | W_up]^T; down(silu(g) * u)

    x: [T, D]; gate_up: [2F, D] (gate's rows first); down_proj: [D, F] -> [T, D]. One call reads both.
    """
    gu = times_t(x, gate_up)                          # [T, 2F]
    F = gu.shape[-1] // 2
    g = gu[:, :F]
    hidden = g / (1 + np.exp(-g))                     # silu(g)
    hidden *= gu[:, F:]                               # * u
    return times_t(hidden, down_proj)                 # [T, F] -> [T, D]
