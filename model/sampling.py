"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus).

Every random choice draws from an explicit `numpy.random.Generator`, so a seed fixes the text.
Order, as in Hugging Face: temperature, then top-k, then top-p.
"""
import math

import numpy as np


MIN_TEMPERATURE = 1e-3  # below this, logits / t overflow float64 for real logits: use 0 (greedy)


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ValueError naming the first invalid sampling value."""
    if not _finite(temperature) or (temperature != 0 and not MIN_TEMPERATURE <= temperature):
        raise ValueError(f"temperature must be a finite number: 0 (greedy) or at least {MIN_TEMPERATURE}, "
                         f"got {temperature}")
    if top_k < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p must be in (0, 1] (1 = off), got {top_p}")


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (OverflowError, TypeError, ValueError):  # an int too large for a float, or not a number
        return False


def top_k_candidates(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits (unordered), by partition: O(V), not a sort."""
    if k <= 0 or k >= len(logits):
        return np.arange(len(logits))
    return np.argpartition(logits, -k)[-k:]


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """p_i = exp(l_i / t) / sum_j exp(l_j / t), computed in float64 for a stable sum."""
    z = logits.astype(np.float64) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def top_p_filter(probs: np.ndarray, p: float) -> np.ndarray:
    """Positions of the smallest set of most likely tokens whose probabilities add up to >= p.

    subtle: apart from the most likely token (always kept, as HF's min_tokens_to_keep=1), a
    token below (1 - p) / (n - 1) can never be inside the nucleus: the j-th token (j >= 1) is
    kept only if the j before it sum to < p, so the n - j from it on hold > 1 - p, each at most
    its own probability. Only the tokens above that cutoff are sorted, never the whole vocabulary.
    """
    n = len(probs)
    if p >= 1 or n == 1:
        return np.arange(n)
    keep = np.flatnonzero(probs >= min((1 - p) / (n - 1), probs.max()))
    order = keep[np.argsort(-probs[keep], kind="stable")]
    cum = np.cumsum(probs[order])
    last = int(np.searchsorted(cum, p))  # first position where the running sum reaches p
    return order[:last + 1]


def filtered(logits: np.ndarray, *, temperature: float, top_k: int = 0, top_p: float = 1.0):
    """The distribution `sample` draws from: (ids [N], probabilities [N] summing to 1), after
    temperature, top-k and top-p; temperature 0 is all mass on the argmax."""
    if temperature == 0:
        return np.array([int(np.argmax(logits))]), np.ones(1)
    candidates = top_k_candidates(logits, top_k)              # [C]
    probs = probabilities(logits[candidates], temperature)    # [C]
    nucleus = top_p_filter(probs, top_p)                      # [N] positions into candidates
    return candidates[nucleus], probs[nucleus] / probs[nucleus].sum()


def sample(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0) -> int:
    """Pick the next token id: argmax when temperature is 0, otherwise a filtered random draw."""
    if temperature == 0:
        return int(np.argmax(logits))
    ids, chosen = filtered(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return int(ids[rng.choice(len(ids), p=chosen)])


def explain(logits: np.ndarray, token: int, *, temperature: float, top_k: int, top_p: float, show: int = 10) -> dict:
    """What `sample` saw when it drew `token`: the `show` most likely tokens with their probability
    before and after temperature, whether top-k and top-p kept them, and their final probability.

    It draws nothing (the rng is untouched), so the text is the same with or without it.
    """
    show = max(1, min(show, len(logits)))
    top = np.argpartition(logits, -show)[-show:]
    top = top[np.argsort(-logits[top], kind="stable")]                           # [show], most likely first
    raw = probabilities(logits, 1.0)                                             # [V] temperature 1
    if temperature == 0:
        best = int(np.argmax(logits))
        final = {best: 1.0}
        after, kept_k, kept_p = (raw == raw.max()).astype(np.float64), 1, 1
    else:
        after = probabilities(logits, temperature)                               # [V]
        candidates = top_k_candidates(logits, top_k)
        probs = probabilities(logits[candidates], temperature)
        nucleus = top_p_filter(probs, top_p)
        kept = probs[nucleus] / probs[nucleus].sum()
        final = {int(candidates[j]): float(q) for j, q in zip(nucleus, kept)}
        kept_k, kept_p = len(candidates), len(nucleus)
        in_k = set(int(i) for i in candidates)
    rows = []
    for rank, i in enumerate(int(i) for i in top):
        rows.append({"id": i, "rank": rank, "p": float(raw[i]), "p_temperature": float(after[i]),
                     "in_top_k": True if temperature == 0 else i in in_k, "in_top_p": i in final,
                     "p_final": final.get(i, 0.0), "logit": float(logits[i])})
    return {"token": int(token), "p_token": final.get(int(token), 0.0), "rank": int(np.sum(logits > logits[token])),
            "kept_top_k": kept_k, "kept_top_p": kept_p, "candidates": rows}
