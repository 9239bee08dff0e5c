"""Rotary frequencies and how the family members stretch them for longer contexts.

Every pair of dimensions (i, i + E/2) of q and k turns at its own speed:
    inv_freq[i] = theta^(-2i/E),   i < E/2          (theta: 10000 in TinyLlama, 100000 in SmolLM2)
A position p turns pair i by the angle p * inv_freq[i]. Models trained for a short context and
run on a longer one slow the turning down ("rope scaling"), each family its own way:
  linear   every frequency divided by `factor` (position interpolation; older fine-tunes)
  llama3   Llama-3.1/3.2: slow frequencies (wavelength > original_context / low_freq_factor)
           divided by `factor`, fast ones (wavelength < original_context / high_freq_factor) kept,
           and a smooth blend in between
  dynamic  NTK-aware: theta grows once the sequence passes max_position_embeddings; inside the
           context (where we stop) it equals the default, exactly as transformers computes it
  GGUF     llama.cpp stores Llama-3's result as a tensor `rope_freqs` of per-frequency divisors
All in float32, computed the way transformers does, so positions far along agree bit for bit.
"""

import numpy as np

SCALING_TYPES = ("linear", "llama3", "dynamic")


def inv_frequencies(head_dim: int, theta: float) -> np.ndarray:
    """inv_freq[i] = 1 / theta^(2i/E), in float32                      -> [E/2]"""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    return (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)


def linear_scaling(inv_freq: np.ndarray, factor: float) -> np.ndarray:
    """inv_freq / factor"""
    return (inv_freq / np.float32(factor)).astype(np.float32)


def llama3_scaling(inv_freq: np.ndarray, *, factor: float, low_freq_factor: float, high_freq_factor: float,
                   original_max_position_embeddings: int) -> np.ndarray:
    """Llama-3's rule by wavelength w = 2 pi / inv_freq, with L = original_max_position_embeddings:
    w < L / high_freq_factor: kept;  w > L / low_freq_factor: / factor;
    between: (1 - s) inv_freq / factor + s inv_freq,  s = (L / w - low_freq_factor) / (high_freq_factor - low_freq_factor)
    """
    f32 = np.float32
    old = f32(original_max_position_embeddings)
    low_wavelen, high_wavelen = old / f32(low_freq_factor), old / f32(high_freq_factor)
    wavelen = (f32(2 * np.pi) / inv_freq).astype(np.float32)
    scaled = np.where(wavelen > low_wavelen, inv_freq / f32(factor), inv_freq).astype(np.float32)
    smooth = ((old / wavelen - f32(low_freq_factor)) / (f32(high_freq_factor) - f32(low_freq_factor))).astype(np.float32)
    smoothed = ((1 - smooth) * scaled / f32(factor) + smooth * scaled).astype(np.float32)
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def scaled_frequencies(head_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
    """The model's inv_freq [E/2]: the default, then its rope scaling (config.rope_scaling)."""
    inv_freq = inv_frequencies(head_dim, theta)
    kind = (scaling or {}).get("rope_type")
    if kind == "linear":
        return linear_scaling(inv_freq, scaling["factor"])
    if kind == "llama3":
        return llama3_scaling(inv_freq, factor=scaling["factor"], low_freq_factor=scaling["low_freq_factor"],
                              high_freq_factor=scaling["high_freq_factor"],
                              original_max_position_embeddings=scaling["original_max_position_embeddings"])
    return inv_freq  # default, and dynamic inside the context (see the module doc)


def cos_sin(inv_freq: np.ndarray, max_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of angle[p, i] = p * inv_freq[i], repeated for both halves      -> [P, E] each"""
    angles = np.arange(max_positions, dtype=np.float32)[:, None] * inv_freq[None, :]  # [P, E/2]
    angles = np.concatenate([angles, angles], axis=-1)                               # [P, E]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def model_frequencies(cfg, layer: int = 0) -> np.ndarray:
    """The inverse frequencies [E/2] a model's config asks for at a layer: GGUF rope_freqs divisors, else
    its scaling (Gemma 3's sliding layers have a base of their own, unscaled: config.rope)."""
    theta, scaling = cfg.rope(layer)
    local = cfg.local_rope_theta is not None and cfg.window(layer) is not None
    if cfg.rope_divisors is not None and not local:  # GGUF's rope_freqs: Llama-3's scaling as divisors
        return inv_frequencies(cfg.head_dim, theta) / np.array(cfg.rope_divisors, np.float32)
    return scaled_frequencies(cfg.head_dim, theta, scaling)


def rope_tables(head_dim: int, max_positions: int, theta: float, scaling: dict | None = None,
                inv_freq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of angle[p, i] = p * theta^(-2i/E), i < E/2, repeated for both halves -> [P, E] each.

    With `scaling` (config.rope_scaling) or explicit `inv_freq`, the frequencies are first
    stretched as the model family does it (above). Float32, as Hugging Face computes it.
    """
    if inv_freq is None:
        inv_freq = scaled_frequencies(head_dim, theta, scaling)  # [E/2]
    return cos_sin(inv_freq, max_positions)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """x * cos + rotate_half(x) * sin, rotate_half([a, b]) = [-b, a]    x: [..., T, E], cos/sin: [T, E]

    The half-rotation layout of Hugging Face checkpoints: dimension i pairs with i + E/2.
    rotate_half is two slice copies into one buffer, no concatenation and no gather (a fancy-index
    gather was 8x slower over a 512-token prompt: 7.3 ms against 0.93 ms for Gemma 3's q and k).
    """
    half = x.shape[-1] // 2
    rotated = np.empty_like(x)                                 # [..., T, E]
    np.negative(x[..., half:], out=rotated[..., :half])        # [-b, .]
    rotated[..., half:] = x[..., :half]                        # [-b, a]
    rotated *= sin
    out = x * cos
    out += rotated
    return out


def apply_rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """y = x cos + R x sin, R [a, b] = [-b, a]  =>  dx = dy cos + R^T (dy sin) = dy cos - R (dy sin)

    A rotation's transpose is the rotation back: apply_rope by the angle's negative (-sin).
    dy: [..., T, E], cos/sin: [T, E] -> dx [..., T, E].
    """
    return apply_rope(dy, cos, -sin)
