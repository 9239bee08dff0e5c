"""AdamW (decoupled weight decay, as torch.optim.AdamW), gradient clipping by the global norm, and
nanoGPT's learning-rate schedule (linear warmup, cosine decay to a floor)."""
import math

import numpy as np


def lr_at(step: int, *, lr: float, min_lr: float, warmup: int, steps: int) -> float:
    """lr (step+1)/(warmup+1) while warming up, then min_lr + (lr - min_lr) (1 + cos(pi r)) / 2,
    r = (step - warmup) / (steps - warmup) going 0 -> 1; min_lr from `steps` on (nanoGPT's get_lr)."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= steps:
        return min_lr
    r = (step - warmup) / max(steps - warmup, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / (||g|| + 1e-6)), ||g|| over every tensor; return ||g||.

    As torch.nn.utils.clip_grad_norm_: the norm before clipping is returned.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def decays(name: str, shape) -> bool:
    """Weight decay for matrices (projections, embeddings), never for norms or biases (nanoGPT's rule)."""
    return len(shape) >= 2


class AdamW:
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w -= lr wd w;  w -= lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)

    The moments m, v have the shapes of the weights (kept in `state`, by name); updates are in place.
    """

    def __init__(self, weights: dict, *, betas=(0.9, 0.99), eps: float = 1e-8, weight_decay: float = 0.1):
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.t = 0
        self.m = {n: np.zeros_like(w) for n, w in weights.items()}
        self.v = {n: np.zeros_like(w) for n, w in weights.items()}

    def step(self, weights: dict, grads: dict, lr: float) -> None:
        """One update of every weight from its gradient, at learning rate lr."""
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for n, w in weights.items():
            g, m, v = grads[n], self.m[n], self.v[n]
            one = w.dtype.type
            m *= one(self.b1)
            m += one(1 - self.b1) * g
            v *= one(self.b2)
            v += one(1 - self.b2) * g * g
            if self.weight_decay and decays(n, w.shape):
                w *= one(1 - lr * self.weight_decay)
            denom = np.sqrt(v) / one(math.sqrt(c2))
            denom += one(self.eps)
            w -= one(lr / c1) * m / denom
