"""The layers of a Llama block as pure NumPy functions, each forward with its backward beside it.

Shapes use the letters of model/config.py; N = B * T rows when a batch is flattened. Inference
runs the forwards in float32 on [T, ...]; training (model/train/) runs the same functions on
batches and in float64 for exact checks: constants take the input's dtype. Each `X_backward`
takes dL/d(output) and what the forward kept, and returns dL/d(inputs) (and its weights'); "."
is an elementwise product, sums run over the axis named. No autograd: every gradient is a few
lines of array math a reader can check against the formula above it (the tests check them
against finite differences and PyTorch). Attention is in model/attention.py, rotary embeddings in
model/rope.py, the loss in model/loss.py.
"""
import numpy as np

from .speed import times_t


def embedding(W: np.ndarray, ids: np.ndarray, scale: float | None = None) -> np.ndarray:
    """x = W_E[ids] (* scale: Gemma 3 multiplies by sqrt(D))      W: [V, D], ids: [...] -> [..., D]"""
    x = W[ids]
    if scale is not None:
        x *= W.dtype.type(scale)
    return x


def embedding_backward(dx: np.ndarray, ids: np.ndarray, vocab_size: int, scale: float | None = None) -> np.ndarray:
    """x = W_E[ids] * scale  =>  dW_E[v] = scale * sum of dx over the positions whose id is v (repeats accumulate)

    dx: [N, D], ids: [N] -> dW_E [V, D].
    """
    dW = np.zeros((vocab_size, dx.shape[-1]), dtype=dx.dtype)
    np.add.at(dW, ids, dx if scale is None else dx * dx.dtype.type(scale))
    return dW


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = x / sqrt(mean(x^2) + eps) * weight      x: [..., D], weight: [D] -> [..., D]

    >>> rms_norm(np.array([[3.0, 4.0]], np.float32), np.ones(2, np.float32), 0.0)
    array([[0.8485281, 1.1313709]], dtype=float32)
    """
    variance = np.add.reduce(x * x, axis=-1, keepdims=True)  # [..., 1]; as np.mean, without its Python wrapper
    variance /= x.shape[-1]
    variance += x.dtype.type(eps)
    y = x / np.sqrt(variance, out=variance)
    y *= weight
    return y


def rms_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, eps: float):
    """y = xhat . w,  xhat = x r,  r = 1 / sqrt(mean(x^2) + eps)

      dw = sum_N dy . xhat
      dx = r (g - xhat mean_D(g . xhat)),  g = dy . w      (the cross term: every x_j moves r)

    dy, x: [..., D], w: [D] -> dx [..., D], dw [D].
    """
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + x.dtype.type(eps))   # [..., 1]
    xhat = x * r                                                                 # [..., D]
    g = dy * weight                                                              # [..., D]
    dx = r * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, x.shape[-1]).sum(axis=0)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           padded: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T (+ b)      x: [..., I], W: [O, I], b: [O] -> [..., O]   (Qwen2 has b on q, k, v)

    `padded` (W with zero rows after it, model/speed.py) only changes how one row is computed.
    """
    y = times_t(x, weight, padded)
    return y if bias is None else y + bias


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, bias: bool = False, frozen: bool = False):
    """y = x W^T + b  =>  dx = dy W,  dW = dy^T x,  db = sum_N dy

    dy: [N, O], x: [N, I], W: [O, I] -> dx [N, I], dW [O, I], db [O] (None without a bias, or when `frozen`:
    a weight that is not trained needs only dx).
    """
    if frozen:
        return dy @ weight, None, None
    return dy @ weight, dy.T @ x, (dy.sum(axis=0) if bias else None)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """sigmoid(x) = 1 / (1 + exp(-x))"""
    e = np.negative(x)                                # one buffer, each step in place
    np.exp(e, out=e)
    e += 1
    return np.divide(1, e, out=e)


def swiglu(x: np.ndarray, gate_up: np.ndarray, down: np.ndarray, keep: dict | None = None) -> np.ndarray:
    """down(silu(g) . u),  [g | u] = x [W_gate | W_up]^T,  silu(g) = g sigmoid(g)

    x: [N, D]; gate_up: [2F, D] (gate's rows first: one matrix call reads both); down: [D, F] -> [N, D].
    With `keep`, also the [N, F] arrays the backward reads: g, u, sig = sigmoid(g), m = silu(g) . u.
    """
    gu = linear(x, gate_up)                           # [N, 2F]
    F = gu.shape[-1] // 2
    g, u = gu[..., :F], gu[..., F:]                   # [N, F] each
    sig = sigmoid(g)
    m = g * sig                                       # silu(g)
    m *= u                                            # silu(g) . u
    if keep is not None:
        keep.update(g=g, u=u, sig=sig, m=m)
    return linear(m, down)                            # [N, F] -> [N, D]


def swiglu_backward(dm: np.ndarray, g: np.ndarray, u: np.ndarray, sig: np.ndarray):
    """m = silu(g) . u,  silu(g) = g sig(g)  =>  du = dm . silu(g),  dg = dm . u . sig(g) (1 + g (1 - sig(g)))

    The inner product of SwiGLU (its projections are linear_backward); sig = sigmoid(g), as the
    forward kept it.  dm, g, u, sig: [N, F] -> dg, du [N, F].
    """
    du = dm * g
    du *= sig
    slope = 1 - sig                                                    # silu'(g) = sig (1 + g (1 - sig))
    slope *= g
    slope += 1
    slope *= sig
    slope *= dm
    slope *= u                                                         # dg, in the same buffer
    return slope, du


GELU_C = np.sqrt(2 / np.pi)   # the tanh approximation's constants: gelu(g) ~ g/2 (1 + tanh(c (g + a g^3)))
GELU_A = 0.044715


def geglu(x: np.ndarray, gate_up: np.ndarray, down: np.ndarray, keep: dict | None = None) -> np.ndarray:
    """down(gelu(g) . u),  [g | u] = x [W_gate | W_up]^T,  gelu(g) = g/2 (1 + tanh(c (g + a g^3)))

    Gemma's MLP (GELU with the tanh approximation, c = sqrt(2/pi), a = 0.044715).
    x: [N, D]; gate_up: [2F, D]; down: [D, F] -> [N, D]. With `keep`: g, u, t = tanh(...), m [N, F].
    """
    gu = linear(x, gate_up)                           # [N, 2F]
    F = gu.shape[-1] // 2
    g, u = gu[..., :F], gu[..., F:]                   # [N, F] each
    one = g.dtype.type
    t = g * g                                         # in place from here: one [N, F] buffer each for t and m
    t *= g
    t *= one(GELU_A)
    t += g
    t *= one(GELU_C)
    np.tanh(t, out=t)                                 # t = tanh(c (g + a g^3))
    m = t + 1
    m *= g
    m *= one(0.5)                                     # gelu(g)
    m *= u                                            # gelu(g) . u
    if keep is not None:
        keep.update(g=g, u=u, tanh=t, m=m)
    return linear(m, down)                            # [N, F] -> [N, D]


def geglu_backward(dm: np.ndarray, g: np.ndarray, u: np.ndarray, t: np.ndarray):
    """m = gelu(g) . u,  gelu(g) = g/2 (1 + t),  t = tanh(c (g + a g^3))

      du = dm . gelu(g)
      dg = dm . u . [ (1 + t)/2 + g/2 (1 - t^2) c (1 + 3 a g^2) ]

    dm, g, u, t: [N, F] -> dg, du [N, F]. t as the forward kept it.
    """
    one = g.dtype.type
    du = dm * (one(0.5) * g * (1 + t))
    slope = one(0.5) * (1 + t) + one(0.5) * g * (1 - t * t) * one(GELU_C) * (1 + one(3 * GELU_A) * g * g)
    return dm * u * slope, du
