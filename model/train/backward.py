"""The backward pass of each forward function in model/layers.py, derived by hand.

Each `X_backward` takes dL/d(output) and what the forward saved, and returns dL/d(inputs)
(and its weights). Formulas use the letters of model/config.py, with N = B * T rows; "."
is an elementwise product and sums run over the axis named. No autograd: every gradient is
a few lines of array math a reader can check against the formula above it (and the tests
check against finite differences and PyTorch).
"""
import numpy as np


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, bias: bool = False):
    """y = x W^T + b  =>  dx = dy W,  dW = dy^T x,  db = sum_N dy

    dy: [N, O], x: [N, I], W: [O, I] -> dx [N, I], dW [O, I], db [O] (None without a bias).
    """
    return dy @ weight, dy.T @ x, (dy.sum(axis=0) if bias else None)


def rms_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, eps: float):
    """y = xhat . w,  xhat = x r,  r = 1 / sqrt(mean(x^2) + eps)

      dw = sum_N dy . xhat
      dx = r (g - xhat mean_D(g . xhat)),  g = dy . w      (the cross term: every x_j moves r)

    dy, x: [N, D], w: [D] -> dx [N, D], dw [D].
    """
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + x.dtype.type(eps))   # [N, 1]
    xhat = x * r                                                                 # [N, D]
    g = dy * weight                                                              # [N, D]
    dx = r * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0)


def apply_rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """y = x cos + R x sin, R [a, b] = [-b, a]  =>  dx = dy cos + R^T (dy sin), R^T [c, d] = [d, -c]

    A rotation's transpose is the rotation back.  dy: [..., T, E], cos/sin: [T, E] -> dx [..., T, E].
    """
    s = dy * sin
    half = dy.shape[-1] // 2
    return dy * cos + np.concatenate([s[..., half:], -s[..., :half]], axis=-1)


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """p = softmax(s)  =>  ds = p . (dp - sum_S(dp . p))        dp, p: [..., S] -> ds [..., S]

    Masked positions have p = 0, so they get no gradient.
    """
    return p * (dp - np.sum(dp * p, axis=-1, keepdims=True))


def attention_backward(dout: np.ndarray, probs: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray):
    """out = P V,  P = softmax(Q K^T / sqrt(E) + mask), query head h reading KV head h // G

      dV = P^T dout         dP = dout V^T         dS = softmax_backward(dP, P) / sqrt(E)
      dQ = dS K             dK = dS^T Q
    with dK and dV summed over the G query heads that share each KV head (grouped-query).

    dout, q: [B, H, T, E]; probs: [B, H, T, S]; k, v: [B, K, S, E] -> dq [B, H, T, E], dk, dv [B, K, S, E].
    """
    *B, H, T, E = q.shape
    K, S = k.shape[-3:-1]
    G = H // K
    P = probs.reshape(*B, K, G, T, S)                                  # [B, K, G, T, S]
    dO = dout.reshape(*B, K, G, T, E)
    dv = (np.swapaxes(P, -1, -2) @ dO).sum(axis=-3)                    # [B, K, G, S, E] -> [B, K, S, E]
    dP = dO @ np.swapaxes(v, -1, -2)[..., None, :, :]                  # [B, K, G, T, S]
    dS = softmax_backward(dP, P) * q.dtype.type(1.0 / np.sqrt(E))
    dq = (dS @ k[..., None, :, :]).reshape(*B, H, T, E)                # [B, K, G, T, E] -> [B, H, T, E]
    dk = (np.swapaxes(dS, -1, -2) @ q.reshape(*B, K, G, T, E)).sum(axis=-3)   # [B, K, S, E]
    return dq, dk, dv


def swiglu_backward(dm: np.ndarray, g: np.ndarray, u: np.ndarray, sig: np.ndarray):
    """m = silu(g) . u,  silu(g) = g sig(g)  =>  du = dm . silu(g),  dg = dm . u . sig(g) (1 + g (1 - sig(g)))

    The inner product of SwiGLU (its three projections are linear_backward); sig = sigmoid(g), as the
    forward saved it.  dm, g, u, sig: [N, F] -> dg, du [N, F].
    """
    du = dm * g
    du *= sig
    slope = 1 - sig                                                    # silu'(g) = sig (1 + g (1 - sig))
    slope *= g
    slope += 1
    slope *= sig
    dg = dm * u
    dg *= slope
    return dg, du


def embedding_backward(dx: np.ndarray, ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """x = W_E[ids]  =>  dW_E[v] = sum of dx over the positions whose id is v (repeats accumulate)

    dx: [N, D], ids: [N] -> dW_E [V, D].
    """
    dW = np.zeros((vocab_size, dx.shape[-1]), dtype=dx.dtype)
    np.add.at(dW, ids, dx)
    return dW


def cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """L = mean_N( logsumexp(z) - z[target] ); returns L and p = softmax(z), which the backward reads

    logits: [N, V], targets: [N] -> scalar, p [N, V].
    """
    e = logits - logits.max(axis=-1, keepdims=True)                      # [N, V], max 0: exp cannot overflow
    picked = e[np.arange(len(targets)), targets]                          # [N] z[target] - max z
    np.exp(e, out=e)                                                      # one [N, V] array, reused
    total = e.sum(axis=-1, keepdims=True)                                 # [N, 1]
    loss = np.mean(np.log(total[:, 0]) - picked)
    e /= total
    return float(loss), e


def cross_entropy_backward(p: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """dL/dz = (softmax(z) - onehot(target)) / N        p: [N, V], targets: [N] -> dz [N, V]

    subtle: written into p (the forward's softmax, not needed again): [N, V] is the largest array
    of a step when V is a real vocabulary (49152 for SmolLM2).
    """
    p[np.arange(len(targets)), targets] -= 1
    p /= len(targets)
    return p
