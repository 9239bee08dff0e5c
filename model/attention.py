"""Causal, grouped-query attention as pure NumPy functions, each forward with its backward beside it.

    probs = softmax(q k^T / sqrt(E) + mask)      out = probs v

Query head h reads key/value head h // (H // K): each KV head serves a block of consecutive query
heads. The mask hides the future (and, with a sliding window, the distant past). Shapes use the
letters of model/config.py; a leading batch [B, ...] works everywhere.
"""
import numpy as np


def softmax(x: np.ndarray, inplace: bool = False) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), over the last axis (`inplace`: into x)."""
    e = np.subtract(x, np.maximum.reduce(x, axis=-1, keepdims=True), out=x if inplace else None)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def softmax_backward(dp: np.ndarray, p: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """p = softmax(s)  =>  ds = p . (dp - sum_S(dp . p))  (times `scale`)    dp, p: [..., S] -> ds [..., S]

    Masked positions have p = 0, so they get no gradient. subtle: written into dp.
    """
    dot = np.add.reduce(dp * p, axis=-1, keepdims=True)              # [..., 1]
    dp -= dot
    dp *= p
    if scale != 1.0:
        dp *= dp.dtype.type(scale)
    return dp


def attention_probs(q: np.ndarray, k: np.ndarray, start: int, window: int | None = None,
                    scale: float | None = None, hidden: np.ndarray | None = None) -> np.ndarray:
    """softmax(q k^T * scale + causal mask), scale = E^-1/2, grouped-query    q: [H, T, E], k: [K, S, E] -> [H, T, S]

    (A batch works too: q [B, H, T, E], k [B, K, S, E] -> [B, H, T, S].)
    q holds positions start..start+T-1 and k positions 0..S-1 (S = start+T). Row t may see keys
    0..start+t only (the causal mask), and with a sliding `window` (Mistral) only the last `window`
    of those: key j is seen from position i when i - window < j <= i. Gemma 3 scales by
    query_pre_attn_scalar^-1/2 instead (`scale`). An explicit `hidden` [T, S] (True: not seen)
    replaces the causal mask, for several sequences packed into one pass (model/llama.py forward_packed).
    """
    *B, H, T, E = q.shape
    K, S = k.shape[-3:-1]
    G = H // K
    qg = q.reshape(*B, K, G * T, E)                                 # [K, G*T, E]: a group's rows share keys
    scores = (qg @ np.swapaxes(k, -1, -2)).reshape(*B, K, G, T, S)  # [K, G*T, S] -> [K, G, T, S]
    scores *= q.dtype.type(1.0 / np.sqrt(E) if scale is None else scale)
    if hidden is None and (T > 1 or (window is not None and S > window)):
        rows, keys = start + np.arange(T)[:, None], np.arange(S)[None, :]
        hidden = keys > rows                                        # [T, S] the future
        if window is not None:
            hidden |= keys <= rows - window                         # [T, S] beyond the window
    if hidden is not None:                                          # + 0 or + -inf: one pass (a boolean
        scores += np.where(hidden, -np.inf, 0).astype(scores.dtype)  # assignment was 10x slower)
    return softmax(scores, inplace=True).reshape(*B, H, T, S)       # [K, G, T, S] -> [H, T, S]


def attention(probs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """out = probs v, each query head reading its KV head    probs: [H, T, S], v: [K, S, E] -> [H, T, E]"""
    *B, H, T, S = probs.shape
    K = v.shape[-3]
    out = probs.reshape(*B, K, (H // K) * T, S) @ v                 # [K, G*T, E]: one product per KV head
    return out.reshape(*B, H, T, -1)


def attention_backward(dout: np.ndarray, probs: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                       scale: float | None = None):
    """out = P V,  P = softmax(Q K^T * scale + mask), scale = E^-1/2, query head h reading KV head h // G

      dV = P^T dout         dP = dout V^T         dS = softmax_backward(dP, P) * scale
      dQ = dS K             dK = dS^T Q
    with dK and dV summed over the G query heads that share each KV head (grouped-query).
    The backward of attention_probs and attention together.

    dout, q: [B, H, T, E]; probs: [B, H, T, S]; k, v: [B, K, S, E] -> dq [B, H, T, E], dk, dv [B, K, S, E].
    """
    *B, H, T, E = q.shape
    K, S = k.shape[-3:-1]
    G = H // K
    P = probs.reshape(*B, K, G, T, S)                                  # [B, K, G, T, S]
    dO = dout.reshape(*B, K, G, T, E)
    dv = (np.swapaxes(P, -1, -2) @ dO).sum(axis=-3)                    # [B, K, G, S, E] -> [B, K, S, E]
    dP = dO @ np.swapaxes(v, -1, -2)[..., None, :, :]                  # [B, K, G, T, S]
    dS = softmax_backward(dP, P, 1.0 / np.sqrt(E) if scale is None else scale)
    dq = (dS @ k[..., None, :, :]).reshape(*B, H, T, E)                # [B, K, G, T, E] -> [B, H, T, E]
    dk = (np.swapaxes(dS, -1, -2) @ q.reshape(*B, K, G, T, E)).sum(axis=-3)   # [B, K, S, E]
    return dq, dk, dv
