"""Every backward (beside its forward in model/layers.py, attention.py, rope.py, loss.py, llama.py), and the
whole model's gradients, against central
finite differences in float64 (hand-derivable: no oracle library needed)."""
import numpy as np
import pytest

from model.config import LlamaConfig
from model.attention import attention, attention_backward, attention_probs
from model.layers import (embedding_backward, geglu, geglu_backward, linear, linear_backward, rms_norm,
                          rms_norm_backward, swiglu_backward)
from model.loss import cross_entropy, cross_entropy_backward
from model.rope import apply_rope, apply_rope_backward, rope_tables
from model.train import loss_and_grads
from model.train.grads import forward_loss

rng = np.random.default_rng(0)


def numeric_grad(f, x, h=1e-6):
    """dL/dx by central differences, element by element (x is changed and restored in place)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        g[idx] = (up - down) / (2 * h)
    return g


def close(a, b, tol=1e-7):
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-12)
    assert np.abs(a - b).max() / scale < tol, np.abs(a - b).max() / scale


def r(*shape):
    return rng.standard_normal(shape)


def test_linear_with_and_without_bias():
    x, W, b, R = r(5, 4), r(3, 4), r(3), r(5, 3)
    dx, dW, db = linear_backward(R, x, W, bias=True)
    loss = lambda: float(np.sum(linear(x, W, b) * R))  # noqa: E731
    close(dx, numeric_grad(loss, x)), close(dW, numeric_grad(loss, W)), close(db, numeric_grad(loss, b))
    assert linear_backward(R, x, W)[2] is None


def test_rms_norm_cross_term():
    x, w, R = r(6, 8), r(8), r(6, 8)
    dx, dw = rms_norm_backward(R, x, w, 1e-5)
    loss = lambda: float(np.sum(rms_norm(x, w, 1e-5) * R))  # noqa: E731
    close(dx, numeric_grad(loss, x)), close(dw, numeric_grad(loss, w))
    assert np.abs(dx - R * w / np.sqrt(np.mean(x * x, -1, keepdims=True) + 1e-5)).max() > 1e-3  # the cross term matters


def test_rope_is_the_rotation_transposed():
    cos, sin = (t.astype(np.float64) for t in rope_tables(8, 5, 10000.0))
    x, R = r(2, 3, 5, 8), r(2, 3, 5, 8)
    loss = lambda: float(np.sum(apply_rope(x, cos, sin) * R))  # noqa: E731
    close(apply_rope_backward(R, cos, sin), numeric_grad(loss, x))


@pytest.mark.parametrize("H,K,window", [(4, 4, None), (4, 2, None), (6, 1, None), (4, 2, 3)])
def test_attention_gqa_sums_over_shared_heads(H, K, window):
    B, T, E = 2, 5, 4
    q, k, v, R = r(B, H, T, E), r(B, K, T, E), r(B, K, T, E), r(B, H, T, E)
    out = lambda: float(np.sum(attention(attention_probs(q, k, 0, window), v) * R))  # noqa: E731
    dq, dk, dv = attention_backward(R, attention_probs(q, k, 0, window), q, k, v)
    close(dq, numeric_grad(out, q)), close(dk, numeric_grad(out, k)), close(dv, numeric_grad(out, v))


def test_swiglu_inner_product():
    g, u, R = r(4, 6), r(4, 6), r(4, 6)
    loss = lambda: float(np.sum(g / (1 + np.exp(-g)) * u * R))  # noqa: E731  silu(g) . u
    dg, du = swiglu_backward(R, g, u, 1 / (1 + np.exp(-g)))
    close(dg, numeric_grad(loss, g)), close(du, numeric_grad(loss, u))


def test_geglu_inner_product():
    x, gate_up, down, R = r(4, 5), r(12, 5), r(5, 6), r(4, 5)
    keep = {}
    loss = lambda: float(np.sum(geglu(x, gate_up, down, keep) * R))  # noqa: E731
    loss()
    g, u = keep["g"].copy(), keep["u"].copy()
    dm = R @ down                                                # dL/dm, through down's linear
    dg, du = geglu_backward(dm, g, u, keep["tanh"])
    gelu = lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))  # noqa: E731
    inner = lambda: float(np.sum(gelu(g) * u * dm))  # noqa: E731
    close(dg, numeric_grad(inner, g)), close(du, numeric_grad(inner, u))


def test_embedding_repeated_ids_accumulate():
    W, ids, R = r(7, 3), np.array([1, 4, 1, 1, 6]), r(5, 3)
    loss = lambda: float(np.sum(W[ids] * R))  # noqa: E731
    dW = embedding_backward(R, ids, 7)
    close(dW, numeric_grad(loss, W))
    np.testing.assert_allclose(dW[1], R[0] + R[2] + R[3])


def test_cross_entropy_from_logits():
    z, t = r(5, 9), np.array([0, 3, 3, 8, 2])
    loss, p = cross_entropy(z, t)
    by_hand = np.mean([np.log(np.exp(z[i]).sum()) - z[i, t[i]] for i in range(5)])
    assert abs(loss - by_hand) < 1e-12
    close(cross_entropy_backward(p, t), numeric_grad(lambda: cross_entropy(z, t)[0], z))


CONFIGS = {
    "mha-untied": dict(num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False),
    "gqa-tied": dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2-bias-headdim": dict(num_attention_heads=3, num_key_value_heads=1, head_dim=6, tie_word_embeddings=True,
                               model_type="qwen2", qkv_bias=True),
    "window": dict(num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False, windows=(2, 2)),
    "qwen3-qk-norm": dict(num_attention_heads=4, num_key_value_heads=2, head_dim=6, tie_word_embeddings=True,
                          model_type="qwen3", qk_norm=True),
    "gemma3": dict(num_attention_heads=2, num_key_value_heads=1, head_dim=6, tie_word_embeddings=True,
                   model_type="gemma3_text", qk_norm=True, sandwich_norms=True, norm_offset=1.0, mlp_act="gelu_tanh",
                   embed_scale=8 ** 0.5, attn_scale=0.3, local_rope_theta=100.0, windows=(2, None)),
}


def tiny(kind):
    fields = dict(hidden_size=8, intermediate_size=12, num_hidden_layers=2, head_dim=None, vocab_size=11,
                  max_position_embeddings=16, rms_norm_eps=1e-5, rope_theta=10000.0)
    fields.update(CONFIGS[kind])
    fields["head_dim"] = fields["head_dim"] or fields["hidden_size"] // fields["num_attention_heads"]
    cfg = LlamaConfig(**fields)
    from model.weights import expected_shapes
    local = np.random.default_rng(len(kind))
    weights = {n: local.standard_normal(s) * (0.5 if len(s) > 1 else 0.2) + (1.0 if n.endswith("norm.weight") else 0)
               for n, s in expected_shapes(cfg).items()}
    return cfg, weights


@pytest.mark.parametrize("kind", CONFIGS)
def test_whole_model_gradients(kind):
    cfg, w = tiny(kind)
    inputs = np.array([[1, 2, 3, 2, 2], [4, 4, 4, 10, 0]])   # repeated ids on purpose
    targets = np.array([[2, 3, 2, 2, 5], [4, 4, 10, 0, 1]])
    loss, grads = loss_and_grads(cfg, w, inputs, targets)
    assert set(grads) == set(w) and all(grads[n].shape == w[n].shape for n in w)
    assert abs(loss - forward_loss(cfg, w, inputs, targets, keep=False)[0]) < 1e-12
    f = lambda: forward_loss(cfg, w, inputs, targets, keep=False)[0]  # noqa: E731
    for name in w:
        close(grads[name], numeric_grad(f, w[name]), tol=1e-6)


def test_float32_in_float32_out():
    cfg, w = tiny("gqa-tied")
    w32 = {n: a.astype(np.float32) for n, a in w.items()}
    loss, grads = loss_and_grads(cfg, w32, [[1, 2, 3]], [[2, 3, 4]])
    assert all(g.dtype == np.float32 for g in grads.values())
    loss64, grads64 = loss_and_grads(cfg, {n: a.astype(np.float64) for n, a in w32.items()}, [[1, 2, 3]], [[2, 3, 4]])
    assert abs(loss - loss64) < 1e-5
    for n in grads:
        close(grads[n].astype(np.float64), grads64[n], tol=1e-4)


def test_bad_batches_are_refused():
    cfg, w = tiny("gqa-tied")
    for inputs, targets in [([[1, 2]], [[1]]), ([[1, 11]], [[1, 2]]), ([[-1, 2]], [[1, 2]]), ([[0.5, 1]], [[1, 2]])]:
        with pytest.raises(ValueError):
            loss_and_grads(cfg, w, inputs, targets)


def test_lora_adapter_gradients():
    """W = W0 + s B A: dL/dA = s (dy B)^T x and dL/dB = s dy^T (x A^T) from the taps (model/train/lora.py),
    against finite differences of the whole model's loss in A and B; and W moved by an update equals
    W0 + s B' A'."""
    from model.train.lora import LoRA
    cfg, w0 = tiny("gqa-tied")
    lora = LoRA.new(w0, 2, 3.0, ["q_proj", "down_proj"], np.random.default_rng(1))
    for n in lora.params:
        lora.params[n][...] = rng.standard_normal(lora.params[n].shape) * 0.3   # B away from zero
    inputs, targets = np.array([[1, 2, 3, 2], [4, 1, 1, 2]]), np.array([[2, 3, 2, 5], [-100, 1, 2, 3]])   # two
    # rows: the halves of the batch run in two threads, the mean written as token weights

    def merged():
        w = {n: a.copy() for n, a in w0.items()}
        lora.move_weights(w)                                # W0 + s B A
        return w

    def loss():
        return forward_loss(cfg, merged(), inputs, targets, keep=False)[0]
    tap, grads = lora.taps(cfg)
    assert loss_and_grads(cfg, merged(), inputs, targets, taps=tap)[1] == {}   # frozen: no dW formed
    assert set(grads) == set(lora.params) and len(grads) == 2 * 2 * cfg.num_hidden_layers
    for n, p in lora.params.items():
        close(grads[n], numeric_grad(loss, p), tol=1e-6)
    w, before = merged(), lora.snapshot()
    for n in lora.params:
        lora.params[n] += rng.standard_normal(lora.params[n].shape) * 0.1
    lora.move_weights(w, before)
    for n, a in merged().items():
        np.testing.assert_allclose(w[n], a, rtol=1e-12, atol=1e-12)


def test_dpo_gradients():
    """DPO's gradient (model/train/dpo.py: each answer's tokens weighted by its pair's coefficient in the
    cross-entropy's backward) against finite differences of the DPO loss itself, in float64."""
    from model.train.dpo import Pairs
    cfg, w = tiny("gqa-tied")
    IGN = -100
    chosen = [([1, 2, 3, 4], [IGN, IGN, 4, 5]), ([3, 3, 1], [IGN, 1, 6])]
    rejected = [([1, 2, 3, 7, 7], [IGN, IGN, 7, 7, 2]), ([3, 3, 9], [IGN, 9, 10])]
    pairs = Pairs(chosen, rejected, np.array([[-6.0, -7.5], [-4.0, -3.0]]), beta=0.7, pad=0)
    batch = (np.array([0, 1]), *pairs.rows([0, 1], 8))
    loss, grads = pairs.step(cfg, w, batch)
    f = lambda: pairs.measure(cfg, w, batch[0], batch[1], batch[2])["loss"]  # noqa: E731
    assert abs(loss - f()) < 1e-12
    for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight",
                 "model.norm.weight"):
        close(grads[name], numeric_grad(f, w[name]), tol=1e-6)
