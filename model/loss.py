"""The training loss: cross-entropy of the next token, with its backward.

    L = mean over the counted positions of -log softmax(z)[target]

A target of IGNORE (-100, PyTorch's ignore_index) is not counted: the position neither adds to
the loss nor gets a gradient.
"""
import numpy as np

IGNORE = -100


def cross_entropy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None):
    """L = sum_counted( logsumexp(z) - z[target] ) / n_counted; returns L and p = softmax(z), which the
    backward reads (targets equal to IGNORE are not counted). With `weights` [N]: L = sum_t w_t nll_t
    instead (preference tuning weighs each sequence's tokens by its coefficient: model/train/dpo.py).

    logits: [N, V], targets: [N] -> scalar, p [N, V].
    """
    counted = targets != IGNORE                                           # [N]
    rows, picked_ids = np.arange(len(targets)), np.where(counted, targets, 0)
    e = logits - logits.max(axis=-1, keepdims=True)                      # [N, V], max 0: exp cannot overflow
    picked = e[rows, picked_ids]                                          # [N] z[target] - max z
    np.exp(e, out=e)                                                      # one [N, V] array, reused
    total = e.sum(axis=-1, keepdims=True)                                 # [N, 1]
    per_position = np.log(total[:, 0]) - picked                           # [N]
    if weights is not None:
        loss = float(np.sum(np.where(counted, per_position * weights, 0.0)))
    else:
        loss = per_position.mean() if counted.all() else per_position[counted].sum() / max(counted.sum(), 1)
    e /= total
    return float(loss), e


def cross_entropy_backward(p: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """dL/dz = (softmax(z) - onehot(target)) / n_counted (or * w_t with weights), and 0 on positions not counted

    p: [N, V], targets: [N] -> dz [N, V].
    subtle: written into p (the forward's softmax, not needed again): [N, V] is the largest array
    of a step when V is a real vocabulary (49152 for SmolLM2).
    """
    counted = targets != IGNORE
    rows = np.flatnonzero(counted)
    p[rows, targets[rows]] -= 1
    if not counted.all():
        p[~counted] = 0
    if weights is not None:
        p *= np.where(counted, weights, 0).astype(p.dtype)[:, None]
    else:
        p /= max(len(rows), 1)
    return p
