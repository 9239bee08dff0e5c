"""The whole model's loss and gradients: the model's forward on a batch (model/llama.py `block`, keeping
what the backward needs), then the backward from the loss to every weight (`block_backward`).

    loss, grads = loss_and_grads(cfg, weights, inputs, targets)

`weights` is a dict of arrays by Hugging Face name (as `load_checkpoint` returns), `inputs` and
`targets` integer arrays [B, T]; a target of -100 (model/loss.py IGNORE) is not counted. `loss` is
the mean cross-entropy over the counted positions and `grads` has the same names and shapes as
`weights`. Everything runs in the weights' dtype: float32 to train, float64 for exact checks.
"""
import numpy as np

from ..config import LlamaConfig
from ..layers import embedding, embedding_backward, linear, linear_backward, rms_norm, rms_norm_backward
from ..llama import Layer, block, block_backward, final_norm
from ..evaluation.perplexity import token_nll
from ..loss import IGNORE, cross_entropy, cross_entropy_backward
from ..rope import model_frequencies, rope_tables
from ..speed import data_parallel


def check_batch(cfg: LlamaConfig, inputs, targets) -> tuple[np.ndarray, np.ndarray]:
    """inputs and targets as int64 [B, T] arrays of ids in the vocabulary (targets may be IGNORE), or ValueError."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim != 2 or inputs.shape != targets.shape or inputs.size == 0:
        raise ValueError(f"inputs and targets must be non-empty [B, T] arrays of one shape, got "
                         f"{inputs.shape} and {targets.shape}")
    for name, a in (("inputs", inputs), ("targets", targets)):
        ok = a if name == "inputs" else a[a != IGNORE]
        if a.dtype.kind not in "iu" or (ok.size and (ok.min() < 0 or ok.max() >= cfg.vocab_size)):
            raise ValueError(f"{name} must be integer ids in 0..{cfg.vocab_size - 1}"
                             + (f" (or {IGNORE}: not counted)" if name == "targets" else ""))
    if not (targets != IGNORE).any():
        raise ValueError(f"every target is {IGNORE}: nothing to learn from")
    if inputs.shape[1] > cfg.max_position_embeddings:
        raise ValueError(f"{inputs.shape[1]} positions exceed the context of {cfg.max_position_embeddings}")
    return inputs.astype(np.int64), targets.astype(np.int64)


def rotary(cfg: LlamaConfig, T: int, dtype, layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [T, E] for positions 0..T-1 at a layer, computed in float32 as inference does, then cast."""
    cos, sin = rope_tables(cfg.head_dim, T, cfg.rope_theta, inv_freq=model_frequencies(cfg, layer))
    return cos.astype(dtype), sin.astype(dtype)


def forward_loss(cfg: LlamaConfig, w: dict, inputs: np.ndarray, targets: np.ndarray, keep: bool = True,
                 token_weights: np.ndarray | None = None):
    """Mean cross-entropy of a batch (or sum_t w_t nll_t with token_weights [B, T]); with `keep`, also
    what the backward needs."""
    B, T = inputs.shape
    embed = w["model.embed_tokens.weight"]
    tables = {}                                                                     # one per rotary base
    ropes = [tables.setdefault(repr(cfg.rope(i)), rotary(cfg, T, embed.dtype, i)) for i in range(cfg.num_hidden_layers)]
    x = embedding(embed, inputs, cfg.embed_scale)                                   # [B, T] -> [B, T, D]
    layers, saved = [Layer.of(cfg, w, i) for i in range(cfg.num_hidden_layers)], []
    for layer, (cos, sin) in zip(layers, ropes):
        s = {} if keep else None
        x = block(cfg, layer, x, cos, sin, keep=s)                                  # [B, T, D]
        saved.append(s)
    head = embed if cfg.tie_word_embeddings else w["lm_head.weight"]               # [V, D]
    hf = rms_norm(x.reshape(B * T, -1), final_norm(cfg, w), cfg.rms_norm_eps)       # [N, D]
    weights = None if token_weights is None else np.asarray(token_weights, hf.dtype).reshape(-1)
    loss, p = cross_entropy(linear(hf, head), targets.reshape(-1), weights, inplace=True)   # [N, V]
    return loss, (x, hf, p, layers, saved, ropes)


def layer_grads(cfg: LlamaConfig, i: int, g: dict, grads: dict) -> None:
    """Layer i's gradients (by the names of Layer) into `grads` by HF name; q|k|v and gate|up split by rows."""
    p = f"model.layers.{i}."
    H, K, E, F = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.intermediate_size
    qkv_rows = np.cumsum([0, H * E, K * E, K * E])
    for n, a, b in zip("qkv", qkv_rows, qkv_rows[1:]):
        grads[p + f"self_attn.{n}_proj.weight"] = g["qkv"][a:b]
        if cfg.qkv_bias:
            grads[p + f"self_attn.{n}_proj.bias"] = g["qkv_bias"][a:b]
    grads[p + "mlp.gate_proj.weight"], grads[p + "mlp.up_proj.weight"] = g["gate_up"][:F], g["gate_up"][F:]
    grads[p + "self_attn.o_proj.weight"], grads[p + "mlp.down_proj.weight"] = g["o_proj"], g["down"]
    if cfg.o_bias:
        grads[p + "self_attn.o_proj.bias"] = g["o_bias"]
    names = {"attn_norm": "input_layernorm", "q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm"}
    if cfg.sandwich_norms:   # Gemma 3's four: the second is on the attention's output
        names.update(attn_out_norm="post_attention_layernorm", mlp_norm="pre_feedforward_layernorm",
                     mlp_out_norm="post_feedforward_layernorm")
    else:
        names["mlp_norm"] = "post_attention_layernorm"
    for ours, hf in names.items():
        if ours in g:
            grads[p + hf + ".weight"] = g[ours]


def loss_and_grads(cfg: LlamaConfig, weights: dict, inputs, targets, token_weights=None,
                   taps=None) -> tuple[float, dict]:
    """The mean cross-entropy of next-token prediction on [B, T] ids, and dL/dW for every weight.
    With token_weights [B, T]: L = sum_t w_t nll_t (preference tuning's weighted sequences).
    With `taps(layer, part, dy, x)` (LoRA) every weight is frozen: no dL/dW at all (an empty dict), only
    each projection's output gradient and input handed to taps (model/llama.py block_backward), which
    add them up: the batch's halves then run on the two cores at once (model/speed.py data_parallel),
    the mean written as weights, w_t = 1 / n_counted, so the halves' losses and gradients add."""
    inputs, targets = check_batch(cfg, inputs, targets)
    if taps is not None and len(inputs) > 1:
        if token_weights is None:
            counted = targets != IGNORE
            token_weights = counted / max(int(counted.sum()), 1)
        halves = data_parallel(lambda a, b: batch_loss_and_grads(cfg, weights, inputs[a:b], targets[a:b],
                                                                 token_weights[a:b], taps), len(inputs))
        return sum(loss for loss, _ in halves), {}
    return batch_loss_and_grads(cfg, weights, inputs, targets, token_weights, taps)


def batch_loss_and_grads(cfg: LlamaConfig, weights: dict, inputs, targets, token_weights=None,
                         taps=None) -> tuple[float, dict]:
    """loss_and_grads on one batch in one pass (the batch checked)."""
    loss, (x, hf, p, layers, saved, ropes) = forward_loss(cfg, weights, inputs, targets,
                                                          token_weights=token_weights)
    w, grads, frozen = weights, {}, taps is not None
    embed = w["model.embed_tokens.weight"]
    head = embed if cfg.tie_word_embeddings else w["lm_head.weight"]
    tw = None if token_weights is None else np.asarray(token_weights, p.dtype).reshape(-1)
    dz = cross_entropy_backward(p, targets.reshape(-1), tw)                        # [N, V], written into p
    dhf, dhead, _ = linear_backward(dz, hf, head, frozen=frozen)
    del p, dz                                                                       # the step's largest array
    dx, grads["model.norm.weight"] = rms_norm_backward(dhf, x.reshape(dhf.shape), final_norm(cfg, w),
                                                       cfg.rms_norm_eps)
    dx = dx.reshape(x.shape)                                                        # [B, T, D]
    for i in reversed(range(cfg.num_hidden_layers)):
        tap = None if not frozen else (lambda part, dy, xin, i=i: taps(i, part, dy, xin))
        dx, g = block_backward(cfg, layers[i], dx, saved[i], *ropes[i], taps=tap)
        if not frozen:
            layer_grads(cfg, i, g, grads)
        saved[i] = None                                                             # free as we go
    if frozen:
        return loss, {}
    grads["model.embed_tokens.weight"] = embedding_backward(dx.reshape(-1, dx.shape[-1]), inputs.reshape(-1),
                                                            cfg.vocab_size, cfg.embed_scale)
    if cfg.tie_word_embeddings:
        grads["model.embed_tokens.weight"] += dhead                                 # both uses of W_E add
    else:
        grads["lm_head.weight"] = dhead
    return loss, {name: grads[name] for name in weights}


ROWS = 512   # logits rows at a time when only log-probabilities are needed


def sequence_logprobs(cfg: LlamaConfig, w: dict, inputs, targets) -> np.ndarray:
    """Per row, the sum of log p(target) over the counted targets (forward only)   [B, T] -> [B] (float64).
    The rows' halves run on the two cores at once (model/speed.py data_parallel)."""
    inputs, targets = check_batch(cfg, inputs, targets)
    return np.concatenate(data_parallel(lambda a, b: rows_logprobs(cfg, w, inputs[a:b], targets[a:b]), len(inputs)))


def rows_logprobs(cfg: LlamaConfig, w: dict, inputs, targets) -> np.ndarray:
    """sequence_logprobs of a checked batch in one pass."""
    B, T = inputs.shape
    embed = w["model.embed_tokens.weight"]
    tables = {}
    x = embedding(embed, inputs, cfg.embed_scale)
    for i in range(cfg.num_hidden_layers):
        cos, sin = tables.setdefault(repr(cfg.rope(i)), rotary(cfg, T, embed.dtype, i))
        x = block(cfg, Layer.of(cfg, w, i), x, cos, sin)                            # [B, T, D]
    head = embed if cfg.tie_word_embeddings else w["lm_head.weight"]
    hf = rms_norm(x.reshape(B * T, -1), final_norm(cfg, w), cfg.rms_norm_eps)       # [N, D]
    flat, picked = targets.reshape(-1), np.zeros(B * T)
    for a in range(0, B * T, ROWS):                                                 # [ROWS, V] logits at a time
        rows = np.flatnonzero(flat[a:a + ROWS] != IGNORE)
        if len(rows):
            picked[a + rows] = -token_nll(linear(hf[a + rows], head), flat[a + rows])
    return picked.reshape(B, T).sum(axis=1)
