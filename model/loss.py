"""The training loss: cross-entropy of the next token, with its backward.

    L = mean over the counted positions of -log softmax(z)[target]

A target of IGNORE (-100, PyTorch's ignore_index) is not counted: the position neither adds to
the loss nor gets a gradient.
"""
import numpy as np

from .speed import data_parallel

IGNORE = -100
CE_ROWS = 4        # rows of the [N, V] softmax at a time: 4 x 49,152 floats stay in L2


def cross_entropy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None, *,
                  inplace: bool = False):
    """L = sum_counted( logsumexp(z) - z[target] ) / n_counted; returns L and p = softmax(z), which the
    backward reads (targets equal to IGNORE are not counted). With `weights` [N]: L = sum_t w_t nll_t
    instead (preference tuning weighs each sequence's tokens by its coefficient: model/train/dpo.py).
    With `inplace`, p is written over the logits (a step's largest array, not needed again).

    logits: [N, V], targets: [N] -> scalar, p [N, V].
    A few rows at a time (in L2) on both cores (model/speed.py): 0.67 s -> 0.15 s for SmolLM2's 1,024 x 49,152.
    """
    counted = targets != IGNORE                                           # [N]
    picked_ids = np.where(counted, targets, 0)
    p = logits if inplace else np.empty_like(logits)
    per_position = np.empty(len(targets), logits.dtype)                   # [N]

    def rows(first: int, end: int) -> None:
        for a in range(first, end, CE_ROWS):
            b = min(a + CE_ROWS, end)
            e = np.subtract(logits[a:b], logits[a:b].max(axis=-1, keepdims=True), out=p[a:b])   # max 0: no overflow
            picked = e[np.arange(b - a), picked_ids[a:b]]                 # z[target] - max z
            np.exp(e, out=e)
            total = e.sum(axis=-1, keepdims=True)                         # [rows, 1]
            per_position[a:b] = np.log(total[:, 0]) - picked
            e /= total
    data_parallel(rows, len(targets), one_blas_thread=False, row_size=logits.shape[-1])
    if weights is not None:
        loss = float(np.sum(np.where(counted, per_position * weights, 0.0)))
    else:
        loss = per_position.mean() if counted.all() else per_position[counted].sum() / max(counted.sum(), 1)
    return float(loss), p


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
